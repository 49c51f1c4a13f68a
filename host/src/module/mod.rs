//! A loaded module: compiled (or read from the cache) once, prepared for
//! cheap instantiation, described (its tasks, exports and imports), and the
//! rules that resolve an [`Entry`] to the export a task calls.
//!
//! - `load`: file or bytes to a compiled, prepared module (the cache, the
//!   size and function-count limits); a snapshot compiled the same way.
//! - `resolve`: an [`Entry`] or an initializer to the export to call.
//! - `invoke`: any exported function called as `wasmtime run --invoke`
//!   does: the signatures it takes, its arguments parsed from argv.
//! - `describe`: tasks, initializers, exports and imports, from the
//!   compiled module; `signature`: the SDK's recorded signatures.
//! - `component`: a component (WASI 0.2) described in WIT names and
//!   prepared with the component linker; `wit_shape`: its exported
//!   functions as task signatures, with JSON shapes.
//!
//! Running tasks is the next layer up: `Module::run` lives in `run`, and
//! so does remaking a snapshot's wasm (its initializer runs again), which
//! the run layer hands down where it may be needed ([`Remake`]).

mod component;
mod describe;
mod invoke;
mod load;
mod resolve;
mod sdk_component;
mod signature;
pub(crate) mod snapshot_data;
mod wit_shape;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use wasmtime::component::Component;
use wasmtime::{Engine, InstancePre};

use crate::cache::{CacheStatus, Identity, ModuleCache};
use crate::error::{Error, ErrorKind};
use crate::runtime::Runtime;
use crate::store::HostState;
#[cfg(doc)]
use crate::task::Entry;
use crate::task::Initializer;

use component::ComponentInfo;
pub(crate) use component::{CommandEntry, ComponentPre};
pub use describe::{ExportInfo, ImportInfo};
use describe::{ModuleInfo, Signature, describe_extern};
pub(crate) use invoke::{Returns, show};
pub(crate) use resolve::Resolved;
pub(crate) use sdk_component::SdkDispatch;
pub use signature::{Param, Shape, ShapeField, ShapeVariant, TaskSignature};
pub(crate) use wit_shape::task_signature;

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
    /// needs it (fuel metering, another initializer): then the run layer
    /// runs its initializer again, once ([`Module::wasm_or_remake`]).
    wasm: OnceLock<Result<Vec<u8>, Error>>,
    /// The file it was loaded from, if any. A module the cache knew by its
    /// file (`Runtime::load_file`) reads its wasm from there only when
    /// something needs it, checked against its identity.
    source: Option<PathBuf>,
    plain: Prepared,
    fuel: OnceLock<Result<Prepared, Error>>,
    info: ModuleInfo,
    /// Set on a component: its imports and exports in WIT names.
    component: Option<ComponentInfo>,
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
}

/// Makes a snapshot's wasm again from its origin, by running its
/// initializer over its base: the run layer's, passed down by the callers
/// that may need it.
pub(crate) type Remake = fn(&Origin) -> Result<Vec<u8>, Error>;

/// A module or component compiled for one engine, with its instantiation
/// prepared.
pub(crate) struct Prepared {
    code: Code,
    cache_status: CacheStatus,
}

/// The compiled code and its prepared instantiation. The prepared part is
/// `Err` when the imports cannot be satisfied: every task that tries to
/// run it gets this error.
enum Code {
    Core {
        module: wasmtime::Module,
        pre: Result<InstancePre<HostState>, Error>,
    },
    Component(Result<ComponentPre, Error>),
}

