//! The library's one error type: a kind a program can match on, a message a
//! person can act on, and the exit status each kind ends with.
//!
//! Inside the crate every failure travels as an [`Error`], from a bad limit
//! to a lost worker process; a task that fails before its guest runs gets
//! the error as its [`Outcome`](crate::Outcome) (`Outcome::from(error)`).

use std::fmt;
use std::sync::Arc;

use crate::status::ExitStatus;

/// The error underneath an [`Error`]: an I/O error, a wasmtime error, a
/// NATS error.
pub type Cause = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// What went wrong, as a kind a program can match on and a message a person
/// can act on, and the error underneath when there is one
/// ([`source`](std::error::Error::source)). Cheap to clone, so that a
/// failure found once (a module that cannot be linked, say) is reported to
/// every task that meets it.
///
/// Two errors are equal when their kinds and messages are (the causes are
/// not compared).
#[derive(Debug, Clone)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    cause: Option<Cause>,
}

impl PartialEq for Error {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind && self.message == other.message
    }
}

impl Eq for Error {}

/// The kinds of [`Error`], each with its exit status from the table.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The module file does not exist (exit status 127).
    NotFound,
    /// The module is not a valid WebAssembly core module, or cannot run
    /// (exit status 126).
    CannotRun,
    /// A value given by the caller is invalid: arguments, limits,
    /// capabilities (exit status 128).
    BadInvocation,
    /// The task was cancelled before it produced an outcome (exit status
    /// 130).
    Cancelled,
    /// The worker process serving the task died, or never started (exit
    /// status 139).
    WorkerLost,
    /// A task ended with a status other than success; see
    /// [`Outcome::decode`](crate::Outcome::decode).
    TaskFailed(ExitStatus),
    /// The task succeeded but its result does not decode into the type asked
    /// for (exit status 128).
    Decode,
    /// Setting up the engine, the module cache or a pool failed (exit status
    /// 126).
    Setup,
    /// The pool is closed and takes no new tasks (exit status 128).
    PoolClosed,
    /// A queue or pipe is closed: nothing more can be sent, and everything
    /// sent has been received (exit status 128).
    Closed,
}

impl Error {
    /// An error of `kind` that says `message`. The message should name the
    /// problem and the fix; it is shown to people as it is.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            cause: None,
        }
    }

    /// The same error, caused by `cause` (kept as its
    /// [`source`](std::error::Error::source), for programs that look
    /// underneath: an `io::Error`'s kind, say). The message should still say
    /// what the cause means for the caller.
    pub fn caused_by(mut self, cause: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        self.cause = Some(Arc::from(cause.into()));
        self
    }

    /// The kind of error.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// The message, as `Display` shows it.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The message, taken out of the error.
    pub(crate) fn into_message(self) -> String {
        self.message
    }

    /// The exit status the binary ends with for this error, and a task that
    /// meets it before running ends with (see the table on [`ExitStatus`]).
    pub fn exit_status(&self) -> ExitStatus {
        match &self.kind {
            ErrorKind::NotFound => ExitStatus::NotFound,
            ErrorKind::CannotRun | ErrorKind::Setup => ExitStatus::CannotRun,
            ErrorKind::BadInvocation
            | ErrorKind::Decode
            | ErrorKind::PoolClosed
            | ErrorKind::Closed => ExitStatus::BadInvocation,
            ErrorKind::Cancelled => ExitStatus::Cancelled,
            ErrorKind::WorkerLost => ExitStatus::WorkerLost,
            ErrorKind::TaskFailed(status) => *status,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause
            .as_deref()
            .map(|cause| cause as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cause_stays_underneath_and_does_not_change_equality() {
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "no");
        let error = Error::new(ErrorKind::Setup, "cannot open the cache: no").caused_by(io);
        let source = std::error::Error::source(&error).expect("the cause is kept");
        let io = source.downcast_ref::<std::io::Error>().expect("as itself");
        assert_eq!(io.kind(), std::io::ErrorKind::PermissionDenied);
        assert_eq!(
            error.clone(),
            Error::new(ErrorKind::Setup, "cannot open the cache: no")
        );
        assert!(std::error::Error::source(&error.clone()).is_some());
    }
}
