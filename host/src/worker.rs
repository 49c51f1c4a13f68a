//! Runs tasks, each in a fresh store and instance (or, for a chunk of
//! typed tasks, several calls in one instance), and turns however each
//! ended into an [`Outcome`].
//!
//! Guests run on wasmtime's async path so that a timeout or a cancellation
//! also ends a guest blocked inside a host call (sleeping, reading stdin):
//! the call's future is raced against a timer and the cancel signal, and
//! dropping it tears the instance down. A busy guest is stopped by the epoch
//! callback, which the ticker thread triggers every millisecond.

use std::cell::RefCell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Instant;

use wasmtime::{Instance, InstancePre, ResourceLimiter, Store, UpdateDeadline};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

use crate::cancel::CancelToken;
use crate::capture::{Capture, WriterSink};
use crate::ending::{Context, Interrupted, Phase, Raced, outcome_of};
use crate::engine::EngineSlot;
use crate::limits::Limits;
use crate::module::Module;
use crate::outcome::{ExitStatus, Outcome};
use crate::sdk_imports::SdkState;
use crate::task::{Entry, Output, Stdin, Task};

/// The data of every task's store.
pub(crate) struct HostState {
    pub(crate) wasi: WasiP1Ctx,
    pub(crate) sdk: SdkState,
    memory: MemoryGuard,
    /// When the current call must end; read by the epoch callback.
    deadline: Option<Instant>,
    cancel: CancelToken,
}

impl HostState {
    /// A state with nothing granted, for stores that never run a guest.
    pub(crate) fn scratch() -> Self {
        HostState {
            wasi: WasiCtxBuilder::new().build_p1(),
            sdk: SdkState::default(),
            memory: MemoryGuard::new(u64::MAX),
            deadline: None,
            cancel: CancelToken::never(),
        }
    }
}

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
#[derive(Clone, Copy, PartialEq, Eq)]
enum Resolved<'m> {
    Start,
    Task { export: &'m str, initialize: bool },
}

/// Runs `task` on `module`; see [`Module::run`].
pub(crate) fn run(module: &Module, task: &Task, cancel: &CancelToken) -> Outcome {
    let mut outcomes = run_chunk(module, std::slice::from_ref(task), cancel);
    outcomes.pop().expect("one outcome per task")
}

/// Runs `tasks` in order and returns exactly one outcome per task.
///
/// Consecutive typed tasks that share an export, capabilities and limits
/// run as calls into one instance (the trade-off of chunking: state left by
/// one call is seen by the next). After a call that did not return normally
/// (a trap, `proc_exit`, a limit) the instance is dropped and the next task
/// gets a fresh one. Commands always get a fresh instance each.
pub(crate) fn run_chunk(module: &Module, tasks: &[Task], cancel: &CancelToken) -> Vec<Outcome> {
    let mut outcomes = Vec::with_capacity(tasks.len());
    while outcomes.len() < tasks.len() {
        let done = outcomes.len();
        let started = Instant::now();
        let attempt = catch_unwind(AssertUnwindSafe(|| {
            run_guarded(module, &tasks[done..], cancel, &mut outcomes)
        }));
        if let Err(payload) = attempt {
            // The panic hit the task after the last recorded outcome; the
            // ones after it run on.
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            let mut lost = Outcome::failed(
                ExitStatus::WorkerLost,
                format!(
                    "the host panicked while serving the guest ({what}); \
                     the task was abandoned and the host goes on"
                ),
            );
            lost.duration = started.elapsed();
            outcomes.push(lost);
        }
    }
    outcomes
}

/// Runs `tasks`, pushing one outcome per task to `outcomes` as each ends.
fn run_guarded(module: &Module, tasks: &[Task], cancel: &CancelToken, outcomes: &mut Vec<Outcome>) {
    // The instance shared by consecutive compatible typed tasks, with the
    // slot it holds in the instance pool.
    let mut live: Option<Live<'_>> = None;
    for task in tasks {
        let started = Instant::now();
        let plan = match plan(module, task, cancel) {
            Ok(plan) => plan,
            Err(refused) => {
                let mut outcome = Outcome::from(refused);
                outcome.duration = started.elapsed();
                outcomes.push(outcome);
                continue;
            }
        };
        let reusable = live.as_ref().is_some_and(|l| l.can_serve(&plan, task));
        if !reusable {
            live = None;
            match Live::start(module, &plan, task, cancel) {
                Ok(started_live) => live = Some(started_live),
                Err(refused) => {
                    let mut outcome = Outcome::from(refused);
                    outcome.duration = started.elapsed();
                    outcomes.push(outcome);
                    continue;
                }
            }
        }
        let current = live.as_mut().expect("started above");
        let (mut outcome, keep) = current.invoke(module, &plan, task);
        outcome.duration = started.elapsed();
        outcomes.push(outcome);
        if !keep || !matches!(plan.resolved, Resolved::Task { .. }) {
            live = None;
        }
    }
}

