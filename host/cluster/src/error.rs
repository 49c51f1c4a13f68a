//! The cluster's failures as the library's own typed [`wasmproc::Error`]:
//! reaching or using NATS is part of setting up a run (`Setup`, exit
//! status 126), bad requests are `BadInvocation` (128).

use wasmproc::{Error, ErrorKind};

/// A failure to reach or use NATS, with what to do about it.
pub(crate) fn cluster_error(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::Setup, message)
}

/// A NATS operation `what` failed with `error`.
pub(crate) fn nats_error(what: &str, error: impl std::fmt::Display) -> Error {
    cluster_error(format!("NATS: cannot {what}: {error}"))
}
