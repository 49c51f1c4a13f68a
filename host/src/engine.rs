//! The wasmtime engines, their shared settings and the epoch ticker.
//!
//! A [`Runtime`] owns one engine for ordinary tasks and, made on first use,
//! a second one that meters fuel: fuel metering slows every instruction, so
//! tasks that do not ask for it never pay for it.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use wasmtime::{Config, Engine, InstanceAllocationStrategy, Linker, PoolingAllocationConfig};

use crate::cache::ModuleCache;
use crate::error::{Error, ErrorKind};
use crate::limits::DEFAULT_MAX_WASM_STACK;
use crate::module::Module;
use crate::sdk_imports;
use crate::worker::HostState;

/// How often the ticker advances the engines' epoch. A busy guest notices a
/// timeout or a cancellation within about one tick.
const EPOCH_TICK: Duration = Duration::from_millis(1);

/// How long (in ticks) the ticker keeps ticking without tasks before it
/// sleeps: back-to-back tasks then never pay for waking it.
const IDLE_TICKS_BEFORE_PARKING: u32 = 100;

/// The default number of instances that may exist at once, per engine.
/// More concurrent runs wait for a free slot; they never fail for lack of
/// one. Each slot costs address space and a fiber stack up front.
pub const DEFAULT_MAX_INSTANCES: u32 = 64;

/// The environment variable that overrides the module cache's directory.
pub const CACHE_DIR_ENV: &str = "WASMPROC_CACHE_DIR";

/// The engine and its linker, built once and shared by every task.
pub(crate) struct EngineSlot {
    pub(crate) engine: Engine,
    pub(crate) linker: Linker<HostState>,
    /// Free places in the engine's instance pool.
    pub(crate) slots: Slots,
}

/// A counting semaphore over the instance pool, so that runs beyond its
/// size wait for a place instead of failing to instantiate.
pub(crate) struct Slots {
    free: Mutex<u32>,
    freed: Condvar,
}

/// A place in the instance pool, given back on drop.
pub(crate) struct SlotGuard<'a> {
    slots: &'a Slots,
}

impl Slots {
    fn new(count: u32) -> Self {
        Slots {
            free: Mutex::new(count),
            freed: Condvar::new(),
        }
    }

    /// Waits for a free place; `None` if `give_up` turns true first.
    pub(crate) fn acquire(&self, give_up: impl Fn() -> bool) -> Option<SlotGuard<'_>> {
        let mut free = lock(&self.free);
        loop {
            if give_up() {
                return None;
            }
            if *free > 0 {
                *free -= 1;
                return Some(SlotGuard { slots: self });
            }
            // Wake now and then to notice `give_up` (a cancellation).
            free = self
                .freed
                .wait_timeout(free, Duration::from_millis(5))
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
    }
}

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        *lock(&self.slots.free) += 1;
        self.slots.freed.notify_one();
    }
}

/// Runs modules: owns the engines, the module cache and the epoch ticker.
///
/// A `Runtime` is cheap to clone (it is shared) and safe to use from many
/// threads. Make one per program.
///
/// ```no_run
/// use wasmproc::{Runtime, Task};
///
/// let runtime = Runtime::new()?;
/// let module = runtime.load("square.wasm")?;
/// let outcome = module.run(&Task::call("square", &7u64)?);
/// assert_eq!(outcome.decode::<u64>()?, 49);
/// # Ok::<(), wasmproc::Error>(())
/// ```
#[derive(Clone)]
pub struct Runtime {
    pub(crate) inner: Arc<RuntimeInner>,
}

pub(crate) struct RuntimeInner {
    settings: Settings,
    plain: EngineSlot,
    fuel: OnceLock<Result<EngineSlot, String>>,
    pub(crate) cache: ModuleCache,
    pub(crate) ticker: Ticker,
}

#[derive(Clone)]
struct Settings {
    max_wasm_stack: usize,
    max_instances: u32,
}

/// Builds a [`Runtime`]; every setting has a documented default.
///
/// ```no_run
/// let runtime = wasmproc::Runtime::builder()
///     .cache_dir("/tmp/wasmproc-cache")
///     .max_instances(64)
///     .build()?;
/// # Ok::<(), wasmproc::Error>(())
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct RuntimeBuilder {
    cache: CacheChoice,
    max_wasm_stack: usize,
    max_instances: u32,
}

#[derive(Debug, Clone)]
enum CacheChoice {
    Default,
    Dir(PathBuf),
    Disabled,
}

impl Default for RuntimeBuilder {
    fn default() -> Self {
        RuntimeBuilder {
            cache: CacheChoice::Default,
            max_wasm_stack: DEFAULT_MAX_WASM_STACK,
            max_instances: DEFAULT_MAX_INSTANCES,
        }
    }
}

