//! How a task ended, as one table on every OS: [`ExitStatus`] and
//! [`TrapKind`]. A leaf: every other module may use it, it uses none.

use std::fmt;

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
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
    /// An exception the guest threw (the exception-handling proposal's
    /// `throw`) reached the host: no handler in the guest caught it.
    UncaughtException,
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
            TrapKind::UncaughtException => "uncaught_exception",
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
