//! Runs one task in a fresh store and instance, and maps however it ended
//! (a return, `proc_exit`, a trap, a limit) to an [`Outcome`].
//!
//! Guests run on wasmtime's async path so that a timeout or a cancellation
//! also ends a guest blocked inside a host call (sleeping, reading stdin):
//! the call's future is raced against a timer and the cancel signal, and
//! dropping it tears the instance down. A busy guest is stopped by the epoch
//! callback, which the ticker thread triggers every millisecond.

use std::cell::RefCell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmproc_abi::{MAX_GUEST_EXIT_CODE, failure};
use wasmtime::{InstancePre, ResourceLimiter, Store, Trap, UpdateDeadline, WasmBacktrace};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtxBuilder};

use crate::cancel::CancelToken;
use crate::capture::{Capture, WriterSink};
use crate::module::{Module, Signature};
use crate::outcome::{ExitStatus, Outcome, TrapKind};
use crate::sdk_imports::SdkState;
use crate::task::{Entry, Output, Stdin, Task};

/// The data of every task's store.
pub(crate) struct HostState {
    pub(crate) wasi: WasiP1Ctx,
    pub(crate) sdk: SdkState,
    memory: MemoryGuard,
}

impl HostState {
    /// A state with nothing granted, for stores that never run a guest.
    pub(crate) fn scratch() -> Self {
        HostState {
            wasi: WasiCtxBuilder::new().build_p1(),
            sdk: SdkState::default(),
            memory: MemoryGuard::new(u64::MAX),
        }
    }
}

/// Why the epoch callback stopped a busy guest.
#[derive(Debug)]
enum Interrupted {
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

/// Enforces the memory limit and records the peak.
struct MemoryGuard {
    limit: u64,
    peak: u64,
    refused: Option<u64>,
}

/// The error a refused memory growth traps with.
#[derive(Debug)]
struct MemoryLimitHit;

impl std::fmt::Display for MemoryLimitHit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("memory limit exceeded")
    }
}

impl std::error::Error for MemoryLimitHit {}

impl MemoryGuard {
    fn new(limit: u64) -> Self {
        MemoryGuard {
            limit,
            peak: 0,
            refused: None,
        }
    }
}

impl ResourceLimiter for MemoryGuard {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let desired_bytes = desired as u64;
        if desired_bytes > self.limit {
            self.refused = Some(desired_bytes);
            // An error, not `Ok(false)`: the guest would see a failed
            // `memory.grow` and could limp on or trap for another reason;
            // the contract is that a memory limit ends the task.
            return Err(wasmtime::Error::new(MemoryLimitHit));
        }
        if maximum.is_none_or(|max| desired <= max) {
            self.peak = self.peak.max(desired_bytes);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        _desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(true)
    }
}

/// The export a task resolves to.
enum Resolved {
    Start,
    Task { export: String, initialize: bool },
}

/// Where a run failed: setting up the instance, or running the guest.
enum Phase {
    Instantiate,
    Call,
}

/// How the race between the guest, the timer and the cancel signal ended.
enum Raced {
    Finished(Result<i32, (Phase, wasmtime::Error)>),
    TimedOut,
    Cancelled,
}

/// Runs `task` on `module`; see [`Module::run`].
pub(crate) fn run(module: &Module, task: &Task, cancel: &CancelToken) -> Outcome {
    let started = Instant::now();
    let mut outcome = match catch_unwind(AssertUnwindSafe(|| run_guarded(module, task, cancel))) {
        Ok(outcome) => outcome,
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Outcome::failed(
                ExitStatus::WorkerLost,
                format!(
                    "the host panicked while serving the guest ({what}); the task was abandoned and the host goes on"
                ),
            )
        }
    };
    outcome.duration = started.elapsed();
    outcome
}