/// What a task needs, checked before any instance is made.
struct Plan<'m> {
    resolved: Resolved<'m>,
    limits: Limits,
    engine: &'m EngineSlot,
    pre: &'m InstancePre<HostState>,
}

/// Why a task ended before any guest code ran: a small stand-in for the
/// outcome it becomes.
struct Refused {
    status: ExitStatus,
    message: String,
}

impl From<Refused> for Outcome {
    fn from(refused: Refused) -> Outcome {
        Outcome::failed(refused.status, refused.message)
    }
}

fn plan<'m>(module: &'m Module, task: &Task, cancel: &CancelToken) -> Result<Plan<'m>, Refused> {
    fn fail<T>(status: ExitStatus, message: String) -> Result<T, Refused> {
        Err(Refused { status, message })
    }
    if let Some(message) = &task.rejected {
        return fail(ExitStatus::BadInvocation, message.clone());
    }
    let limits = task.limits.clone().unwrap_or_default();
    if let Err(error) = limits.validate() {
        return fail(ExitStatus::BadInvocation, error.to_string());
    }
    if cancel.is_cancelled() {
        return fail(
            ExitStatus::Cancelled,
            "the task was cancelled before it started".into(),
        );
    }
    let resolved =
        resolve(module, &task.entry).or_else(|message| fail(ExitStatus::CannotRun, message))?;
    if let Resolved::Task { .. } = resolved {
        validate_input(task, &limits)
            .or_else(|message| fail(ExitStatus::BadInvocation, message))?;
    }
    let fuel = limits.get_fuel().is_some();
    let runtime = &module.inner.runtime.inner;
    let found = module.prepared(fuel).and_then(|prepared| {
        let engine = if fuel {
            runtime.fuel()?
        } else {
            runtime.plain()
        };
        Ok((prepared, engine))
    });
    let (prepared, engine) = found.or_else(|error| fail(error.exit_status(), error.to_string()))?;
    let pre = prepared
        .pre
        .as_ref()
        .or_else(|message| fail(ExitStatus::CannotRun, message.clone()))?;
    Ok(Plan {
        resolved,
        limits,
        engine,
        pre,
    })
}

/// A store, its instance once made, and the captures of its output.
struct Live<'m> {
    store: Store<HostState>,
    instance: Option<Instance>,
    stdout: Option<Capture>,
    stderr: Option<Capture>,
    /// The task this store was made for: later tasks must match it.
    shape: &'m Task,
    /// The entry of that first task: it decides `_initialize`.
    resolved: Resolved<'m>,
    fuel: bool,
    // Dropped after the store (fields drop in order), so the instance is
    // back in the pool when the place is given back.
    _slot: crate::engine::SlotGuard<'m>,
}

impl<'m> Live<'m> {
    fn start(
        module: &Module,
        plan: &Plan<'m>,
        task: &'m Task,
        cancel: &CancelToken,
    ) -> Result<Self, Refused> {
        let mut stdout = None;
        let mut stderr = None;
        let wasi = wasi_context(module, task, &plan.limits, &mut stdout, &mut stderr).map_err(
            |message| Refused {
                status: ExitStatus::BadInvocation,
                message,
            },
        )?;
        let slot = plan
            .engine
            .slots
            .acquire(|| cancel.is_cancelled())
            .ok_or_else(|| Refused {
                status: ExitStatus::Cancelled,
                message: "the task was cancelled before it started".into(),
            })?;
        let state = HostState {
            wasi,
            sdk: SdkState::default(),
            memory: MemoryGuard::new(plan.limits.get_max_memory()),
            deadline: None,
            cancel: cancel.clone(),
        };
        let mut store = Store::new(&plan.engine.engine, state);
        store.limiter(|state| &mut state.memory);
        store.epoch_deadline_callback(|context| {
            let state = context.data();
            if state.cancel.is_cancelled() {
                return Err(wasmtime::Error::new(Interrupted::Cancelled));
            }
            if state
                .deadline
                .is_some_and(|deadline| Instant::now() >= deadline)
            {
                return Err(wasmtime::Error::new(Interrupted::TimedOut));
            }
            Ok(UpdateDeadline::Continue(1))
        });
        store.set_epoch_deadline(1);
        Ok(Live {
            store,
            instance: None,
            stdout,
            stderr,
            shape: task,
            resolved: plan.resolved,
            fuel: plan.limits.get_fuel().is_some(),
            _slot: slot,
        })
    }

