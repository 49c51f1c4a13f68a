//! `Module::initialize`: run an initializer once, snapshot the instance it
//! leaves (memories and globals) into a new module with `wasmtime-wizer`,
//! and keep that snapshot in the cache under what made it.
//!
//! The initializer runs as a task does (same store, limits, cancel signal
//! and status table), in an instance of the module that wizer instrumented
//! so that its state can be read back. Between the call and the snapshot
//! the host checks (with a helper instance in the same store) that the
//! guest holds no open file: a snapshot keeps
//! memory, not the host's handles, so a descriptor number remembered in
//! memory would name nothing (or something else) in every task.

use serde::Serialize;

use wasmtime::component::{Component, WasmList};
use wasmtime::{Instance, Linker, Store};
use wasmtime_wizer::{ComponentInstanceState, InstanceState, SnapshotVal, ValType, Wizer};

use super::driver::block_on;
use super::instance::Live;
use super::libc_reset::{export_libc_reset, kept_open, reset_libc};
use super::plan::{Plan, checked_limits};
use crate::cache::{CacheStatus, Compiled, Identity, Phases, Session};
use crate::cancel::CancelToken;
use crate::error::{Error, ErrorKind};
use crate::module::snapshot_data::{Segment, non_zero_ranges, with_segments};
use crate::module::{Module, Origin, Resolved, Runnable};
use crate::mutex::Mutex;
use crate::outcome::{FailedRun, Outcome};
use crate::status::ExitStatus;
use crate::store::{HostState, instantiate_pre};
use crate::task::{Initializer, Task};
use wasmtime_wasi::WasiView;

/// How many descriptor numbers past the granted directories are checked
/// for a file the initializer left open. WASI hands out the lowest free
/// number, so only a guest that opened this many files at once escapes it.
const OPEN_FILE_SCAN: u32 = 1024;

impl Module {
    /// Runs the initializer `init` with `arg` once and returns a module
    /// whose every instance starts from the state it left: "fork without
    /// fork". See [`Module::initialize_with`].
    ///
    /// ```no_run
    /// # fn main() -> Result<(), wasmproc::Error> {
    /// let runtime = wasmproc::Runtime::new()?;
    /// let module = runtime.load("primes.wasm")?;
    /// // The sieve is built once (or found in the cache)...
    /// let primes = module.initialize("sieve", &50_000_000u32)?;
    /// // ...and every task reads it, each in a fresh instance.
    /// let outcome = primes.run(&wasmproc::Task::call("is_prime", &999_983u32)?);
    /// assert!(outcome.decode::<bool>()?);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Module::initialize_with`].
    pub fn initialize<A: Serialize + ?Sized>(&self, init: &str, arg: &A) -> Result<Module, Error> {
        self.initialize_with(&Initializer::call(init, arg)?)
    }

    /// Runs `init` once under its limits and capabilities, snapshots the
    /// instance's memories and globals into a new module, and returns that
    /// module: its tasks start from the snapshot, each in a fresh instance
    /// (copy-on-write: a task that changes the state changes its own copy).
    ///
    /// The snapshot is cached under the module's hash, the initializer's
    /// name, its argument and its capabilities, so the next program that
    /// asks for the same one loads it instead of initializing again
    /// ([`Module::cache_status`] says which happened). The snapshot's
    /// `_initialize` and `init` exports are gone: they ran.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::CannotRun`] when the module has no such initializer or
    /// cannot be snapshot (it imports a memory, say); an initializer that
    /// fails, traps, panics or exceeds a limit gives
    /// [`ErrorKind::TaskFailed`] with the status and message a task would
    /// get (its bad argument, [`ErrorKind::BadInvocation`]); one that leaves
    /// a file open, [`ErrorKind::CannotRun`] naming it. Nothing is cached
    /// then.
    pub fn initialize_with(&self, init: &Initializer) -> Result<Module, Error> {
        self.initialize_with_cancel(init, &CancelToken::never())
    }

    /// As [`initialize_with`](Module::initialize_with), ending the
    /// initializer with `Cancelled` when `token` is cancelled (by a Ctrl-C
    /// handler, say).
    pub fn initialize_with_cancel(
        &self,
        init: &Initializer,
        token: &CancelToken,
    ) -> Result<Module, Error> {
        let resolved = self.resolve_initializer(&init.name)?;
        if self.is_component() {
            self.snapshot_from::<Component>(init, resolved, token, Module::component_snapshot)
        } else {
            self.snapshot_from::<wasmtime::Module>(init, resolved, token, Module::snapshot)
        }
    }