fn run_guarded(module: &Module, task: &Task, cancel: &CancelToken) -> Outcome {
    if let Err(error) = task.limits.validate() {
        return Outcome::failed(ExitStatus::BadInvocation, error.to_string());
    }
    if cancel.is_cancelled() {
        return Outcome::failed(
            ExitStatus::Cancelled,
            "the task was cancelled before it started",
        );
    }
    if tokio::runtime::Handle::try_current().is_ok() {
        return Outcome::failed(
            ExitStatus::BadInvocation,
            "Module::run blocks until the task ends: call it from a plain thread \
             (e.g. inside tokio::task::spawn_blocking), not from an async runtime",
        );
    }
    let resolved = match resolve(module, &task.entry) {
        Ok(resolved) => resolved,
        Err(message) => return Outcome::failed(ExitStatus::CannotRun, message),
    };
    if let Resolved::Task { .. } = resolved
        && let Err(message) = validate_input(task)
    {
        return Outcome::failed(ExitStatus::BadInvocation, message);
    }
    let fuel = task.limits.get_fuel().is_some();
    let runtime = &module.inner.runtime.inner;
    let (prepared, engine) = match module.prepared(fuel).and_then(|p| {
        let engine = if fuel {
            runtime.fuel()?
        } else {
            runtime.plain()
        };
        Ok((p, engine))
    }) {
        Ok(found) => found,
        Err(error) => return Outcome::failed(error.exit_status(), error.to_string()),
    };
    let pre = match &prepared.pre {
        Ok(pre) => pre,
        Err(message) => return Outcome::failed(ExitStatus::CannotRun, message.clone()),
    };

    let mut stdout = None;
    let mut stderr = None;
    let wasi = match wasi_context(module, task, &mut stdout, &mut stderr) {
        Ok(wasi) => wasi,
        Err(message) => return Outcome::failed(ExitStatus::BadInvocation, message),
    };
    let state = HostState {
        wasi,
        sdk: SdkState {
            input: Arc::clone(&task.input),
            ..SdkState::default()
        },
        memory: MemoryGuard::new(task.limits.get_max_memory()),
    };
    // Declared before the store, so the store (and its pooled instance) is
    // dropped first and the place is free when the guard gives it back.
    let Some(_slot) = engine.slots.acquire(|| cancel.is_cancelled()) else {
        return Outcome::failed(
            ExitStatus::Cancelled,
            "the task was cancelled before it started",
        );
    };
    let started = Instant::now();
    let mut store = Store::new(&engine.engine, state);
    store.limiter(|state| &mut state.memory);
    if let Some(fuel) = task.limits.get_fuel()
        && let Err(error) = store.set_fuel(fuel)
    {
        return Outcome::failed(
            ExitStatus::CannotRun,
            format!("cannot meter fuel: {error:#}"),
        );
    }
    let deadline = task.limits.get_timeout().map(|timeout| started + timeout);
    let epoch_cancel = cancel.clone();
    store.epoch_deadline_callback(move |_| {
        if epoch_cancel.is_cancelled() {
            return Err(wasmtime::Error::new(Interrupted::Cancelled));
        }
        if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            return Err(wasmtime::Error::new(Interrupted::TimedOut));
        }
        Ok(UpdateDeadline::Continue(1))
    });
    store.set_epoch_deadline(1);

    let raced = {
        let _ticking = runtime.ticker.task_running();
        block_on(race(call(&mut store, pre, &resolved), deadline, cancel))
    };

    let mut outcome = classify(raced, &resolved, &mut store, task.limits.get_timeout());
    if let Some(fuel) = task.limits.get_fuel() {
        outcome.fuel_used = Some(fuel.saturating_sub(store.get_fuel().unwrap_or(0)));
    }
    outcome.peak_memory_bytes = store.data().memory.peak;
    outcome.stdout = stdout.map(|c: Capture| c.take()).unwrap_or_default();
    outcome.stderr = stderr.map(|c: Capture| c.take()).unwrap_or_default();
    outcome
}

fn resolve(module: &Module, entry: &Entry) -> Result<Resolved, String> {
    let info = &module.inner.info;
    let name = module.name();
    let task_list = || {
        if info.tasks.is_empty() {
            "it exports no wasmproc tasks".to_owned()
        } else {
            format!("its tasks: {}", info.tasks.join(", "))
        }
    };
    let task = |task: &str| Resolved::Task {
        export: format!("{}{task}", wasmproc_abi::TASK_EXPORT_PREFIX),
        initialize: info.has_initialize,
    };
    match entry {
        Entry::Command => match &info.start {
            Signature::Right => Ok(Resolved::Start),
            Signature::Missing => Err(format!(
                "`{name}` is not a WASI command: it has no `_start` export ({}); pick a task instead",
                task_list()
            )),
            Signature::Wrong(ty) => Err(format!(
                "`{name}` exports `_start` as {ty}; a command's `_start` is func () -> ()"
            )),
        },
        Entry::Task(wanted) => {
            if info.tasks.iter().any(|t| t == wanted) {
                Ok(task(wanted))
            } else if let Some((_, ty)) = info.malformed_tasks.iter().find(|(t, _)| t == wanted) {
                Err(format!(
                    "`{name}` exports task `{wanted}` as {ty}; a task export is func () -> (i32): \
                     build it with the wasmproc-guest SDK of this version"
                ))
            } else {
                Err(format!("`{name}` has no task `{wanted}`; {}", task_list()))
            }
        }
        Entry::Auto => match (&info.start, info.tasks.as_slice()) {
            (Signature::Right, _) => Ok(Resolved::Start),
            (_, [only]) => Ok(task(only)),
            (_, []) => Err(format!(
                "`{name}` exports neither `_start` nor any wasmproc task: nothing to run"
            )),
            (_, tasks) => Err(format!(
                "`{name}` exports several tasks ({}): choose one (`--task NAME`)",
                tasks.join(", ")
            )),
        },
    }
}

