//! The [`Runtime`]: the engines with their linkers, the module cache and the
//! epoch ticker, shared by every module and task of a program.
//!
//! A runtime owns one engine for ordinary tasks and, made on first use, a
//! second one that meters fuel: fuel metering slows every instruction, so
//! tasks that do not ask for it never pay for it. (Loading modules is the
//! module layer's: `Runtime::load` lives in `module`.)

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use wasmtime::{Engine, Linker};

use crate::cache::{
    CACHE_MAX_ENV, CacheEntry, CacheStore, DEFAULT_CACHE_MAX, ModuleCache, default_key_file,
    parse_budget,
};
use crate::engine::{EngineSettings, InstancePermits, Ticker, new_engine, new_snapshot_compiler};
use crate::error::{Error, ErrorKind};
use crate::limits::DEFAULT_MAX_WASM_STACK;
use crate::store::{HostState, new_component_linker, new_linker};

/// The default number of instances that may exist at once, per engine.
/// More concurrent runs wait for a free slot; they never fail for lack of
/// one. Each slot costs address space and a fiber stack up front.
pub const DEFAULT_MAX_INSTANCES: u32 = 64;

/// The default cap on a module's size: 256 MiB.
pub const DEFAULT_MAX_MODULE_SIZE: usize = 256 << 20;

/// The default cap on the functions a module defines: 100,000. Compiling
/// costs time and memory per function, outside every task's limits; a
/// module past the cap is refused before any of it is compiled.
pub const DEFAULT_MAX_MODULE_FUNCTIONS: u32 = 100_000;

/// The environment variable that overrides the module cache's directory.
pub const CACHE_DIR_ENV: &str = "WASMPROC_CACHE_DIR";

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
    inner: Arc<RuntimeInner>,
}

struct RuntimeInner {
    settings: RuntimeSettings,
    plain: LinkedEngine,
    fuel: OnceLock<Result<LinkedEngine, Error>>,
    cache: ModuleCache,
    ticker: Ticker,
}

/// An engine, its linker and the permits of its instance pool, built once
/// and shared by every task.
pub(crate) struct LinkedEngine {
    pub(crate) engine: Engine,
    pub(crate) linker: Linker<HostState>,
    /// The linker of components (WASI 0.2).
    pub(crate) component_linker: wasmtime::component::Linker<HostState>,
    pub(crate) permits: InstancePermits,
    /// Whether modules' unknown function imports are stubbed to trap
    /// ([`RuntimeBuilder::stub_unknown_imports`]).
    pub(crate) stub_unknown_imports: bool,
    /// Whether the engine meters fuel (a compiler for it must too).
    pub(crate) consume_fuel: bool,
}

impl LinkedEngine {
    fn new(settings: &RuntimeSettings, consume_fuel: bool) -> Result<Self, Error> {
        let engine = new_engine(&settings.engine, consume_fuel)?;
        let linker = new_linker(&engine)?;
        let component_linker = new_component_linker(&engine)?;
        Ok(LinkedEngine {
            engine,
            linker,
            component_linker,
            permits: InstancePermits::new(settings.engine.max_instances),
            stub_unknown_imports: settings.stub_unknown_imports,
            consume_fuel,
        })
    }
}

