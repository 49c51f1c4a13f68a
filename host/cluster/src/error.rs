//! The cluster's failures as the library's own typed [`wasmproc::Error`]:
//! reaching or using NATS is part of setting up a run (`Setup`, exit
//! status 126), bad requests are `BadInvocation` (128). The NATS error
//! stays underneath as the error's `source`, and it is classified by
//! async-nats's error kinds, never by its text.

use async_nats::jetstream::ErrorCode;
use async_nats::jetstream::context::{CreateStreamError, CreateStreamErrorKind};
use wasmproc::{Error, ErrorKind};

/// A failure to reach or use NATS, with what to do about it.
pub(crate) fn cluster_error(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::Setup, message)
}

/// A NATS operation `what` failed with `error` (kept as the cause).
pub(crate) fn nats_error<E>(what: &str, error: E) -> Error
where
    E: std::error::Error + Send + Sync + 'static,
{
    cluster_error(format!("NATS: cannot {what}: {error}")).caused_by(error)
}

/// Making one of the streams failed: a server without JetStream (nobody
/// answers its API, or it says so) gets the fix.
pub(crate) fn stream_error(what: &str, error: CreateStreamError) -> Error {
    let off = |code: ErrorCode| {
        code == ErrorCode::JETSTREAM_NOT_ENABLED
            || code == ErrorCode::JETSTREAM_NOT_ENABLED_FOR_ACCOUNT
    };
    let missing = match error.kind() {
        CreateStreamErrorKind::JetStreamUnavailable => true,
        CreateStreamErrorKind::JetStream(inner) => off(inner.error_code()),
        _ => false,
    };
    if missing {
        cluster_error(format!(
            "NATS: cannot {what}: JetStream is not enabled on the server ({error}); start it \
             with `nats-server -js`"
        ))
        .caused_by(error)
    } else {
        nats_error(what, error)
    }
}