    /// Whether `task` may run in this instance after the previous one.
    fn can_serve(&self, plan: &Plan<'_>, task: &Task) -> bool {
        let shape = self.shape;
        matches!(plan.resolved, Resolved::Task { .. })
            && matches!(self.resolved, Resolved::Task { .. })
            && plan.limits.get_fuel().is_some() == self.fuel
            && shape.caps == task.caps
            && shape.argv == task.argv
            && shape.limits.as_ref().map(Limits::get_max_memory)
                == task.limits.as_ref().map(Limits::get_max_memory)
            && matches!((&shape.stdin, &task.stdin), (Stdin::Empty, Stdin::Empty))
            && matches!(
                (&shape.stdout, &task.stdout, &shape.stderr, &task.stderr),
                (
                    Output::Capture,
                    Output::Capture,
                    Output::Capture,
                    Output::Capture
                )
            )
    }

    /// Runs one task in this store; returns its outcome and whether the
    /// instance is still fit for another call.
    fn invoke(&mut self, module: &Module, plan: &Plan<'_>, task: &Task) -> (Outcome, bool) {
        let cancel = self.store.data().cancel.clone();
        let state = self.store.data_mut();
        state.sdk = SdkState {
            input: Arc::clone(&task.input),
            ..SdkState::default()
        };
        // A timeout too long to represent is no timeout at all.
        let deadline = plan
            .limits
            .get_timeout()
            .and_then(|timeout| Instant::now().checked_add(timeout));
        state.deadline = deadline;
        if let Some(fuel) = plan.limits.get_fuel()
            && let Err(error) = self.store.set_fuel(fuel)
        {
            let message = format!("cannot meter fuel: {error:#}");
            return (Outcome::failed(ExitStatus::CannotRun, message), false);
        }

        let raced = {
            let _ticking = module.inner.runtime.inner.ticker.task_running();
            block_on(race(
                self.enter(plan.pre, &plan.resolved),
                deadline,
                &cancel,
            ))
        };
        let keep = matches!(raced, Raced::Returned(_));
        let state = self.store.data_mut();
        let context = Context {
            sdk: &mut state.sdk,
            memory_refused: state.memory.refused,
            memory_limit: state.memory.limit,
            timeout: plan.limits.get_timeout(),
        };
        let mut outcome = outcome_of(raced, context);
        outcome.peak_memory_bytes = state.memory.peak;
        if let Some(fuel) = plan.limits.get_fuel() {
            outcome.fuel_used = Some(fuel.saturating_sub(self.store.get_fuel().unwrap_or(0)));
        }
        outcome.stdout = self.stdout.as_ref().map(Capture::take).unwrap_or_default();
        outcome.stderr = self.stderr.as_ref().map(Capture::take).unwrap_or_default();
        (outcome, keep)
    }

    /// Instantiates on first use, then calls the entry.
    async fn enter(
        &mut self,
        pre: &InstancePre<HostState>,
        resolved: &Resolved<'_>,
    ) -> Result<i32, (Phase, wasmtime::Error)> {
        let call_error = |error| (Phase::Call, error);
        let store = &mut self.store;
        let instance = match self.instance {
            Some(instance) => instance,
            None => {
                let instance = pre
                    .instantiate_async(&mut *store)
                    .await
                    .map_err(|error| (Phase::Instantiate, error))?;
                if let Resolved::Task {
                    initialize: true, ..
                } = self.resolved
                {
                    let init = instance
                        .get_typed_func::<(), ()>(&mut *store, "_initialize")
                        .map_err(call_error)?;
                    init.call_async(&mut *store, ()).await.map_err(call_error)?;
                }
                self.instance = Some(instance);
                instance
            }
        };
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
            Resolved::Task { export, .. } => {
                let func = instance
                    .get_typed_func::<(), i32>(&mut *store, export)
                    .map_err(call_error)?;
                func.call_async(&mut *store, ()).await.map_err(call_error)
            }
        }
    }
}