impl RuntimeBuilder {
    /// Keeps compiled modules in `dir`. By default the cache lives in
    /// `$WASMPROC_CACHE_DIR`, else in the platform's cache directory
    /// (`~/.cache/wasmproc` on Linux, `%LOCALAPPDATA%\wasmproc` on Windows).
    pub fn cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache = CacheChoice::Dir(dir.into());
        self
    }

    /// Compiles every module on load and keeps nothing on disk.
    pub fn no_cache(mut self) -> Self {
        self.cache = CacheChoice::Disabled;
        self
    }

    /// Sets the wasm stack limit; deeper recursion traps with
    /// `StackOverflow`. By default
    /// [`DEFAULT_MAX_WASM_STACK`](crate::limits::DEFAULT_MAX_WASM_STACK).
    pub fn max_wasm_stack(mut self, bytes: usize) -> Self {
        self.max_wasm_stack = bytes;
        self
    }

    /// Sets how many instances may exist at once: the size of the
    /// preallocated instance pool. Runs beyond it wait for a free place.
    /// By default [`DEFAULT_MAX_INSTANCES`].
    pub fn max_instances(mut self, count: u32) -> Self {
        self.max_instances = count;
        self
    }

    /// Builds the runtime and starts its epoch ticker.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::BadInvocation`] for a zero stack or instance count,
    /// [`ErrorKind::Setup`] when the engine cannot be made.
    pub fn build(self) -> Result<Runtime, Error> {
        if self.max_wasm_stack < 64 << 10 || self.max_instances == 0 {
            return Err(Error::new(
                ErrorKind::BadInvocation,
                "the wasm stack must be at least 64KiB and the instance count at least 1",
            ));
        }
        let settings = Settings {
            max_wasm_stack: self.max_wasm_stack,
            max_instances: self.max_instances,
        };
        let plain = make_engine(&settings, false).map_err(|e| Error::new(ErrorKind::Setup, e))?;
        let cache = match self.cache {
            CacheChoice::Disabled => ModuleCache::disabled(),
            CacheChoice::Dir(dir) => ModuleCache::in_dir(dir),
            CacheChoice::Default => match std::env::var_os(CACHE_DIR_ENV) {
                Some(dir) if !dir.is_empty() => ModuleCache::in_dir(dir.into()),
                _ => match dirs::cache_dir() {
                    Some(dir) => ModuleCache::in_dir(dir.join("wasmproc")),
                    None => ModuleCache::disabled(),
                },
            },
        };
        let ticker = Ticker::start(plain.engine.clone()).map_err(|error| {
            Error::new(
                ErrorKind::Setup,
                format!("cannot start the epoch ticker thread: {error}"),
            )
        })?;
        Ok(Runtime {
            inner: Arc::new(RuntimeInner {
                settings,
                plain,
                fuel: OnceLock::new(),
                cache,
                ticker,
            }),
        })
    }
}

impl Runtime {
    /// A runtime with the default settings.
    ///
    /// # Errors
    ///
    /// As [`RuntimeBuilder::build`].
    pub fn new() -> Result<Runtime, Error> {
        RuntimeBuilder::default().build()
    }

    /// A builder for a runtime with other settings.
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder::default()
    }

    /// Loads a module file (binary `.wasm` or text `.wat`), from the cache
    /// when it was compiled before.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotFound`] when the file does not exist,
    /// [`ErrorKind::CannotRun`] when it is not a valid core module.
    pub fn load(&self, path: impl AsRef<std::path::Path>) -> Result<Module, Error> {
        Module::from_file(self, path.as_ref())
    }

    /// Loads a module from bytes; `name` is its `argv[0]` and appears in
    /// messages.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::CannotRun`] when the bytes are not a valid core module.
    pub fn load_bytes(&self, name: &str, bytes: &[u8]) -> Result<Module, Error> {
        Module::from_bytes(self, name, bytes)
    }

    /// The directory of the module cache, if the cache is on.
    pub fn cache_dir(&self) -> Option<&std::path::Path> {
        self.inner.cache.dir()
    }
}

impl RuntimeInner {
    pub(crate) fn plain(&self) -> &EngineSlot {
        &self.plain
    }

    /// The fuel-metering engine, made on first use.
    pub(crate) fn fuel(&self) -> Result<&EngineSlot, Error> {
        let slot = self.fuel.get_or_init(|| {
            let slot = make_engine(&self.settings, true)?;
            self.ticker.add_engine(slot.engine.clone());
            Ok(slot)
        });
        slot.as_ref()
            .map_err(|message| Error::new(ErrorKind::Setup, message.clone()))
    }
}

fn make_engine(settings: &Settings, consume_fuel: bool) -> Result<EngineSlot, String> {
    let config = engine_config(settings, consume_fuel);
    let engine =
        Engine::new(&config).map_err(|e| format!("cannot set up the wasm engine: {e:#}"))?;

    let mut linker = Linker::new(&engine);
    wasmtime_wasi::p1::add_to_linker_async(&mut linker, |state: &mut HostState| &mut state.wasi)
        .map_err(|e| format!("cannot link WASI: {e:#}"))?;
    sdk_imports::add_to_linker(&mut linker)
        .map_err(|e| format!("cannot link the SDK imports: {e:#}"))?;
    Ok(EngineSlot {
        engine,
        linker,
        slots: Slots::new(settings.max_instances),
    })
}

