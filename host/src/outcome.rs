//! What a task's run produced: its exit status and everything around it.

use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::error::{Error, ErrorKind};
use crate::status::ExitStatus;

/// One captured output stream of a task.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Captured {
    /// The bytes kept, at most the task's output cap.
    #[serde(with = "serde_bytes")]
    pub bytes: Vec<u8>,
    /// Whether the guest wrote more than the cap and bytes were dropped.
    pub truncated: bool,
}

impl Captured {
    /// The bytes as text, with invalid UTF-8 replaced.
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.bytes)
    }
}

/// Everything a task's run produced.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct Outcome {
    /// How the task ended.
    pub status: ExitStatus,
    /// A typed task's result, as JSON bytes; see [`decode`](Outcome::decode).
    #[serde(with = "serde_bytes")]
    pub result: Option<Vec<u8>>,
    /// Why the task did not succeed, in words: the task's error or panic
    /// message, the trap, the limit that was hit, what cannot run.
    pub message: Option<String>,
    /// Whether an SDK task panicked (its status is then `Exited(101)` and
    /// the message is the panic's).
    pub panicked: bool,
    /// For a trap, the wasm backtrace (function names where the module
    /// has a name section).
    pub backtrace: Option<String>,
    /// Captured stdout (empty when stdout was passed through).
    pub stdout: Captured,
    /// Captured stderr (empty when stderr was passed through).
    pub stderr: Captured,
    /// Fuel consumed, when the task ran with a fuel limit.
    pub fuel_used: Option<u64>,
    /// The most the task's memories held together (its linear memories and
    /// its GC heap), in bytes.
    pub peak_memory_bytes: u64,
    /// For [`MemoryExceeded`](ExitStatus::MemoryExceeded) by a memory
    /// growth: what the task's memories would have held together had it
    /// been allowed, in bytes (the peak counts only what it got, so a
    /// single large request leaves it small).
    pub memory_asked_bytes: Option<u64>,
    /// Wall-clock time from the start of the run to its end.
    pub duration: Duration,
}

impl Outcome {
    /// When the guest SDK refused the task's argument (it did not decode
    /// into the parameter type): the decoder's words, for a front end that
    /// explains the mistake. `None` for every other outcome.
    pub fn argument_misfit(&self) -> Option<&str> {
        if self.status != ExitStatus::BadInvocation {
            return None;
        }
        let message = self.message.as_deref()?;
        let called = message.strip_prefix(wasmproc_abi::MISFIT_START)?;
        let (_, detail) = called.split_once(wasmproc_abi::MISFIT_DETAIL)?;
        Some(detail)
    }

    /// An outcome with only a status: the guest exited with `code`.
    pub(crate) fn exited(code: u8) -> Self {
        Outcome::of(ExitStatus::Exited(code))
    }

    /// An outcome of `status`, with the reason in words.
    pub(crate) fn failed(status: ExitStatus, message: impl Into<String>) -> Self {
        Outcome {
            message: Some(message.into()),
            ..Outcome::of(status)
        }
    }

    /// The outcome of a task that ended without running, with `status` and
    /// the reason: for layers that decide a task's end themselves, such as
    /// a cluster that gave up on a task whose hosts kept dying.
    pub fn not_run(status: ExitStatus, message: impl Into<String>) -> Self {
        Outcome::failed(status, message)
    }

    /// An outcome of `status` and nothing else yet.
    fn of(status: ExitStatus) -> Self {
        Outcome {
            status,
            result: None,
            message: None,
            panicked: false,
            backtrace: None,
            stdout: Captured::default(),
            stderr: Captured::default(),
            fuel_used: None,
            peak_memory_bytes: 0,
            memory_asked_bytes: None,
            duration: Duration::ZERO,
        }
    }

    /// Whether the task succeeded: status `Exited(0)`.
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// Decodes a typed task's result.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::TaskFailed`] with the status when the task did not
    /// succeed (the message says why), and [`ErrorKind::Decode`] when the
    /// result does not decode into `T`.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, Error> {
        if !self.success() {
            let why = self.message.as_deref().unwrap_or("no message");
            return Err(Error::new(
                ErrorKind::TaskFailed(self.status),
                format!("the task {}: {why}", self.status),
            ));
        }
        let bytes = self.result.as_deref().unwrap_or(b"null");
        serde_json::from_slice(bytes).map_err(|error| {
            Error::new(
                ErrorKind::Decode,
                format!(
                    "the task's result does not decode into {}: {error}",
                    std::any::type_name::<T>()
                ),
            )
            .caused_by(error)
        })
    }
}

impl From<Error> for Outcome {
    /// The outcome of a task that failed before its guest ran: the error's
    /// status and message.
    fn from(error: Error) -> Outcome {
        let status = error.exit_status();
        Outcome::failed(status, error.into_message())
    }
}

/// The outcome of a run that failed, kept as the cause
/// ([`source`](std::error::Error::source)) of the [`Error`] it became: an
/// initializer's failure ends a pool's or a module's start with an error,
/// and its trap kind, backtrace, captured output and figures stay
/// reachable through [`FailedRun::of`].
#[derive(Debug, Clone)]
pub struct FailedRun(pub Outcome);

impl FailedRun {
    /// The failed run's outcome under `error` (among its causes), if it
    /// came from one.
    pub fn of(error: &Error) -> Option<&Outcome> {
        let mut cause = std::error::Error::source(error);
        while let Some(error) = cause {
            if let Some(failed) = error.downcast_ref::<FailedRun>() {
                return Some(&failed.0);
            }
            cause = error.source();
        }
        None
    }

    /// Why it failed, in words: its message, or its status.
    pub fn why(&self) -> String {
        self.0
            .message
            .clone()
            .unwrap_or_else(|| format!("it ended with status {}", self.0.status.code()))
    }
}

impl std::fmt::Display for FailedRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.why())
    }
}

impl std::error::Error for FailedRun {}