/// The export `entry` runs; the library's rules and messages are in
/// [`Module::resolve`].
fn resolve<'m>(module: &'m Module, entry: &Entry) -> Result<Resolved<'m>, String> {
    let info = &module.inner.info;
    match module.resolve(entry).map_err(|error| error.to_string())? {
        Entry::Task(name) => {
            let index = info
                .tasks
                .iter()
                .position(|t| *t == name)
                .expect("resolve checked it");
            Ok(Resolved::Task {
                export: &info.task_exports[index],
                initialize: info.has_initialize,
            })
        }
        _ => Ok(Resolved::Start),
    }
}

fn validate_input(task: &Task, limits: &Limits) -> Result<(), String> {
    let input = &task.input;
    let max = limits.get_max_args().min(i32::MAX as usize);
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
    limits: &Limits,
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
    let max_output = limits.get_max_output();
    *stdout = output_stream(&task.stdout, max_output, &mut builder, true);
    *stderr = output_stream(&task.stderr, max_output, &mut builder, false);
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

/// Points the guest's stdout (or stderr) where `output` says; returns the
/// capture when it is captured.
fn output_stream(
    output: &Output,
    cap: usize,
    builder: &mut WasiCtxBuilder,
    is_stdout: bool,
) -> Option<Capture> {
    let set = |builder: &mut WasiCtxBuilder,
               stream: Box<dyn wasmtime_wasi::cli::StdoutStream + Sync>| {
        if is_stdout {
            builder.stdout(stream);
        } else {
            builder.stderr(stream);
        }
    };
    match output {
        Output::Capture => {
            let capture = Capture::new(cap);
            set(builder, Box::new(capture.clone()));
            Some(capture)
        }
        Output::Inherit => {
            if is_stdout {
                builder.inherit_stdout();
            } else {
                builder.inherit_stderr();
            }
            None
        }
        Output::Writer(writer) => {
            set(builder, Box::new(WriterSink::new(Arc::clone(writer))));
            None
        }
        Output::Discard => None,
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
        result = call => match result {
            Ok(code) => Raced::Returned(code),
            Err((phase, error)) => Raced::Failed(phase, error),
        },
        () = cancel.cancelled() => Raced::Cancelled,
        () = timer => Raced::TimedOut,
    }
}

thread_local! {
    /// Each thread that runs tasks keeps one small single-threaded async
    /// runtime: its timer serves timeouts and WASI's sleeps.
    static ASYNC_RUNTIME: RefCell<Option<OwnRuntime>> = const { RefCell::new(None) };
}

/// A tokio runtime that does not wait for its blocking threads when
/// dropped: a WASI read abandoned by a timeout (a FIFO, say) may never
/// return, and must not hang the thread or the process on its way out.
struct OwnRuntime(Option<tokio::runtime::Runtime>);

impl Drop for OwnRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// Drives `future` to completion on this thread's async runtime.
fn block_on<F: Future + Send>(future: F) -> F::Output
where
    F::Output: Send,
{
    if tokio::runtime::Handle::try_current().is_ok() {
        // The caller is inside a tokio context (an async task, or
        // `spawn_blocking`), where starting another runtime is not allowed:
        // run on a thread of our own instead.
        return std::thread::scope(|scope| match scope.spawn(|| block_on_here(future)).join() {
            Ok(output) => output,
            Err(panic) => std::panic::resume_unwind(panic),
        });
    }
    block_on_here(future)
}

fn block_on_here<F: Future>(future: F) -> F::Output {
    // The runtime is taken out of the cell while in use: if the future
    // panics, it is dropped with the unwinding and the next task builds a
    // fresh one.
    let runtime = ASYNC_RUNTIME
        .with(|cell| cell.borrow_mut().take())
        .unwrap_or_else(|| {
            OwnRuntime(Some(
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a single-threaded tokio runtime needs only a timer and an I/O driver"),
            ))
        });
    let output = runtime
        .0
        .as_ref()
        .expect("present until dropped")
        .block_on(future);
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