fn validate_input(task: &Task) -> Result<(), String> {
    let input = &task.input;
    let max = task.limits.get_max_args().min(i32::MAX as usize);
    if input.len() > max {
        return Err(format!(
            "the task's argument is {} bytes, over the limit of {max} bytes",
            input.len()
        ));
    }
    serde_json::from_slice::<serde::de::IgnoredAny>(input)
        .map(|_| ())
        .map_err(|error| format!("the task's argument is not valid JSON: {error}"))
}

fn wasi_context(
    module: &Module,
    task: &Task,
    stdout: &mut Option<Capture>,
    stderr: &mut Option<Capture>,
) -> Result<WasiP1Ctx, String> {
    let mut builder = WasiCtxBuilder::new();
    builder.arg(module.name());
    for arg in &task.argv {
        builder.arg(arg);
    }
    for (key, value) in &task.caps.env {
        builder.env(key, value);
    }
    match &task.stdin {
        Stdin::Empty => {}
        Stdin::Bytes(bytes) => {
            builder.stdin(wasmtime_wasi::p2::pipe::MemoryInputPipe::new(
                bytes::Bytes::copy_from_slice(bytes),
            ));
        }
        Stdin::Inherit => {
            builder.inherit_stdin();
        }
    }
    let max_output = task.limits.get_max_output();
    match &task.stdout {
        Output::Capture => {
            let capture = Capture::new(max_output);
            builder.stdout(capture.clone());
            *stdout = Some(capture);
        }
        Output::Inherit => {
            builder.inherit_stdout();
        }
        Output::Writer(writer) => {
            builder.stdout(WriterSink::new(Arc::clone(writer)));
        }
        Output::Discard => {}
    }
    match &task.stderr {
        Output::Capture => {
            let capture = Capture::new(max_output);
            builder.stderr(capture.clone());
            *stderr = Some(capture);
        }
        Output::Inherit => {
            builder.inherit_stderr();
        }
        Output::Writer(writer) => {
            builder.stderr(WriterSink::new(Arc::clone(writer)));
        }
        Output::Discard => {}
    }
    for grant in &task.caps.dirs {
        builder
            .preopened_dir(&grant.host, &grant.guest, FsPerms::ReadWrite)
            .map_err(|error| {
                format!(
                    "cannot grant directory `{}` (as `{}`): {error:#}; grant an existing directory",
                    grant.host.display(),
                    grant.guest
                )
            })?;
    }
    Ok(builder.build_p1())
}

async fn call(
    store: &mut Store<HostState>,
    pre: &InstancePre<HostState>,
    resolved: &Resolved,
) -> Result<i32, (Phase, wasmtime::Error)> {
    let instance = pre
        .instantiate_async(&mut *store)
        .await
        .map_err(|error| (Phase::Instantiate, error))?;
    let call_error = |error| (Phase::Call, error);
    match resolved {
        Resolved::Start => {
            let start = instance
                .get_typed_func::<(), ()>(&mut *store, "_start")
                .map_err(call_error)?;
            start
                .call_async(&mut *store, ())
                .await
                .map_err(call_error)?;
            Ok(0)
        }
        Resolved::Task { export, initialize } => {
            if *initialize {
                let init = instance
                    .get_typed_func::<(), ()>(&mut *store, "_initialize")
                    .map_err(call_error)?;
                init.call_async(&mut *store, ()).await.map_err(call_error)?;
            }
            let func = instance
                .get_typed_func::<(), i32>(&mut *store, export)
                .map_err(call_error)?;
            func.call_async(&mut *store, ()).await.map_err(call_error)
        }
    }
}

