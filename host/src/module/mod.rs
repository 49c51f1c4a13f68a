//! A loaded module: compiled (or read from the cache) once, prepared for
//! cheap instantiation, described (its tasks, exports and imports), and the
//! rules that resolve an [`Entry`] to the export a task calls.
//!
//! Running tasks is the next layer up: `Module::run` lives in `run`.

mod describe;
mod signature;

use std::path::Path;
use std::sync::{Arc, OnceLock};

use wasmtime::InstancePre;

use crate::cache::{CacheStatus, Identity};
use crate::error::{Error, ErrorKind};
use crate::limits::human;
use crate::runtime::{LinkedEngine, Runtime};
use crate::store::HostState;
use crate::task::{Entry, Initializer};

pub use describe::{ExportInfo, ImportInfo};
use describe::{ModuleInfo, Signature, describe, describe_extern};
pub use signature::{Param, TaskSignature};

/// A module ready to run tasks. Cheap to clone and share between threads.
#[derive(Clone)]
pub struct Module {
    inner: Arc<ModuleInner>,
}

struct ModuleInner {
    runtime: Runtime,
    name: String,
    /// What the module is, for the cache.
    identity: Identity,
    /// Its wasm. A snapshot found in the cache has none until something
    /// needs it (fuel metering, another initializer): then its initializer
    /// runs again, once.
    wasm: OnceLock<Result<Vec<u8>, Error>>,
    plain: Prepared,
    fuel: OnceLock<Result<Prepared, Error>>,
    info: ModuleInfo,
    /// What the SDK recorded of its tasks, read when first asked for.
    signatures: OnceLock<Vec<TaskSignature>>,
    /// Set on a snapshot: what it was made from.
    origin: Option<Origin>,
}

/// What a snapshot was made from: a module and the initializer run over it.
pub(crate) struct Origin {
    /// The module the initializer ran in.
    pub(crate) base: Module,
    /// The initializer and its argument and grants.
    pub(crate) init: Initializer,
    /// Whether the snapshot is in the cache, where worker processes find
    /// it (without it, they are handed its wasm).
    pub(crate) cached: bool,
    /// How the snapshot was obtained: from the cache, or by initializing.
    pub(crate) status: CacheStatus,
    /// Makes the snapshot's wasm again, by running `init` over `base`
    /// (the run layer's, which this layer cannot reach).
    pub(crate) remake: fn(&Module, &Initializer) -> Result<Vec<u8>, Error>,
}

/// A module compiled for one engine, with its instantiation prepared.
pub(crate) struct Prepared {
    module: wasmtime::Module,
    /// `Err` when the module's imports cannot be satisfied: every task that
    /// tries to run it gets this error.
    pre: Result<InstancePre<HostState>, Error>,
    cache_status: CacheStatus,
}

impl Prepared {
    /// The prepared instantiation, or why the module cannot be linked.
    pub(crate) fn instance_pre(&self) -> Result<&InstancePre<HostState>, Error> {
        self.pre.as_ref().map_err(Error::clone)
    }
}

/// An [`Entry`] resolved against a module: the export a task calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resolved<'m> {
    /// The WASI command entry, `_start`.
    Command,
    /// A typed task.
    Task {
        /// The task's name.
        name: &'m str,
        /// The export that runs it.
        export: &'m str,
        /// Whether the module's `_initialize` must run first (a reactor).
        initialize: bool,
    },
}

impl Resolved<'_> {
    /// The entry in its public form.
    pub(crate) fn to_entry(self) -> Entry {
        match self {
            Resolved::Command => Entry::Command,
            Resolved::Task { name, .. } => Entry::Task(name.to_owned()),
        }
    }
}

impl std::fmt::Debug for Module {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Module")
            .field("name", &self.inner.name)
            .field("command", &self.is_command())
            .field("tasks", &self.inner.info.tasks.names)
            .finish()
    }
}

impl Runtime {
    /// Loads a module file (binary `.wasm` or text `.wat`), from the cache
    /// when it was compiled before.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotFound`] when the file does not exist,
    /// [`ErrorKind::CannotRun`] when it is not a valid core module.
    pub fn load(&self, path: impl AsRef<Path>) -> Result<Module, Error> {
        let path = path.as_ref();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        let bytes = read_module(path, &name, self.settings().max_module_size)?;
        self.load_bytes(&name, &bytes)
    }