/// What a task instantiates: a core module's or a component's prepared
/// instantiation.
#[derive(Clone, Copy)]
pub(crate) enum Runnable<'a> {
    Core(&'a InstancePre<HostState>),
    Component(&'a ComponentPre),
}

impl Prepared {
    /// The prepared instantiation, or why it cannot be linked.
    pub(crate) fn runnable(&self) -> Result<Runnable<'_>, Error> {
        match &self.code {
            Code::Core { pre, .. } => pre.as_ref().map(Runnable::Core).map_err(Error::clone),
            Code::Component(pre) => pre.as_ref().map(Runnable::Component).map_err(Error::clone),
        }
    }

    /// The compiled core module; `None` for a component.
    fn core(&self) -> Option<&wasmtime::Module> {
        match &self.code {
            Code::Core { module, .. } => Some(module),
            Code::Component(_) => None,
        }
    }

    /// The compiled component, for a component whose instantiation was
    /// prepared.
    fn component(&self) -> Option<&Component> {
        match &self.code {
            Code::Component(Ok(prepared)) => Some(prepared.pre.component()),
            _ => None,
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

impl Module {
    /// The module's name: its file name, or the name given to
    /// [`Runtime::load_bytes`].
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The typed tasks the module exports, in export order: the SDK's, or
    /// a component's exported WIT functions (see
    /// [`component_functions`](Module::component_functions)).
    pub fn tasks(&self) -> &[String] {
        match &self.inner.component {
            Some(component) => &component.functions,
            None => &self.inner.info.tasks.names,
        }
    }

    /// The parameters and result of each task, initializer and handler, as
    /// the guest SDK recorded them (empty for modules not built with it);
    /// for a component, each exported function's, in WIT.
    pub fn signatures(&self) -> &[TaskSignature] {
        if let Some(signatures) = self.inner.signatures.get() {
            return signatures;
        }
        let signatures = if let Some(component) = &self.inner.component {
            component.signatures.clone()
        } else {
            match (self.stored_wasm(), &self.inner.origin) {
                (Some(Ok(wasm)), _) => signature::read(wasm),
                // A snapshot's tasks are its base module's.
                (_, Some(origin)) => origin.base.signatures().to_vec(),
                // The module file could not be read again just now (being
                // rewritten, say): none this time, and the next call tries
                // again rather than keeping "none".
                (Some(Err(_)), None) => return &[],
                (None, None) => Vec::new(),
            }
        };
        self.inner.signatures.get_or_init(|| signatures)
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
        match &self.inner.component {
            Some(component) => &component.initializers,
            None => &self.inner.info.initializers.names,
        }
    }

    /// Whether the module is a WASI command: a core module that exports
    /// `_start`, or a component that exports `wasi:cli/run`.
    pub fn is_command(&self) -> bool {
        match &self.inner.component {
            Some(component) => component.command,
            None => self.inner.info.start == Signature::Right,
        }
    }

    /// Whether this is a component (WASI 0.2, `wasm32-wasip2`) rather than
    /// a core module. Its [`exports`](Module::exports) and
    /// [`imports`](Module::imports) are WIT interfaces and functions.
    pub fn is_component(&self) -> bool {
        self.inner.component.is_some()
    }

    /// The initializer this module is a snapshot of, if it is one (see
    /// [`Module::initialize`]).
    pub fn initialized_by(&self) -> Option<&Initializer> {
        self.inner.origin.as_ref().map(|origin| &origin.init)
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

    /// The module's binary wasm (as loaded; text is assembled), for a
    /// module that holds it: every module loaded from wasm, and every
    /// snapshot that is not found in the cache. A snapshot found there
    /// holds it only once [`wasm_or_remake`](Module::wasm_or_remake) made it.
    pub(crate) fn wasm(&self) -> Result<&[u8], Error> {
        match self.stored_wasm() {
            Some(wasm) => wasm,
            None => Err(Error::new(
                ErrorKind::CannotRun,
                format!(
                    "the snapshot of `{}` was found in the cache and holds no wasm",
                    self.name()
                ),
            )),
        }
    }

    /// The wasm the module holds: for a module the cache knew by its file,
    /// read from the file now if not yet (kept only once a read worked: a
    /// read that failed is tried again at the next need). `None` for a
    /// snapshot found in the cache that has not made its wasm again.
    fn stored_wasm(&self) -> Option<Result<&[u8], Error>> {
        if let Some(stored) = self.inner.wasm.get() {
            return Some(stored.as_deref().map_err(Error::clone));
        }
        match (&self.inner.source, &self.inner.origin) {
            (Some(path), None) => Some(self.read_source(path).and_then(|wasm| {
                self.inner
                    .wasm
                    .get_or_init(|| Ok(wasm))
                    .as_deref()
                    .map_err(Error::clone)
            })),
            _ => None,
        }
    }

    /// The module file's wasm, if it is still this module's: read as a
    /// load reads it (no directory, a module's header, at most
    /// [`MAX_SIZE_LIMIT`](crate::MAX_SIZE_LIMIT) bytes), whatever the path
    /// holds by now.
    fn read_source(&self, path: &Path) -> Result<Vec<u8>, Error> {
        let file = load::open_module(path)?;
        let wasm = load::read_module(&file, path, self.name(), crate::limits::MAX_SIZE_LIMIT)?;
        if Identity::of_wasm(&wasm) != self.inner.identity {
            return Err(load::changed(path));
        }
        Ok(wasm)
    }

    /// The file the module was loaded from, when its wasm was not read
    /// (the cache knew the file): a worker process loads that file too,
    /// rather than being sent its wasm. A worker loads it from the cache by
    /// its identity, so the compiled code is written back to the cache
    /// first if its entry is gone: the file may have changed since (and
    /// cannot stand in for it), and the pool holds the code.
    pub(crate) fn unread_source(&self) -> Option<&Path> {
        if self.inner.wasm.get().is_some() {
            return None;
        }
        let path = self.inner.source.as_deref()?;
        self.write_back(ModuleCache::restore, ModuleCache::restore);
        Some(path)
    }

    /// Writes a cached snapshot's compiled code back to the cache if its
    /// entry is gone, so that a worker process finds it by its identity
    /// rather than running the initializer again over its base (whose file
    /// may have changed since, and which may not leave the same state
    /// twice). Only the plain engine's code: a worker that needs the
    /// fuel-metered code and finds its entry gone still makes it again.
    pub(crate) fn keep_snapshot_cached(&self) {
        self.write_back(ModuleCache::restore_snapshot, ModuleCache::restore_snapshot);
    }

    /// Hands the compiled code, a core module's to `core` or a
    /// component's to `component`, to be written back to the cache.
    fn write_back(
        &self,
        core: fn(&ModuleCache, &Engine, &Identity, &wasmtime::Module) -> bool,
        component: fn(&ModuleCache, &Engine, &Identity, &Component) -> bool,
    ) {
        let Ok(linked) = self.runtime().engine(false) else {
            return;
        };
        let (cache, identity) = (self.runtime().cache(), &self.inner.identity);
        if let Some(compiled) = self.inner.plain.core() {
            core(cache, &linked.engine, identity, compiled);
        } else if let Some(compiled) = self.inner.plain.component() {
            component(cache, &linked.engine, identity, compiled);
        }
    }

    /// The module, remembered as loaded from `path`.
    pub(super) fn with_source(mut self, path: &Path) -> Module {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            // Absolute: a worker process may load it too.
            inner.source = Some(std::path::absolute(path).unwrap_or_else(|_| path.to_owned()));
        }
        self
    }

    /// The module's binary wasm; a snapshot found in the cache makes it
    /// again with `remake`, once (what it gives, wasm or error, is kept).
    pub(crate) fn wasm_or_remake(&self, remake: Remake) -> Result<&[u8], Error> {
        if let Some(wasm) = self.stored_wasm() {
            return wasm;
        }
        self.inner
            .wasm
            .get_or_init(|| match &self.inner.origin {
                Some(origin) => remake(origin),
                None => unreachable!("a module loaded from wasm or a file keeps or reads it"),
            })
            .as_deref()
            .map_err(Error::clone)
    }

    /// Whether wasmproc can satisfy the module's imports (with the
    /// runtime's `stub_unknown_imports`): the `CannotRun` error every task
    /// of the module would end with when it cannot, naming the import.
    /// Loading succeeds either way, so that the imports can be listed
    /// (`wasmproc inspect`); a front end that is about to run many tasks
    /// asks first, to refuse once instead of failing each.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::CannotRun`] when an import cannot be linked.
    pub fn check_imports(&self) -> Result<(), Error> {
        self.inner.plain.runnable().map(|_| ())
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

    /// Every export with its type (a component's: its WIT interfaces and
    /// functions).
    pub fn exports(&self) -> Vec<ExportInfo> {
        if let Some(component) = &self.inner.component {
            return component.exports.clone();
        }
        let Some(module) = self.inner.plain.core() else {
            return Vec::new();
        };
        module
            .exports()
            .map(|export| ExportInfo {
                name: export.name().to_owned(),
                ty: describe_extern(&export.ty()),
            })
            .collect()
    }

    /// The exported functions other than the guest contract's own
    /// (`_start`, `_initialize`, the SDK's tasks and initializers), with
    /// their types: what [`Task::invoke`](crate::Task::invoke) can call
    /// (those whose parameters and results are all numbers).
    /// A component has none: its exports are not core functions.
    pub fn functions(&self) -> Vec<ExportInfo> {
        let Some(module) = self.inner.plain.core() else {
            return Vec::new();
        };
        module
            .exports()
            .filter(|export| {
                export.ty().func().is_some() && !invoke::is_contract_export(export.name())
            })
            .map(|export| ExportInfo {
                name: export.name().to_owned(),
                ty: describe_extern(&export.ty()),
            })
            .collect()
    }

    /// Every import with its type and whether wasmproc provides it (a
    /// component's: each WIT interface in `module`, `name` empty).
    pub fn imports(&self) -> Vec<ImportInfo> {
        if let Some(component) = &self.inner.component {
            return component.imports.clone();
        }
        let (Ok(linked), Some(module)) =
            (self.inner.runtime.engine(false), self.inner.plain.core())
        else {
            return Vec::new();
        };
        let mut store = wasmtime::Store::new(&linked.engine, HostState::scratch());
        module
            .imports()
            .map(|import| {
                let provided = linked.linker.get_by_import(&mut store, &import).is_some();
                ImportInfo {
                    module: import.module().to_owned(),
                    name: import.name().to_owned(),
                    ty: describe_extern(&import.ty()),
                    provided,
                    stubbed: !provided
                        && linked.stub_unknown_imports
                        && import.ty().func().is_some(),
                }
            })
            .collect()
    }
}
