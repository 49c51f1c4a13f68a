//! The library's typed error.

use std::fmt;

use crate::outcome::ExitStatus;

/// What went wrong, as a kind a program can match on and a message a person
/// can act on.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    message: String,
}

/// The kinds of [`Error`].
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
    /// A task ended with a status other than success; see
    /// [`Outcome::decode`](crate::Outcome::decode).
    TaskFailed(ExitStatus),
    /// The task succeeded but its result does not decode into the type asked
    /// for.
    Decode,
    /// Setting up the engine, the module cache or a pool failed.
    Setup,
    /// The pool is closed and takes no new tasks.
    PoolClosed,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
        }
    }

    /// The kind of error.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// The exit status the binary ends with for this error (see the table
    /// in the crate docs).
    pub fn exit_status(&self) -> ExitStatus {
        match &self.kind {
            ErrorKind::NotFound => ExitStatus::NotFound,
            ErrorKind::CannotRun | ErrorKind::Setup => ExitStatus::CannotRun,
            ErrorKind::BadInvocation | ErrorKind::Decode | ErrorKind::PoolClosed => {
                ExitStatus::BadInvocation
            }
            ErrorKind::TaskFailed(status) => status.clone(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}