/// The engine settings of every runtime: the benchmark's raw-wasmtime
/// baseline uses them too, so that the two compare like with like.
#[doc(hidden)]
pub fn bench_engine_config(max_instances: u32) -> Config {
    let settings = Settings {
        max_wasm_stack: DEFAULT_MAX_WASM_STACK,
        max_instances,
    };
    engine_config(&settings, false)
}

fn engine_config(settings: &Settings, consume_fuel: bool) -> Config {
    let mut pool = PoolingAllocationConfig::default();
    pool.total_core_instances(settings.max_instances)
        .total_memories(settings.max_instances)
        .total_tables(settings.max_instances)
        .total_stacks(settings.max_instances)
        .max_memory_size(usize::try_from(crate::limits::DEFAULT_MAX_MEMORY).unwrap_or(usize::MAX))
        // Toolchains emit large function tables for big programs.
        .table_elements(1 << 16)
        // Resetting small memories and tables with memset instead of madvise
        // avoids a TLB shootdown across all cores per task (measured: 2.3x
        // the tasks/s of a trivial task; see the benchmark).
        .table_keep_resident(64 << 10)
        .linear_memory_keep_resident(2 << 20)
        .pagemap_scan(wasmtime::Enabled::Auto);

    let mut config = Config::new();
    config
        .epoch_interruption(true)
        .consume_fuel(consume_fuel)
        .max_wasm_stack(settings.max_wasm_stack)
        // Host calls made from wasm run on the same fiber stack as the guest.
        .async_stack_size(settings.max_wasm_stack + (1 << 20))
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
        .cranelift_opt_level(wasmtime::OptLevel::Speed);
    config
}

/// One thread that advances every engine's epoch while tasks run, and
/// sleeps while none does.
pub(crate) struct Ticker {
    shared: Arc<TickerShared>,
    thread: Option<JoinHandle<()>>,
}

struct TickerShared {
    engines: Mutex<Vec<Engine>>,
    running: AtomicUsize,
    /// Whether the ticker is (about to be) asleep until a task starts.
    parked: AtomicBool,
    stop: AtomicBool,
}

/// Keeps the ticker ticking while a task runs.
pub(crate) struct TickerGuard<'a> {
    ticker: &'a Ticker,
}

impl Ticker {
    fn start(engine: Engine) -> std::io::Result<Ticker> {
        let shared = Arc::new(TickerShared {
            engines: Mutex::new(vec![engine]),
            running: AtomicUsize::new(0),
            parked: AtomicBool::new(false),
            stop: AtomicBool::new(false),
        });
        let thread_shared = Arc::clone(&shared);
        let thread = thread::Builder::new()
            .name("wasmproc-epoch".into())
            .spawn(move || tick(&thread_shared))?;
        Ok(Ticker {
            shared,
            thread: Some(thread),
        })
    }

    fn add_engine(&self, engine: Engine) {
        lock(&self.shared.engines).push(engine);
    }

    /// Marks a task as running until the guard drops.
    pub(crate) fn task_running(&self) -> TickerGuard<'_> {
        self.shared.running.fetch_add(1, Ordering::SeqCst);
        // Waking the ticker costs a system call, so it only sleeps after a
        // while without tasks, and is only woken when it does.
        if self.shared.parked.load(Ordering::SeqCst)
            && let Some(thread) = &self.thread
        {
            thread.thread().unpark();
        }
        TickerGuard { ticker: self }
    }
}

impl Drop for TickerGuard<'_> {
    fn drop(&mut self) {
        self.ticker.shared.running.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

fn tick(shared: &TickerShared) {
    let mut idle_ticks = 0;
    while !shared.stop.load(Ordering::SeqCst) {
        if shared.running.load(Ordering::SeqCst) == 0 {
            idle_ticks += 1;
        } else {
            idle_ticks = 0;
        }
        if idle_ticks > IDLE_TICKS_BEFORE_PARKING {
            // Announce the park, then look again: a task that started in
            // between either sees `parked` and unparks us, or is seen here
            // (both sides use SeqCst, so one of the two must happen).
            shared.parked.store(true, Ordering::SeqCst);
            if shared.running.load(Ordering::SeqCst) == 0 && !shared.stop.load(Ordering::SeqCst) {
                thread::park();
            }
            shared.parked.store(false, Ordering::SeqCst);
            idle_ticks = 0;
            continue;
        }
        // Parked rather than slept, so that `drop` wakes it at once. An
        // early wake-up only advances the epoch a little early.
        thread::park_timeout(EPOCH_TICK);
        for engine in lock(&shared.engines).iter() {
            engine.increment_epoch();
        }
    }
}

/// Locks a mutex, ignoring poisoning: the data (a list of engines, a
/// counter) stays valid whatever a panicking holder did.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