    /// The snapshot `init` leaves, from the cache or by running it, made
    /// a module by `build` (compiled code `C`: a core module's or a
    /// component's).
    fn snapshot_from<C: Compiled>(
        &self,
        init: &Initializer,
        resolved: Resolved<'_>,
        token: &CancelToken,
        build: SnapshotBuilder<C>,
    ) -> Result<Module, Error> {
        let identity = snapshot_identity(self, init);
        let engine = &self.runtime().engine(false)?.engine;
        let cache = self.runtime().cache();
        let origin = |status| Origin {
            base: self.clone(),
            init: init.clone(),
            cached: status != CacheStatus::Uncached,
            status,
        };
        if let Some(compiled) = cache.load_snapshot(engine, &identity) {
            let found = Ok((compiled, CacheStatus::Hit));
            return build(self, identity, found, None, origin(CacheStatus::Hit));
        }
        // One session for the instrumented copy's compile (when it is not
        // in the cache yet) and the snapshot's: they share the module's code.
        let session = cache.functions_of(engine, self.identity());
        let wasm = run_and_snapshot(self, init, resolved, token, session.as_ref())?;
        let compiler = |functions| self.runtime().snapshot_compiler(false, functions);
        let compiled = cache.compile_snapshot(engine, compiler, session, &identity, &wasm);
        let status = compiled
            .as_ref()
            .map_or(CacheStatus::Uncached, |(_, status)| *status);
        build(self, identity, compiled, Some(wasm), origin(status))
    }
}

/// How a snapshot's compiled code `C` becomes a module: `Module::snapshot`
/// or `Module::component_snapshot`.
type SnapshotBuilder<C> = fn(
    &Module,
    Identity,
    Result<(C, CacheStatus), wasmtime::Error>,
    Option<Vec<u8>>,
    Origin,
) -> Result<Module, Error>;

/// A snapshot's wasm made again: its initializer run over its base,
/// uncached. Handed down to the module layer where a snapshot found in the
/// cache may need its wasm ([`Module::wasm_or_remake`]).
pub(super) fn remake(origin: &Origin) -> Result<Vec<u8>, Error> {
    let resolved = origin.base.resolve_initializer(&origin.init.name)?;
    run_and_snapshot(
        &origin.base,
        &origin.init,
        resolved,
        &CancelToken::never(),
        None,
    )
}

/// The cache identity of `init`'s snapshot of `module`. The limits are not
/// in it: they decide whether the run succeeds, not what it leaves.
fn snapshot_identity(module: &Module, init: &Initializer) -> Identity {
    let caps = serde_json::to_vec(&init.caps).unwrap_or_default();
    Identity::of_snapshot(module.identity(), &init.name, &[&init.input, &caps])
}