async fn race(
    call: impl Future<Output = Result<i32, (Phase, wasmtime::Error)>>,
    deadline: Option<Instant>,
    cancel: &CancelToken,
) -> Raced {
    let timer = async {
        match deadline {
            Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        biased;
        result = call => Raced::Finished(result),
        () = cancel.cancelled() => Raced::Cancelled,
        () = timer => Raced::TimedOut,
    }
}

fn classify(
    raced: Raced,
    resolved: &Resolved,
    store: &mut Store<HostState>,
    timeout: Option<Duration>,
) -> Outcome {
    let timed_out = || {
        let limit = timeout
            .map(|t| humantime::format_duration(t).to_string())
            .unwrap_or_default();
        Outcome::failed(
            ExitStatus::TimedOut,
            format!("the task ran past its time limit of {limit}"),
        )
    };
    let cancelled = || Outcome::failed(ExitStatus::Cancelled, "the task was cancelled");
    let state = store.data_mut();
    let failure = state.sdk.failure.take();
    match raced {
        Raced::TimedOut => timed_out(),
        Raced::Cancelled => cancelled(),
        Raced::Finished(Ok(code)) => {
            let code = match resolved {
                Resolved::Start => 0,
                Resolved::Task { .. } => code,
            };
            if let Some(failure) = &failure
                && failure.kind == failure::BAD_INPUT
            {
                return Outcome::failed(ExitStatus::BadInvocation, failure.message.clone());
            }
            match u8::try_from(code) {
                Ok(code) if code <= MAX_GUEST_EXIT_CODE => {
                    let mut outcome = Outcome::failed(ExitStatus::Exited(code), String::new());
                    outcome.message = failure.map(|f| f.message);
                    if code == 0 {
                        outcome.result = state.sdk.output.take();
                    }
                    outcome
                }
                _ => Outcome::failed(
                    ExitStatus::CannotRun,
                    format!(
                        "the task returned exit code {code}; a guest owns 0–{MAX_GUEST_EXIT_CODE}"
                    ),
                ),
            }
        }
        Raced::Finished(Err((phase, error))) => {
            if let Some(exit) = error.downcast_ref::<I32Exit>() {
                let code = u8::try_from(exit.0).unwrap_or(MAX_GUEST_EXIT_CODE);
                let mut outcome = Outcome::failed(ExitStatus::Exited(code), String::new());
                outcome.message = failure.map(|f| f.message);
                if code == 0 {
                    outcome.result = state.sdk.output.take();
                }
                return outcome;
            }
            if let Some(interrupted) = error.downcast_ref::<Interrupted>() {
                return match interrupted {
                    Interrupted::TimedOut => timed_out(),
                    Interrupted::Cancelled => cancelled(),
                };
            }
            if let Some(asked) = state.memory.refused {
                return Outcome::failed(
                    ExitStatus::MemoryExceeded,
                    format!(
                        "the task needed {} of memory, over its limit of {}",
                        bytesize::ByteSize(asked).display().iec(),
                        bytesize::ByteSize(state.memory.limit).display().iec()
                    ),
                );
            }
            let backtrace = error
                .downcast_ref::<WasmBacktrace>()
                .map(|bt| bt.to_string());
            let (status, message) = match error.downcast_ref::<Trap>() {
                Some(Trap::OutOfFuel) => (
                    ExitStatus::FuelExhausted,
                    "the task used up its fuel limit".to_owned(),
                ),
                Some(trap) => (ExitStatus::Trapped(trap_kind(*trap)), trap.to_string()),
                None => match phase {
                    Phase::Instantiate => (
                        ExitStatus::CannotRun,
                        format!("cannot instantiate the module: {}", root_message(&error)),
                    ),
                    Phase::Call => (
                        ExitStatus::Trapped(TrapKind::HostError),
                        root_message(&error),
                    ),
                },
            };
            let mut outcome = Outcome::failed(status, message);
            outcome.backtrace = backtrace;
            outcome
        }
    }
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

thread_local! {
    /// Each thread that runs tasks keeps one small single-threaded async
    /// runtime: its timer serves timeouts and WASI's sleeps.
    static ASYNC_RUNTIME: RefCell<Option<tokio::runtime::Runtime>> = const { RefCell::new(None) };
}

/// Drives `future` to completion on this thread's async runtime.
fn block_on<F: Future>(future: F) -> F::Output {
    // The runtime is taken out of the cell while in use: if the future
    // panics, it is dropped with the unwinding and the next task builds a
    // fresh one.
    let runtime = ASYNC_RUNTIME
        .with(|cell| cell.borrow_mut().take())
        .unwrap_or_else(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a single-threaded tokio runtime needs only a timer and an I/O driver")
        });
    let output = runtime.block_on(future);
    ASYNC_RUNTIME.with(|cell| *cell.borrow_mut() = Some(runtime));
    output
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_guard_refuses_past_the_limit_and_tracks_the_peak() {
        let mut guard = MemoryGuard::new(128 << 10);
        assert!(guard.memory_growing(0, 64 << 10, None).unwrap());
        assert!(guard.memory_growing(64 << 10, 128 << 10, None).unwrap());
        assert!(guard.memory_growing(128 << 10, 192 << 10, None).is_err());
        assert_eq!(guard.peak, 128 << 10);
        assert_eq!(guard.refused, Some(192 << 10));
    }
}