/// Everything a runtime was built with, resolved (the cache directory is a
/// path or none). A process pool hands it to its worker processes, so that
/// their runtimes match the parent's in every setting.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct RuntimeSettings {
    pub(crate) engine: EngineSettings,
    pub(crate) cache_dir: Option<PathBuf>,
    /// The file holding the key that signs cache entries.
    pub(crate) cache_key_file: Option<PathBuf>,
    /// The most bytes the cache's entries may take.
    pub(crate) cache_max: u64,
    pub(crate) max_module_size: usize,
    pub(crate) max_module_functions: u32,
    /// Whether a module's unknown function imports are stubbed to trap.
    pub(crate) stub_unknown_imports: bool,
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
    cache_key_file: Option<PathBuf>,
    /// `None`: `$WASMPROC_CACHE_MAX`, else the default.
    cache_max: Option<u64>,
    max_wasm_stack: usize,
    max_instances: u32,
    max_module_size: usize,
    max_module_functions: u32,
    stub_unknown_imports: bool,
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
            cache_key_file: None,
            cache_max: None,
            max_wasm_stack: DEFAULT_MAX_WASM_STACK,
            max_instances: DEFAULT_MAX_INSTANCES,
            max_module_size: DEFAULT_MAX_MODULE_SIZE,
            max_module_functions: DEFAULT_MAX_MODULE_FUNCTIONS,
            stub_unknown_imports: false,
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

    /// Keeps the secret key that signs cache entries in `path`. It is made
    /// on first use, readable by its owner only; a key file that others may
    /// read, or that is not this user's, is not used (the cache is then
    /// off; see [`Runtime::cache_off_reason`]). By default
    /// `$WASMPROC_CACHE_KEY_FILE`, else `wasmproc/cache.key` in the
    /// platform's configuration directory (`~/.config` on Linux,
    /// `%APPDATA%` on Windows): never inside the cache.
    pub fn cache_key_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.cache_key_file = Some(path.into());
        self
    }

    /// Keeps the cache within `bytes`: after writing an entry, the least
    /// recently used ones are removed until the rest fit. By default
    /// `$WASMPROC_CACHE_MAX` (`4GiB`, `500MB`, ...), else
    /// [`DEFAULT_CACHE_MAX`](crate::DEFAULT_CACHE_MAX).
    pub fn cache_max(mut self, bytes: u64) -> Self {
        self.cache_max = Some(bytes);
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

    /// Refuses to load modules larger than `bytes`, before reading them
    /// whole. By default [`DEFAULT_MAX_MODULE_SIZE`].
    pub fn max_module_size(mut self, bytes: usize) -> Self {
        self.max_module_size = bytes;
        self
    }

    /// Refuses to load modules that define more than `count` functions,
    /// before compiling any: compilation runs outside every task's limits,
    /// and its time and memory grow with the functions. By default
    /// [`DEFAULT_MAX_MODULE_FUNCTIONS`].
    pub fn max_module_functions(mut self, count: u32) -> Self {
        self.max_module_functions = count;
        self
    }

    /// With `true`, a module that imports functions wasmproc does not
    /// provide (neither WASI preview 1 nor the SDK's, e.g. an optional
    /// host hook `host::call`) still loads: each such import is defined as
    /// a function that traps when called, ending the task `trapped`
    /// (`host_error`, exit status 134) with a message naming the import.
    /// A module that never calls one runs as usual. Unknown imports of
    /// other kinds (globals, memories, tables) are still refused. By
    /// default `false`: a module with an unknown import is refused at load,
    /// naming it (`CannotRun`, 126). Worker processes get the same setting.
    pub fn stub_unknown_imports(mut self, stub: bool) -> Self {
        self.stub_unknown_imports = stub;
        self
    }

    /// Builds the runtime and starts its epoch ticker.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::BadInvocation`] for a stack below 64 KiB, a zero
    /// instance count or a `$WASMPROC_CACHE_MAX` that is not a size,
    /// [`ErrorKind::Setup`] when the engine cannot be made.
    pub fn build(self) -> Result<Runtime, Error> {
        if self.max_wasm_stack < 64 << 10 || self.max_instances == 0 {
            return Err(Error::new(
                ErrorKind::BadInvocation,
                "the wasm stack must be at least 64KiB and the instance count at least 1",
            ));
        }
        let cache_max = match (self.cache_max, std::env::var(CACHE_MAX_ENV)) {
            (Some(max), _) => max,
            (None, Ok(text)) if !text.is_empty() => parse_budget(&text)
                .map_err(|message| Error::new(ErrorKind::BadInvocation, message))?,
            (None, _) => DEFAULT_CACHE_MAX,
        };
        let cache_dir = match self.cache {
            CacheChoice::Disabled => None,
            CacheChoice::Dir(dir) => Some(dir),
            CacheChoice::Default => match std::env::var_os(CACHE_DIR_ENV) {
                Some(dir) if !dir.is_empty() => Some(dir.into()),
                _ => dirs::cache_dir().map(|dir| dir.join("wasmproc")),
            },
        };
        Runtime::with_settings(RuntimeSettings {
            engine: EngineSettings {
                max_wasm_stack: self.max_wasm_stack,
                max_instances: self.max_instances,
            },
            cache_dir,
            cache_key_file: self.cache_key_file.or_else(default_key_file),
            cache_max,
            max_module_size: self.max_module_size,
            max_module_functions: self.max_module_functions,
            stub_unknown_imports: self.stub_unknown_imports,
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

    /// A runtime with exactly these settings (a worker process's, from its
    /// pool).
    pub(crate) fn with_settings(settings: RuntimeSettings) -> Result<Runtime, Error> {
        let plain = LinkedEngine::new(&settings, false)?;
        let cache = match &settings.cache_dir {
            Some(dir) => ModuleCache::in_dir(
                dir.clone(),
                settings.cache_key_file.as_deref(),
                settings.cache_max,
            ),
            None => ModuleCache::disabled(),
        };
        let ticker = Ticker::start(plain.engine.clone()).map_err(|error| {
            Error::new(
                ErrorKind::Setup,
                format!("cannot start the epoch ticker thread: {error}"),
            )
            .caused_by(error)
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

    /// The directory of the module cache, if the cache is on.
    pub fn cache_dir(&self) -> Option<&Path> {
        self.inner.cache.dir()
    }

    /// The module cache's entries, least recently used first (none when
    /// the cache is off).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Setup`] when the cache directory cannot be read.
    pub fn cache_entries(&self) -> Result<Vec<CacheEntry>, Error> {
        self.inner
            .cache
            .entries()
            .map_err(|error| self.cache_error(&error))
    }

    /// Removes every entry of the module cache (the next load of each
    /// module compiles it again); returns how many entries went and their
    /// bytes.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Setup`] when the cache directory cannot be read.
    pub fn clear_cache(&self) -> Result<(usize, u64), Error> {
        self.inner
            .cache
            .clear()
            .map_err(|error| self.cache_error(&error))
    }

    fn cache_error(&self, error: &std::io::Error) -> Error {
        let dir = self.cache_dir().map(Path::display);
        Error::new(
            ErrorKind::Setup,
            format!(
                "cannot read the module cache {}: {error}",
                dir.map_or(String::new(), |dir| format!("`{dir}`"))
            ),
        )
    }

    /// Why the module cache is off although a directory was set for it
    /// (its key file cannot be made, or others may read it): modules are
    /// then compiled on every load.
    pub fn cache_off_reason(&self) -> Option<&str> {
        self.inner.cache.off_because()
    }

    /// The settings this runtime was built with.
    pub(crate) fn settings(&self) -> &RuntimeSettings {
        &self.inner.settings
    }

    pub(crate) fn cache(&self) -> &ModuleCache {
        &self.inner.cache
    }

    pub(crate) fn ticker(&self) -> &Ticker {
        &self.inner.ticker
    }

    /// An engine that compiles a module's code for `engine(fuel)` over its
    /// functions session (`functions`: those of its earlier compiles, its
    /// own or a snapshot's); none if it cannot be made (the module or
    /// snapshot is then compiled by `engine(fuel)`).
    pub(crate) fn snapshot_compiler(
        &self,
        fuel: bool,
        functions: Arc<dyn CacheStore>,
    ) -> Option<wasmtime::Engine> {
        match new_snapshot_compiler(&self.inner.settings.engine, fuel, functions) {
            Ok(engine) => Some(engine),
            Err(error) => {
                tracing::info!(target: "wasmproc::cache", "{}", error.message());
                None
            }
        }
    }

    /// The plain engine, or the fuel-metering one (made on first use).
    pub(crate) fn engine(&self, fuel: bool) -> Result<&LinkedEngine, Error> {
        if !fuel {
            return Ok(&self.inner.plain);
        }
        let inner = &*self.inner;
        inner
            .fuel
            .get_or_init(|| {
                let linked = LinkedEngine::new(&inner.settings, true)?;
                inner.ticker.add_engine(linked.engine.clone());
                Ok(linked)
            })
            .as_ref()
            .map_err(Error::clone)
    }
}
