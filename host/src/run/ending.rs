//! How a run ended, as an [`Outcome`]: a return, `proc_exit`, a trap, a
//! limit, a cancellation.

use std::time::Duration;

use wasmproc_abi::{MAX_GUEST_EXIT_CODE, failure};
use wasmtime::{ThrownException, Trap, WasmBacktrace};
use wasmtime_wasi::I32Exit;

use crate::error::Error;
use crate::limits::human;
use crate::outcome::Outcome;
use crate::status::{ExitStatus, TrapKind};
use crate::store::{ExitCodeOutOfRange, GuestFailure, ResultTooLarge, SdkState};

/// Why the epoch callback stopped a busy guest.
#[derive(Debug)]
pub(super) enum Interrupted {
    TimedOut,
    Cancelled,
}

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Interrupted::TimedOut => "the task's time limit passed",
            Interrupted::Cancelled => "the task was cancelled",
        })
    }
}

impl std::error::Error for Interrupted {}

/// Where a run failed: setting up the instance, or running the guest.
pub(super) enum Phase {
    Instantiate,
    Call,
}

/// How the race between the guest, the timer and the cancel signal ended.
pub(super) enum Raced {
    /// The guest returned this exit code (always 0 for `_start`).
    Returned(i32),
    Failed(Phase, wasmtime::Error),
    TimedOut,
    Cancelled,
}

/// What the run knew besides how it ended.
pub(super) struct Context<'a> {
    pub(super) sdk: &'a mut SdkState,
    /// The memory the guest asked for past its limit, if it did.
    pub(super) memory_refused: Option<u64>,
    pub(super) memory_limit: u64,
    pub(super) timeout: Option<Duration>,
}

pub(super) fn outcome_of(raced: Raced, context: Context<'_>) -> Outcome {
    let failure = context.sdk.failure.take();
    let exited = |code: u8, sdk: &mut SdkState| {
        let mut outcome = Outcome::exited(code);
        outcome.message = failure.as_ref().map(|f| f.message.clone());
        outcome.panicked = failure.as_ref().is_some_and(|f| f.kind == failure::PANIC);
        if code == 0 {
            outcome.result = sdk.output.take();
        }
        outcome
    };
    match raced {
        Raced::TimedOut => timed_out(context.timeout),
        Raced::Cancelled => cancelled(),
        Raced::Returned(code) => {
            if let Some(failure) = &failure
                && failure.kind == failure::BAD_INPUT
            {
                return Outcome::failed(ExitStatus::BadInvocation, failure.message.clone());
            }
            match u8::try_from(code) {
                Ok(code) if code <= MAX_GUEST_EXIT_CODE => exited(code, context.sdk),
                _ => out_of_range(i64::from(code), failure.as_ref()),
            }
        }
        Raced::Failed(phase, error) => {
            if let Some(exit) = error.downcast_ref::<I32Exit>() {
                // `store::overrides` lets only 0–125 through `proc_exit`;
                // a component's `wasi:cli/exit` `exit-with-code` takes any
                // u8, and gets the same rule here.
                return match u8::try_from(exit.0) {
                    Ok(code) if code <= MAX_GUEST_EXIT_CODE => exited(code, context.sdk),
                    _ => out_of_range(i64::from(exit.0), failure.as_ref()),
                };
            }
            if let Some(ExitCodeOutOfRange(code)) = error.downcast_ref::<ExitCodeOutOfRange>() {
                return out_of_range(*code, failure.as_ref());
            }
            // A task the run layer refused once it started (a component's
            // typed task): the error's own status.
            if let Some(refused) = error.downcast_ref::<Error>() {
                return Outcome::from(refused.clone());
            }
            if let Some(too_large) = error.downcast_ref::<ResultTooLarge>() {
                return Outcome::failed(ExitStatus::MemoryExceeded, too_large.to_string());
            }
            // Where the guest was when a limit struck inside its code (a
            // wasm backtrace wasmtime attached to the error): `-v` and
            // `--json` show it.
            if let Some(interrupted) = error.downcast_ref::<Interrupted>() {
                let mut outcome = match interrupted {
                    Interrupted::TimedOut => timed_out(context.timeout),
                    Interrupted::Cancelled => cancelled(),
                };
                outcome.backtrace = backtrace_of(&error);
                return outcome;
            }
            if let Some(asked) = context.memory_refused {
                let mut outcome = Outcome::failed(
                    ExitStatus::MemoryExceeded,
                    format!(
                        "the task needed {} of memory, over its limit of {}",
                        human(asked),
                        human(context.memory_limit)
                    ),
                );
                outcome.memory_asked_bytes = Some(asked);
                outcome.backtrace = backtrace_of(&error);
                return outcome;
            }
            trapped(phase, &error)
        }
    }
}