/// Runs the initializer in an instrumented instance and returns the
/// snapshot's wasm. The instrumented copy, when it must be compiled,
/// compiles in `session` (the snapshot's compile then finds its functions)
/// unless the initializer meters fuel (other code).
fn run_and_snapshot(
    module: &Module,
    init: &Initializer,
    resolved: Resolved<'_>,
    cancel: &CancelToken,
    session: Option<&Session<'_>>,
) -> Result<Vec<u8>, Error> {
    if let Resolved::ComponentInit { name } = resolved {
        return run_and_snapshot_component(module, init, name, resolved, cancel, session);
    }
    let (name, export, task) = match resolved {
        Resolved::Task { name, export, .. } => {
            (name, export, Task::call_json(name, init.input.clone()))
        }
        // `wizer.initialize` takes no argument: one given is a mistake.
        Resolved::Export { export, .. } => {
            if serde_json::from_slice::<serde_json::Value>(&init.input).ok()
                != Some(serde_json::Value::Null)
            {
                return Err(Error::new(
                    ErrorKind::BadInvocation,
                    format!(
                        "the initializer `{}` of `{}` (its `{export}` export) takes no \
                         argument: leave --init-args out",
                        init.name,
                        module.name()
                    ),
                ));
            }
            (init.name.as_str(), export, Task::invoke(export))
        }
        Resolved::Command | Resolved::ComponentTask { .. } | Resolved::ComponentInit { .. } => {
            unreachable!("a core module's initializer resolves to a call of its own")
        }
    };
    let cannot_snapshot = |why: String| {
        Error::new(
            ErrorKind::CannotRun,
            format!("cannot snapshot `{}`: {why}", module.name()),
        )
    };
    let mut task = task.capabilities(init.caps.clone());
    task.limits = init.limits.clone();
    let limits = checked_limits(&task, cancel)?;

    let mut phase = Phases::start();
    let mut wizer = Wizer::new();
    wizer.init_func(export);
    let (context, instrumented) = wizer
        .instrument(module.wasm_or_remake(remake)?)
        .map_err(|error| cannot_snapshot(format!("{error:#}")))?;
    let runtime = module.runtime();
    let engine = runtime.engine(limits.fuel.is_some())?;
    let (compiled, _) = runtime
        .cache()
        .load_or_compile_instrumented::<wasmtime::Module>(
            &engine.engine,
            &instrumented,
            session.filter(|_| !engine.consume_fuel),
            |functions| runtime.snapshot_compiler(false, functions),
        )
        .map_err(|error| cannot_snapshot(format!("{error:#}")))?;
    let pre = instantiate_pre(&engine.linker, &compiled, engine.stub_unknown_imports)
        .map_err(|error| cannot_snapshot(format!("it cannot be linked: {error:#}")))?;
    phase.done("instrument the module, compile it (or find it compiled)");
    let plan = Plan {
        resolved,
        limits,
        engine,
        pre: Runnable::Core(&pre),
        args: Vec::new(),
    };

    let mut live = run_initializer(module, &plan, &task, cancel, name)?;
    phase.done("run the initializer");
    // The helper instance holds the pool's spare place until its store
    // (`live`) is gone: the guard outlives it.
    let one_at_a_time = PROBING.lock();
    let snapshot = {
        let (store, instance) = live
            .parts()
            .expect("an instance exists after a call that returned");
        let granted = u32::try_from(init.caps.dirs.len()).unwrap_or(u32::MAX);
        match block_on(open_file(store, &engine.linker, granted)) {
            Err(error) => Err(cannot_snapshot(format!(
                "cannot check it for open files: {error:#}"
            ))),
            Ok(Some(fd)) => Err(cannot_snapshot(format!(
                "the initializer `{name}` returned with a file still open (descriptor {fd}); \
                 a snapshot holds memory, not the host's files: read what it needs into \
                 memory and close the file (drop it) before the initializer returns"
            ))),
            Ok(None) => {
                phase.done("check for open files");
                let mut state = Snapshotting {
                    store,
                    instance,
                    memories: Vec::new(),
                };
                block_on(wizer.snapshot(&context, &mut state))
                    .and_then(|wasm| {
                        phase.done("snapshot the globals (wizer)");
                        with_memories(&wasm, &mut state, &compiled)
                    })
                    .map_err(|error| cannot_snapshot(format!("{error:#}")))
            }
        }
    };
    phase.done("add the memories as data segments");
    drop(live);
    drop(one_at_a_time);
    snapshot
}

/// Runs the initializer `name` as `task` in a fresh store; the store,
/// once it returned, or the error of one that did not succeed: the status
/// and message a task would have.
fn run_initializer<'m>(
    module: &Module,
    plan: &Plan<'m>,
    task: &'m Task,
    cancel: &CancelToken,
    name: &str,
) -> Result<Live<'m>, Error> {
    let mut live = Live::start(module, plan, task, cancel)?;
    let (outcome, _) = live.invoke(module, plan, task);
    if outcome.success() {
        Ok(live)
    } else {
        Err(initializer_failed(module, name, outcome))
    }
}

/// The error of an initializer that did not succeed.
fn initializer_failed(module: &Module, name: &str, outcome: Outcome) -> Error {
    let kind = match outcome.status {
        ExitStatus::BadInvocation => ErrorKind::BadInvocation,
        ExitStatus::Cancelled => ErrorKind::Cancelled,
        status => ErrorKind::TaskFailed(status),
    };
    let mut failed = FailedRun(outcome);
    if kind == ErrorKind::BadInvocation
        && let Some(message) = &mut failed.0.message
    {
        // The argument's example names the task's flag; an initializer's
        // argument is given with its own.
        *message = message.replace("e.g. --args '", "e.g. --init-args '");
    }
    Error::new(
        kind,
        format!(
            "the initializer `{name}` of `{}` failed: {}",
            module.name(),
            failed.why()
        ),
    )
    // Its trap kind, backtrace and output, for those who show them.
    .caused_by(failed)
}