    /// Loads a module from bytes; `name` is its `argv[0]` and appears in
    /// messages.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::CannotRun`] when the bytes are not a valid core module.
    pub fn load_bytes(&self, name: &str, bytes: &[u8]) -> Result<Module, Error> {
        let settings = self.settings();
        if bytes.len() > settings.max_module_size {
            return Err(too_large(name, settings.max_module_size));
        }
        let wasm = to_binary(name, bytes)?;
        check_function_count(name, &wasm, settings.max_module_functions)?;
        let linked = self.engine(false)?;
        let identity = Identity::of_wasm(&wasm);
        let compiled = self
            .cache()
            .load_or_compile(&linked.engine, &identity, &wasm);
        let plain = prepare(linked, name, &wasm, compiled)?;
        Ok(self.build(name, identity, Some(wasm), plain, None))
    }

    fn build(
        &self,
        name: &str,
        identity: Identity,
        wasm: Option<Vec<u8>>,
        plain: Prepared,
        origin: Option<Origin>,
    ) -> Module {
        let info = describe(&plain.module);
        let known = OnceLock::new();
        if let Some(wasm) = wasm {
            let _ = known.set(Ok(wasm));
        }
        Module {
            inner: Arc::new(ModuleInner {
                runtime: self.clone(),
                name: name.to_owned(),
                identity,
                wasm: known,
                plain,
                fuel: OnceLock::new(),
                info,
                signatures: OnceLock::new(),
                origin,
            }),
        }
    }
}

impl Module {
    /// The module's name: its file name, or the name given to
    /// [`Runtime::load_bytes`].
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The typed tasks the module exports, in export order.
    pub fn tasks(&self) -> &[String] {
        &self.inner.info.tasks.names
    }

    /// The parameters and result of each task, initializer and handler, as
    /// the guest SDK recorded them (empty for modules not built with it).
    pub fn signatures(&self) -> &[TaskSignature] {
        self.inner.signatures.get_or_init(|| {
            match (self.inner.wasm.get(), &self.inner.origin) {
                (Some(Ok(wasm)), _) => signature::read(wasm),
                // A snapshot's tasks are its base module's.
                (_, Some(origin)) => origin.base.signatures().to_vec(),
                _ => Vec::new(),
            }
        })
    }

    /// The signature of the task `name`, if the SDK recorded one.
    pub fn signature(&self, name: &str) -> Option<&TaskSignature> {
        self.signatures()
            .iter()
            .find(|s| s.name == name && s.kind != "init")
    }

    /// The initializers the module exports, in export order (see
    /// [`Module::initialize`]). A snapshot has none: they ran.
    pub fn initializers(&self) -> &[String] {
        &self.inner.info.initializers.names
    }

    /// Whether the module is a WASI command (exports `_start`).
    pub fn is_command(&self) -> bool {
        self.inner.info.start == Signature::Right
    }

    /// The initializer this module is a snapshot of, if it is one (see
    /// [`Module::initialize`]).
    pub fn initialized_by(&self) -> Option<&Initializer> {
        self.inner.origin.as_ref().map(|origin| &origin.init)
    }

    /// A snapshot of this module, `identity`, left by `origin.init`:
    /// compiled for the plain engine (from the cache, or from `wasm`). It
    /// keeps this module's name.
    pub(crate) fn snapshot(
        &self,
        identity: Identity,
        compiled: Result<(wasmtime::Module, CacheStatus), wasmtime::Error>,
        wasm: Option<Vec<u8>>,
        origin: Origin,
    ) -> Result<Module, Error> {
        let name = self.name();
        let linked = self.runtime().engine(false)?;
        let plain = prepare(linked, name, wasm.as_deref().unwrap_or_default(), compiled).map_err(
            |error| {
                Error::new(
                    ErrorKind::CannotRun,
                    format!(
                        "the snapshot of `{name}` does not load: {}",
                        error.message()
                    ),
                )
            },
        )?;
        Ok(self
            .runtime()
            .build(name, identity, wasm, plain, Some(origin)))
    }

    /// What the module is, for the cache.
    pub(crate) fn identity(&self) -> &Identity {
        &self.inner.identity
    }

    /// What this snapshot was made from; `None` for a module loaded as is.
    pub(crate) fn origin(&self) -> Option<&Origin> {
        self.inner.origin.as_ref()
    }

    /// The runtime that loaded the module.
    pub fn runtime(&self) -> &Runtime {
        &self.inner.runtime
    }

    /// The module's binary wasm (as loaded; text is assembled). A snapshot
    /// found in the cache makes it again, once, by running its initializer.
    pub(crate) fn wasm(&self) -> Result<&[u8], Error> {
        self.inner
            .wasm
            .get_or_init(|| match &self.inner.origin {
                Some(origin) => (origin.remake)(&origin.base, &origin.init),
                None => unreachable!("a module loaded from wasm keeps it"),
            })
            .as_deref()
            .map_err(Error::clone)
    }

