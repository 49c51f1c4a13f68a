//! What a task's run produced: its exit status and everything around it.

use std::fmt;
use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::error::{Error, ErrorKind};

/// How a task ended: one table on every OS.
///
/// The guest owns codes 0–125 and the host owns 126–255, so the two never
/// collide. [`code`](ExitStatus::code) gives the number a process exits with.
///
/// | code | status |
/// | --- | --- |
/// | 0–125 | [`Exited(n)`](ExitStatus::Exited): the guest's own code (101: an SDK task panicked) |
/// | 126 | [`CannotRun`](ExitStatus::CannotRun) |
/// | 127 | [`NotFound`](ExitStatus::NotFound) |
/// | 128 | [`BadInvocation`](ExitStatus::BadInvocation) |
/// | 130 | [`Cancelled`](ExitStatus::Cancelled) |
/// | 134 | [`Trapped(kind)`](ExitStatus::Trapped) |
/// | 137 | [`MemoryExceeded`](ExitStatus::MemoryExceeded) |
/// | 139 | [`WorkerLost`](ExitStatus::WorkerLost) |
/// | 142 | [`TimedOut`](ExitStatus::TimedOut) |
/// | 152 | [`FuelExhausted`](ExitStatus::FuelExhausted) |
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum ExitStatus {
    /// The guest ended with its own exit code, 0–125.
    Exited(u8),
    /// Invalid module, missing task or export, wrong signature,
    /// unsatisfiable import.
    CannotRun,
    /// The module file does not exist.
    NotFound,
    /// Bad flag, bad arguments (not JSON, too large, too deep, not of the
    /// task's type), bad limit or capability value.
    BadInvocation,
    /// The caller cancelled the task.
    Cancelled,
    /// The guest trapped.
    Trapped(TrapKind),
    /// The guest needed more memory than its limit.
    MemoryExceeded,
    /// The worker died under the task (a host panic while serving the guest).
    WorkerLost,
    /// The wall-clock limit passed, even inside a blocking call.
    TimedOut,
    /// The fuel limit ran out.
    FuelExhausted,
}

impl ExitStatus {
    /// The numeric exit code from the table.
    pub fn code(&self) -> u8 {
        match self {
            ExitStatus::Exited(code) => *code,
            ExitStatus::CannotRun => 126,
            ExitStatus::NotFound => 127,
            ExitStatus::BadInvocation => 128,
            ExitStatus::Cancelled => 130,
            ExitStatus::Trapped(_) => 134,
            ExitStatus::MemoryExceeded => 137,
            ExitStatus::WorkerLost => 139,
            ExitStatus::TimedOut => 142,
            ExitStatus::FuelExhausted => 152,
        }
    }

    /// Whether the task succeeded: `Exited(0)`.
    pub fn success(&self) -> bool {
        *self == ExitStatus::Exited(0)
    }

    /// The status's name in `snake_case`, as the binary's JSON writes it:
    /// `exited`, `cannot_run`, `not_found`, `bad_invocation`, `cancelled`,
    /// `trapped`, `memory_exceeded`, `worker_lost`, `timed_out`,
    /// `fuel_exhausted`.
    pub fn name(&self) -> &'static str {
        match self {
            ExitStatus::Exited(_) => "exited",
            ExitStatus::CannotRun => "cannot_run",
            ExitStatus::NotFound => "not_found",
            ExitStatus::BadInvocation => "bad_invocation",
            ExitStatus::Cancelled => "cancelled",
            ExitStatus::Trapped(_) => "trapped",
            ExitStatus::MemoryExceeded => "memory_exceeded",
            ExitStatus::WorkerLost => "worker_lost",
            ExitStatus::TimedOut => "timed_out",
            ExitStatus::FuelExhausted => "fuel_exhausted",
        }
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitStatus::Exited(code) => write!(f, "exited with code {code}"),
            ExitStatus::Trapped(kind) => write!(f, "trapped: {kind}"),
            other => write!(f, "{} (exit status {})", other.name(), other.code()),
        }
    }
}

/// Why a guest trapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum TrapKind {
    /// An `unreachable` instruction ran (also: a Rust `abort`).
    Unreachable,
    /// A load or store outside linear memory.
    MemoryOutOfBounds,
    /// Integer division or remainder by zero.
    IntegerDivisionByZero,
    /// Integer overflow (e.g. `i32::MIN / -1`).
    IntegerOverflow,
    /// A float-to-integer conversion out of range or of NaN.
    BadConversionToInteger,
    /// The wasm stack limit was exhausted.
    StackOverflow,
    /// An indirect call through a null table entry.
    IndirectCallToNull,
    /// An indirect call with the wrong signature.
    BadSignature,
    /// A table access out of bounds.
    TableOutOfBounds,
    /// A misaligned atomic access.
    HeapMisaligned,
    /// A host function failed while serving the guest (the message says
    /// why), e.g. `proc_exit` with a code the guest does not own.
    HostError,
    /// Another trap; the outcome's message says which.
    Other,
}

impl TrapKind {
    /// The kind's name in `snake_case`, as the binary's JSON writes it.
    pub fn name(&self) -> &'static str {
        match self {
            TrapKind::Unreachable => "unreachable",
            TrapKind::MemoryOutOfBounds => "memory_out_of_bounds",
            TrapKind::IntegerDivisionByZero => "integer_division_by_zero",
            TrapKind::IntegerOverflow => "integer_overflow",
            TrapKind::BadConversionToInteger => "bad_conversion_to_integer",
            TrapKind::StackOverflow => "stack_overflow",
            TrapKind::IndirectCallToNull => "indirect_call_to_null",
            TrapKind::BadSignature => "bad_signature",
            TrapKind::TableOutOfBounds => "table_out_of_bounds",
            TrapKind::HeapMisaligned => "heap_misaligned",
            TrapKind::HostError => "host_error",
            TrapKind::Other => "other",
        }
    }
}

impl fmt::Display for TrapKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One captured output stream of a task.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Captured {
    /// The bytes kept, at most the task's output cap.
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
    /// The largest size the task's linear memory reached, in bytes.
    pub peak_memory_bytes: u64,
    /// Wall-clock time from the start of the run to its end.
    pub duration: Duration,
}

impl Outcome {
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
                ErrorKind::TaskFailed(self.status.clone()),
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
        })
    }
}