/// Runs a component's initializer `name` (an SDK component's, or an
/// exported WIT function called with the initializer's argument) in an
/// instance of the component wizer instrumented, and returns wizer's
/// snapshot of it: a component whose core instances start with the
/// memories and globals the initializer left.
///
/// A component's files, directories and streams are resources in its
/// instance's handle tables, which no snapshot keeps: a handle kept in
/// memory would name nothing in a task's instance (a use of it traps).
/// So a libc that can let go of them (`libc_reset`) is asked to once the
/// initializer returned, and an initializer that still holds any (a file
/// it left open; with a libc linked into the program, the directories it
/// looked up and its streams) is refused.
fn run_and_snapshot_component(
    module: &Module,
    init: &Initializer,
    name: &str,
    resolved: Resolved<'_>,
    cancel: &CancelToken,
    session: Option<&Session<'_>>,
) -> Result<Vec<u8>, Error> {
    let cannot_snapshot = |why: String| {
        Error::new(
            ErrorKind::CannotRun,
            format!("cannot snapshot the component `{}`: {why}", module.name()),
        )
    };
    let mut task = Task::call_json(name, init.input.clone()).capabilities(init.caps.clone());
    task.limits = init.limits.clone();
    let limits = checked_limits(&task, cancel)?;

    let mut phase = Phases::start();
    let mut wizer = Wizer::new();
    // Its default initializer name, `wizer-initialize`, would otherwise be
    // dropped from the snapshot's exports whatever ran.
    wizer.keep_init_func(true);
    let wasm = module.wasm_or_remake(remake)?;
    let (context, instrumented) = unpanicked(|| wizer.instrument_component(wasm))
        .map_err(|error| cannot_snapshot(format!("{error:#}")))?;
    let instrumented = export_libc_reset(instrumented);
    let engine = module.runtime().engine(limits.fuel.is_some())?;
    let session = session.filter(|_| !engine.consume_fuel);
    let prepared = module.prepare_instrumented(engine, &instrumented, session)?;
    phase.done("instrument the component, compile it (or find it compiled)");
    let plan = Plan {
        resolved,
        limits,
        engine,
        pre: prepared.runnable()?,
        args: Vec::new(),
    };
    let mut live = run_initializer(module, &plan, &task, cancel, name)?;
    phase.done("run the initializer");
    let (store, instance) = live
        .component_parts()
        .expect("an instance exists after a call that returned");
    // What the guest itself keeps open (a file, a directory past the
    // granted ones, a socket) would be a dangling descriptor in every
    // task, whether or not its libc could forget it: refused.
    let granted = init.caps.dirs.len();
    if let Some(open) = kept_open(store.data_mut().ctx().table, granted) {
        return Err(cannot_snapshot(format!(
            "the initializer `{name}` returned with {open} still open; a snapshot holds \
             memory, not the host's handles: read what it needs into memory and close it \
             before the initializer returns"
        )));
    }
    // A libc that can let go of its handles does so now (the granted
    // directories it looked up, its streams); each task's libc then looks
    // its own grants up again.
    let reset = reset_libc(store, instance).map_err(|error| {
        cannot_snapshot(format!(
            "wasi-libc's reset of its handles failed after the initializer `{name}`: \
             {error:#}"
        ))
    })?;
    let held = store.data_mut().ctx().table.iter_mut().count();
    if held > 0 {
        let libc = if reset {
            "its libc let go of what it looked up, but not of these"
        } else {
            "a directory its libc looked up counts too, and this libc cannot let go of it"
        };
        return Err(cannot_snapshot(format!(
            "the initializer `{name}` returned holding {held} WASI resource(s) (a file, a \
             directory, a stream; {libc}): a snapshot keeps memory, not the host's handles, \
             so every task would find them gone. Initialize without files and output (pass \
             the data as the initializer's argument), or run it in each task"
        )));
    }
    // Wizer reads the state through calls into the instance, which must
    // not be stopped by the initializer's time limit, cancel, fuel or
    // memory limit (each read first grows the memory it reads by a page).
    let state = store.data_mut();
    state.deadline = None;
    state.cancel = CancelToken::never();
    state.memory.limit = u64::MAX;
    if plan.limits.fuel.is_some() {
        store
            .set_fuel(u64::MAX)
            .map_err(|error| cannot_snapshot(format!("{error:#}")))?;
    }
    let mut state = ComponentSnapshotting {
        store,
        instance,
        failed: None,
    };
    let snapshot = unpanicked(|| block_on(wizer.snapshot_component(&context, &mut state)))
        .map_err(|error| cannot_snapshot(format!("{error:#}")))?;
    if let Some(error) = state.failed {
        return Err(cannot_snapshot(format!(
            "reading its state failed: {error:#}"
        )));
    }
    phase.done("snapshot the component (wizer)");
    Ok(snapshot)
}