    /// Which entry `entry` runs: [`Entry::Command`] or [`Entry::Task`]
    /// with a name the module exports (for [`Entry::Auto`]: `_start`, else
    /// the only task).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::CannotRun`], naming what the module offers instead, when
    /// there is no such entry or it has the wrong signature.
    pub fn resolve(&self, entry: &Entry) -> Result<Entry, Error> {
        self.resolve_export(entry).map(Resolved::to_entry)
    }

    /// As [`resolve`](Module::resolve), with the export to call.
    pub(crate) fn resolve_export(&self, entry: &Entry) -> Result<Resolved<'_>, Error> {
        let info = &self.inner.info;
        let name = self.name();
        self.check_memory()?;
        let tasks = &info.tasks;
        let task_list = || {
            if tasks.names.is_empty() {
                "it exports no wasmproc tasks".to_owned()
            } else {
                format!("its tasks: {}", tasks.names.join(", "))
            }
        };
        let cannot_run = |message: String| Err(Error::new(ErrorKind::CannotRun, message));
        let task = |index: usize| Resolved::Task {
            name: &tasks.names[index],
            export: &tasks.exports[index],
            initialize: info.has_initialize,
        };
        match entry {
            Entry::Command => match &info.start {
                Signature::Right => Ok(Resolved::Command),
                Signature::Missing => cannot_run(format!(
                    "`{name}` is not a WASI command: it has no `_start` export ({}); pick a task instead",
                    task_list()
                )),
                Signature::Wrong(ty) => cannot_run(format!(
                    "`{name}` exports `_start` as {ty}; a command's `_start` is func () -> ()"
                )),
            },
            Entry::Task(wanted) => {
                if let Some(index) = tasks.names.iter().position(|t| t == wanted) {
                    Ok(task(index))
                } else if let Some(ty) = tasks.malformed_type(wanted) {
                    cannot_run(format!(
                        "`{name}` exports task `{wanted}` as {ty}; a task export is func () -> (i32): \
                         build it with the wasmproc-guest SDK of this version"
                    ))
                } else if info.initializers.export_of(wanted).is_some() {
                    cannot_run(format!(
                        "`{wanted}` is an initializer of `{name}`, not a task: run it with \
                         `--init {wanted}` (Module::initialize); {}",
                        task_list()
                    ))
                } else {
                    cannot_run(format!("`{name}` has no task `{wanted}`; {}", task_list()))
                }
            }
            Entry::Auto => match (&info.start, tasks.names.len()) {
                (Signature::Right, _) => Ok(Resolved::Command),
                (_, 1) => Ok(task(0)),
                (Signature::Wrong(ty), 0) => cannot_run(format!(
                    "`{name}` exports `_start` as {ty}; a command's `_start` is func () -> ()"
                )),
                (_, 0) => cannot_run(format!(
                    "`{name}` exports neither `_start` nor any wasmproc task: nothing to run"
                )),
                (_, _) => cannot_run(format!(
                    "`{name}` exports several tasks ({}): choose one (`--task NAME`)",
                    tasks.names.join(", ")
                )),
            },
        }
    }

    /// Host functions pass their data through the memory named `memory`:
    /// a module that imports them must export it.
    fn check_memory(&self) -> Result<(), Error> {
        let info = &self.inner.info;
        if info.needs_memory && !info.exports_memory {
            return Err(Error::new(
                ErrorKind::CannotRun,
                format!(
                    "`{}` imports host functions but exports no memory named `memory`, \
                     through which they pass their data: build it for wasm32-wasip1, whose \
                     modules export it",
                    self.name()
                ),
            ));
        }
        Ok(())
    }

    /// The initializer named `name`, as the export to call.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::CannotRun`], naming the initializers there are, when
    /// there is no such initializer or its export has the wrong type.
    pub(crate) fn resolve_initializer(&self, wanted: &str) -> Result<Resolved<'_>, Error> {
        let info = &self.inner.info;
        let name = self.name();
        self.check_memory()?;
        let initializers = &info.initializers;
        if let Some(index) = initializers.names.iter().position(|n| n == wanted) {
            return Ok(Resolved::Task {
                name: &initializers.names[index],
                export: &initializers.exports[index],
                initialize: info.has_initialize,
            });
        }
        let message = if let Some(ty) = initializers.malformed_type(wanted) {
            format!(
                "`{name}` exports initializer `{wanted}` as {ty}; an initializer export is \
                 func () -> (i32): build it with the wasmproc-guest SDK of this version"
            )
        } else if initializers.names.is_empty() {
            let snapshot = match &self.inner.origin {
                Some(origin) => format!(
                    " (it is a snapshot: its initializer `{}` has run)",
                    origin.init.name
                ),
                None => String::new(),
            };
            format!(
                "`{name}` has no initializer `{wanted}`: it exports none{snapshot}; \
                 an initializer is a function marked #[wasmproc_guest::init]"
            )
        } else {
            format!(
                "`{name}` has no initializer `{wanted}`; its initializers: {}",
                initializers.names.join(", ")
            )
        };
        Err(Error::new(ErrorKind::CannotRun, message))
    }

    /// How this load obtained the compiled module: from the cache, or by
    /// compiling it. For a snapshot: how the snapshot was obtained, from
    /// the cache or by running its initializer.
    pub fn cache_status(&self) -> CacheStatus {
        match &self.inner.origin {
            Some(origin) => origin.status,
            None => self.inner.plain.cache_status,
        }
    }

    /// Every export with its type.
    pub fn exports(&self) -> Vec<ExportInfo> {
        self.inner
            .plain
            .module
            .exports()
            .map(|export| ExportInfo {
                name: export.name().to_owned(),
                ty: describe_extern(&export.ty()),
            })
            .collect()
    }

    /// Every import with its type and whether wasmproc provides it.
    pub fn imports(&self) -> Vec<ImportInfo> {
        let Ok(linked) = self.inner.runtime.engine(false) else {
            return Vec::new();
        };
        let mut store = wasmtime::Store::new(&linked.engine, HostState::scratch());
        self.inner
            .plain
            .module
            .imports()
            .map(|import| ImportInfo {
                module: import.module().to_owned(),
                name: import.name().to_owned(),
                ty: describe_extern(&import.ty()),
                provided: linked.linker.get_by_import(&mut store, &import).is_some(),
            })
            .collect()
    }

    /// Prepares the module for runs with a fuel limit now (compiled for the
    /// fuel-metering engine, or read from the cache), so that the first
    /// such run does not compile. Runs without a fuel limit need nothing
    /// more than [`Runtime::load`].
    pub fn prepare_for_fuel(&self) -> Result<(), Error> {
        self.prepared(true).map(drop)
    }

    /// The module prepared for the plain or the fuel-metering engine (the
    /// latter compiled on first use).
    pub(crate) fn prepared(&self, fuel: bool) -> Result<&Prepared, Error> {
        if !fuel {
            return Ok(&self.inner.plain);
        }
        let inner = &*self.inner;
        inner
            .fuel
            .get_or_init(|| {
                let linked = inner.runtime.engine(true)?;
                let cache = inner.runtime.cache();
                let compiled = match &inner.origin {
                    None => cache.load_or_compile(&linked.engine, &inner.identity, self.wasm()?),
                    Some(_) => match cache.load_snapshot(&linked.engine, &inner.identity) {
                        Some(module) => Ok((module, CacheStatus::Hit)),
                        None => {
                            cache.compile_snapshot(&linked.engine, &inner.identity, self.wasm()?)
                        }
                    },
                };
                prepare(
                    linked,
                    &inner.name,
                    self.wasm().unwrap_or_default(),
                    compiled,
                )
            })
            .as_ref()
            .map_err(Error::clone)
    }
}