/// The one rule for a guest exit code outside 0–125, however the guest
/// reported it (`proc_exit`, an SDK task's return, a `Failure`): a
/// `host_error` trap whose message names the code.
fn out_of_range(code: i64, failure: Option<&GuestFailure>) -> Outcome {
    let mut message = ExitCodeOutOfRange(code).to_string();
    if let Some(failure) = failure {
        message.push_str(&format!("; the guest said: {}", failure.message));
    }
    Outcome::failed(ExitStatus::Trapped(TrapKind::HostError), message)
}

fn timed_out(timeout: Option<Duration>) -> Outcome {
    let limit = timeout
        .map(|t| humantime::format_duration(t).to_string())
        .unwrap_or_default();
    Outcome::failed(
        ExitStatus::TimedOut,
        format!("the task ran past its time limit of {limit}"),
    )
}

fn cancelled() -> Outcome {
    Outcome::failed(ExitStatus::Cancelled, "the task was cancelled")
}

/// The wasm backtrace wasmtime attached to `error`, if any.
fn backtrace_of(error: &wasmtime::Error) -> Option<String> {
    error
        .downcast_ref::<WasmBacktrace>()
        .map(|bt| without_hashes(&bt.to_string()))
}

fn trapped(phase: Phase, error: &wasmtime::Error) -> Outcome {
    let backtrace = backtrace_of(error);
    let (status, message) = match error.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => (
            ExitStatus::FuelExhausted,
            "the task used up its fuel limit".to_owned(),
        ),
        Some(trap) => (ExitStatus::Trapped(trap_kind(*trap)), trap.to_string()),
        None if error.is::<ThrownException>() => (
            ExitStatus::Trapped(TrapKind::UncaughtException),
            "uncaught Wasm exception: the guest threw an exception that no handler caught"
                .to_owned(),
        ),
        None => match phase {
            Phase::Instantiate => (
                ExitStatus::CannotRun,
                format!("cannot instantiate the module: {}", root_message(error)),
            ),
            Phase::Call => (
                ExitStatus::Trapped(TrapKind::HostError),
                root_message(error),
            ),
        },
    };
    let mut outcome = Outcome::failed(status, message);
    outcome.backtrace = backtrace;
    outcome
}

/// A backtrace with the hash rustc appends to mangled names
/// (`run_task::hdeb983896c001368`) taken off each frame: noise to a reader.
fn without_hashes(backtrace: &str) -> String {
    let mut text = String::with_capacity(backtrace.len());
    for line in backtrace.lines() {
        let trimmed = match line.rfind("::h") {
            Some(at)
                if line.len() - at == 3 + 16
                    && line[at + 3..].bytes().all(|b| b.is_ascii_hexdigit()) =>
            {
                &line[..at]
            }
            _ => line,
        };
        text.push_str(trimmed);
        text.push('\n');
    }
    text
}

/// The error's message without the backtrace that wasmtime attaches as
/// context (the outcome keeps that separately).
fn root_message(error: &wasmtime::Error) -> String {
    let full = format!("{error:#}");
    match error.downcast_ref::<WasmBacktrace>() {
        Some(bt) => full
            .replace(&bt.to_string(), "")
            .trim_matches([':', ' ', '\n'])
            .to_owned(),
        None => full,
    }
}

fn trap_kind(trap: Trap) -> TrapKind {
    match trap {
        Trap::UnreachableCodeReached => TrapKind::Unreachable,
        Trap::MemoryOutOfBounds => TrapKind::MemoryOutOfBounds,
        Trap::IntegerDivisionByZero => TrapKind::IntegerDivisionByZero,
        Trap::IntegerOverflow => TrapKind::IntegerOverflow,
        Trap::BadConversionToInteger => TrapKind::BadConversionToInteger,
        Trap::StackOverflow => TrapKind::StackOverflow,
        Trap::IndirectCallToNull => TrapKind::IndirectCallToNull,
        Trap::BadSignature => TrapKind::BadSignature,
        Trap::TableOutOfBounds => TrapKind::TableOutOfBounds,
        Trap::HeapMisaligned => TrapKind::HeapMisaligned,
        _ => TrapKind::Other,
    }
}

#[cfg(test)]
mod hash_tests {
    use super::without_hashes;

    #[test]
    fn frames_lose_their_hash_and_nothing_else() {
        let backtrace = "error while executing at wasm backtrace:\n    \
            0:   0xbb92 - m.wasm!wasmproc_guest::runner::run_task::hdeb983896c001368\n    \
            1:   0xf0a0 - m.wasm!wasmproc_task:out_of_bounds\n    \
            2:   0x10 - m.wasm!a::hash::h12\n";
        assert_eq!(
            without_hashes(backtrace),
            "error while executing at wasm backtrace:\n    \
            0:   0xbb92 - m.wasm!wasmproc_guest::runner::run_task\n    \
            1:   0xf0a0 - m.wasm!wasmproc_task:out_of_bounds\n    \
            2:   0x10 - m.wasm!a::hash::h12\n"
        );
    }
}