/// What `wizer` returned, or its panic as an error: wizer's component
/// rewriting asserts what it expects of a component (`unwrap`, `panic!`),
/// and a component it did not expect must not take the host down.
fn unpanicked<T>(wizer: impl FnOnce() -> wasmtime::Result<T>) -> wasmtime::Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(wizer)).unwrap_or_else(|payload| {
        let what = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "an unknown panic".into());
        Err(wasmtime::format_err!("wizer could not handle it ({what})"))
    })
}

/// The instrumented component's instance, as wizer reads it to snapshot:
/// through the functions its instrumentation exported. Wizer's reads
/// cannot fail; the first that does is kept here, and the snapshot is
/// refused.
struct ComponentSnapshotting<'s> {
    store: &'s mut Store<HostState>,
    instance: wasmtime::component::Instance,
    failed: Option<wasmtime::Error>,
}

impl ComponentSnapshotting<'_> {
    /// Calls `func` of the exported instance `instance` and hands its one
    /// result to `use_result`; `None` (the failure kept) when that fails.
    async fn call<R, U>(
        &mut self,
        instance: &str,
        func: &str,
        use_result: impl FnOnce(&Store<HostState>, R) -> U,
    ) -> Option<U>
    where
        R: wasmtime::component::ComponentType + wasmtime::component::Lift + Send + Sync + 'static,
    {
        if self.failed.is_some() {
            return None;
        }
        let called = async {
            let store = &mut *self.store;
            let (_, exported) = self
                .instance
                .get_export(&mut *store, None, instance)
                .ok_or_else(|| wasmtime::format_err!("no exported instance `{instance}`"))?;
            let (_, index) = self
                .instance
                .get_export(&mut *store, Some(&exported), func)
                .ok_or_else(|| wasmtime::format_err!("no `{func}` in `{instance}`"))?;
            let typed = self
                .instance
                .get_typed_func::<(), (R,)>(&mut *store, index)?;
            let (result,) = typed.call_async(&mut *store, ()).await?;
            Ok::<R, wasmtime::Error>(result)
        };
        match called.await {
            Ok(result) => Some(use_result(self.store, result)),
            Err(error) => {
                self.failed = Some(error);
                None
            }
        }
    }
}

impl ComponentInstanceState for ComponentSnapshotting<'_> {
    async fn call_func_ret_list_u8(
        &mut self,
        instance: &str,
        func: &str,
        contents: impl FnOnce(&[u8]) + Send,
    ) {
        // A failed read skips `contents`: the snapshot is refused anyway.
        let _ = self
            .call(instance, func, |store, list: WasmList<u8>| {
                contents(list.as_le_slice(store));
            })
            .await;
    }

    async fn call_func_ret_s32(&mut self, instance: &str, func: &str) -> i32 {
        self.call(instance, func, |_, value| value)
            .await
            .unwrap_or_default()
    }

    async fn call_func_ret_s64(&mut self, instance: &str, func: &str) -> i64 {
        self.call(instance, func, |_, value| value)
            .await
            .unwrap_or_default()
    }

    async fn call_func_ret_f32(&mut self, instance: &str, func: &str) -> u32 {
        self.call(instance, func, |_, value: f32| value.to_bits())
            .await
            .unwrap_or_default()
    }

    async fn call_func_ret_f64(&mut self, instance: &str, func: &str) -> u64 {
        self.call(instance, func, |_, value: f64| value.to_bits())
            .await
            .unwrap_or_default()
    }
}