/// Reads a module file, refusing at once what cannot be a module (by its
/// first bytes) and what is larger than `max` (without reading past it):
/// `/dev/zero` or a runaway pipe costs nothing.
fn read_module(path: &Path, name: &str, max: usize) -> Result<Vec<u8>, Error> {
    use std::io::Read;
    let cannot_read = |error: std::io::Error| match error.kind() {
        std::io::ErrorKind::NotFound => Error::new(
            ErrorKind::NotFound,
            format!("module `{}` not found: check the path", path.display()),
        ),
        _ => Error::new(
            ErrorKind::CannotRun,
            format!("cannot read module `{}`: {error}", path.display()),
        ),
    };
    let file = std::fs::File::open(path).map_err(cannot_read)?;
    if file.metadata().map_err(cannot_read)?.is_dir() {
        return Err(Error::new(
            ErrorKind::CannotRun,
            format!("`{}` is a directory, not a module file", path.display()),
        ));
    }
    let mut bytes = Vec::new();
    let mut file = file.take(max as u64 + 1);
    let mut head = [0u8; 8];
    let head_len = read_up_to(&mut file, &mut head).map_err(cannot_read)?;
    bytes.extend_from_slice(&head[..head_len]);
    if !could_be_a_module(&bytes) {
        return Err(not_a_module(name));
    }
    file.read_to_end(&mut bytes).map_err(cannot_read)?;
    if bytes.len() > max {
        return Err(too_large(name, max));
    }
    Ok(bytes)
}

/// Reads until `buffer` is full or the stream ends; how much was read.
fn read_up_to(reader: &mut impl std::io::Read, buffer: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match reader.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(filled)
}

/// Whether a module's first bytes could begin binary wasm or wasm text.
fn could_be_a_module(head: &[u8]) -> bool {
    head.starts_with(b"\0asm")
        || (!head.is_empty()
            && head
                .iter()
                .all(|b| b.is_ascii_graphic() || b.is_ascii_whitespace()))
}

fn not_a_module(name: &str) -> Error {
    Error::new(
        ErrorKind::CannotRun,
        format!(
            "`{name}` is not a WebAssembly module (no `\\0asm` header and not WebAssembly text)"
        ),
    )
}

fn too_large(name: &str, max: usize) -> Error {
    Error::new(
        ErrorKind::CannotRun,
        format!(
            "`{name}` is larger than the limit of {} on modules; raise it with \
             RuntimeBuilder::max_module_size",
            human(max as u64)
        ),
    )
}

/// Refuses a module that defines more than `max` functions, before any
/// compiling (reading the sections' counts costs next to nothing).
fn check_function_count(name: &str, wasm: &[u8], max: u32) -> Result<(), Error> {
    let mut defined = 0u32;
    for payload in wasmparser::Parser::new(0).parse_all(wasm) {
        match payload {
            Ok(wasmparser::Payload::FunctionSection(functions)) => defined = functions.count(),
            // Malformed modules get wasmtime's own message when compiled.
            Err(_) => return Ok(()),
            Ok(_) => {}
        }
    }
    if defined > max {
        return Err(Error::new(
            ErrorKind::CannotRun,
            format!(
                "`{name}` defines {defined} functions, over the limit of {max}: compiling it \
                 would take time and memory outside every limit; raise the limit with \
                 RuntimeBuilder::max_module_functions (--max-functions)"
            ),
        ));
    }
    Ok(())
}

/// The module as binary wasm: binary is checked to be a core module, text
/// is assembled.
fn to_binary(name: &str, bytes: &[u8]) -> Result<Vec<u8>, Error> {
    const CORE_VERSION: [u8; 4] = [1, 0, 0, 0];
    let cannot_run = |message: String| Error::new(ErrorKind::CannotRun, message);
    if let Some(version) = bytes.strip_prefix(b"\0asm") {
        return match version.get(..4) {
            Some(v) if v == CORE_VERSION => Ok(bytes.to_vec()),
            Some([_, _, 1, 0]) => Err(cannot_run(format!(
                "`{name}` is a WebAssembly component; wasmproc runs core modules: build for wasm32-wasip1"
            ))),
            _ => Err(cannot_run(format!(
                "`{name}` has an unknown WebAssembly version; wasmproc runs core modules (wasm32-wasip1)"
            ))),
        };
    }
    match std::str::from_utf8(bytes) {
        Ok(text) if text.trim_start().starts_with('(') => wat::parse_str(text).map_err(|error| {
            cannot_run(format!("`{name}` is not valid WebAssembly text: {error}"))
        }),
        _ => Err(not_a_module(name)),
    }
}

/// Prepares the instantiation of a module `compiled` (or not) for `linked`
/// from `wasm` (which names what was wrong when it did not compile).
fn prepare(
    linked: &LinkedEngine,
    name: &str,
    wasm: &[u8],
    compiled: Result<(wasmtime::Module, CacheStatus), wasmtime::Error>,
) -> Result<Prepared, Error> {
    let (module, cache_status) = compiled.map_err(|error| {
        // Valid wasm that still does not compile is over a limit of
        // the engine (its instance pool, say), not malformed.
        let message = match wasmtime::Module::validate(&linked.engine, wasm) {
            Ok(()) => format!(
                "`{name}` is valid WebAssembly but cannot run under wasmproc's limits: {error:#}"
            ),
            Err(_) => format!("`{name}` is not a valid WebAssembly module: {error:#}"),
        };
        Error::new(ErrorKind::CannotRun, message)
    })?;
    let pre = linked.linker.instantiate_pre(&module).map_err(|error| {
        Error::new(
            ErrorKind::CannotRun,
            format!(
                "`{name}` cannot be linked: {error:#}. wasmproc provides WASI preview 1 \
                 (`wasi_snapshot_preview1`) and the wasmproc SDK (`{}`); see `wasmproc inspect` for the imports",
                wasmproc_abi::IMPORT_MODULE
            ),
        )
    });
    Ok(Prepared {
        module,
        pre,
        cache_status,
    })
}