/// A helper module that asks WASI, in the initializer's store, which
/// descriptor in `[from, to)` is open first (-1: none). WASI functions
/// read and write through their caller's memory: the helper has its own,
/// so the guest's memory (which becomes the snapshot) is never touched.
const OPEN_FILE_PROBE: &str = r#"
(module
  (import "wasi_snapshot_preview1" "fd_fdstat_get"
    (func $fdstat (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "first_open") (param $fd i32) (param $to i32) (result i32)
    (block $none
      (loop $next
        (br_if $none (i32.ge_u (local.get $fd) (local.get $to)))
        ;; errno 0: the descriptor is open.
        (if (i32.eqz (call $fdstat (local.get $fd) (i32.const 0)))
          (then (return (local.get $fd))))
        (local.set $fd (i32.add (local.get $fd) (i32.const 1)))
        (br $next)))
    (i32.const -1)))
"#;

/// One helper instance at a time in the process: the instance pool of each
/// engine keeps one place for it (`engine::HELPER_INSTANCES`).
static PROBING: Mutex<()> = Mutex::new(());

/// The first descriptor past stdio and the `granted` directories that is
/// open in the store's WASI context, if any. Hold `PROBING` while the
/// store lives.
async fn open_file(
    store: &mut Store<HostState>,
    linker: &Linker<HostState>,
    granted: u32,
) -> Result<Option<u32>, wasmtime::Error> {
    let probe = wasmtime::Module::new(store.engine(), wat::parse_str(OPEN_FILE_PROBE)?)?;
    let fdstat = linker.get(&mut *store, "wasi_snapshot_preview1", "fd_fdstat_get")?;
    let instance = Instance::new_async(&mut *store, &probe, &[fdstat]).await?;
    let first_open = instance.get_typed_func::<(i32, i32), i32>(&mut *store, "first_open")?;
    let from = 3 + granted.min(i32::MAX as u32 - 3 - OPEN_FILE_SCAN);
    let found = first_open
        .call_async(&mut *store, (from as i32, (from + OPEN_FILE_SCAN) as i32))
        .await?;
    Ok(u32::try_from(found).ok())
}

/// `wasm`, wizer's snapshot of `state`'s instance (of the module
/// `instrumented`), with the contents of the memories wizer was handed
/// zeroed (`snapshot_data.rs` says why).
fn with_memories(
    wasm: &[u8],
    state: &mut Snapshotting<'_>,
    instrumented: &wasmtime::Module,
) -> wasmtime::Result<Vec<u8>> {
    // Wizer numbers the defined memories: imported ones come first.
    let imported = instrumented
        .imports()
        .filter(|import| matches!(import.ty(), wasmtime::ExternType::Memory(_)))
        .count();
    let mut memories = Vec::new();
    for name in &state.memories {
        let defined: usize = name
            .strip_prefix("__wizer_memory_")
            .and_then(|index| index.parse().ok())
            .ok_or_else(|| wasmtime::format_err!("wizer asked for an unknown memory `{name}`"))?;
        let memory = state
            .instance
            .get_memory(&mut *state.store, name)
            .expect("wizer asks only for the memories it exported");
        memories.push((u32::try_from(imported + defined)?, memory));
    }
    let store = &*state.store;
    let mut segments = Vec::new();
    for (index, memory) in memories {
        let is64 = memory.ty(store).is_64();
        let data = memory.data(store);
        segments.extend(non_zero_ranges(data).into_iter().map(|range| Segment {
            memory: index,
            is64,
            offset: range.start as u64,
            bytes: &data[range],
        }));
    }
    with_segments(wasm, &segments)
}

/// The instrumented instance, as wizer reads it to snapshot: its globals,
/// and its memories' sizes (handed zeroed, their contents added after).
struct Snapshotting<'s> {
    store: &'s mut Store<HostState>,
    instance: Instance,
    /// The memories wizer asked for, in its order.
    memories: Vec<String>,
}

impl InstanceState for Snapshotting<'_> {
    async fn global_get(&mut self, name: &str, _: ValType) -> SnapshotVal {
        let global = self
            .instance
            .get_global(&mut *self.store, name)
            .expect("wizer asks only for the globals it exported");
        match global.get(&mut *self.store) {
            wasmtime::Val::I32(x) => SnapshotVal::I32(x),
            wasmtime::Val::I64(x) => SnapshotVal::I64(x),
            wasmtime::Val::F32(x) => SnapshotVal::F32(x),
            wasmtime::Val::F64(x) => SnapshotVal::F64(x),
            wasmtime::Val::V128(x) => SnapshotVal::V128(x.as_u128()),
            // Wizer refuses modules with mutable reference globals when it
            // instruments them.
            other => unreachable!("wizer snapshots no {other:?} global"),
        }
    }

    async fn memory_contents(&mut self, name: &str, contents: impl FnOnce(&[u8]) + Send) {
        let memory = self
            .instance
            .get_memory(&mut *self.store, name)
            .expect("wizer asks only for the memories it exported");
        // Zeroed pages (mapped on demand: nothing is copied); wizer
        // writes no segment for them.
        let zeros = vec![0u8; memory.data_size(&*self.store)];
        contents(&zeros);
        self.memories.push(name.to_owned());
    }
}
