//! A loaded module: compiled (or mapped from the cache) once, prepared for
//! cheap instantiation, and described: its tasks, exports and imports.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use wasmtime::{ExternType, InstancePre, ValType};

use crate::cache::CacheStatus;
use crate::cancel::CancelToken;
use crate::engine::{EngineSlot, Runtime};
use crate::error::{Error, ErrorKind};
use crate::outcome::Outcome;
use crate::task::{Entry, Task};
use crate::worker::{self, HostState};

/// A module ready to run tasks. Cheap to clone and share between threads.
#[derive(Clone)]
pub struct Module {
    pub(crate) inner: Arc<ModuleInner>,
}

pub(crate) struct ModuleInner {
    pub(crate) runtime: Runtime,
    pub(crate) name: String,
    wasm: Vec<u8>,
    plain: Prepared,
    fuel: OnceLock<Result<Prepared, Error>>,
    pub(crate) info: ModuleInfo,
}

/// A module compiled for one engine, with its instantiation prepared.
pub(crate) struct Prepared {
    module: wasmtime::Module,
    pub(crate) pre: Result<InstancePre<HostState>, String>,
    cache_status: CacheStatus,
}

/// What a module exports and imports, read once at load.
pub(crate) struct ModuleInfo {
    pub(crate) tasks: Vec<String>,
    /// The export name of each task in `tasks`, in the same order.
    pub(crate) task_exports: Vec<String>,
    /// Task exports whose signature is not `() -> i32`, with their type.
    pub(crate) malformed_tasks: Vec<(String, String)>,
    pub(crate) start: Signature,
    pub(crate) has_initialize: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Signature {
    Missing,
    Right,
    Wrong(String),
}

/// One export of a module, as `wasmproc inspect` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExportInfo {
    /// The export's name.
    pub name: String,
    /// Its kind and type, e.g. `func () -> i32` or `memory`.
    pub ty: String,
}

/// One import of a module, and whether wasmproc provides it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ImportInfo {
    /// The import's module, e.g. `wasi_snapshot_preview1`.
    pub module: String,
    /// The import's name, e.g. `fd_write`.
    pub name: String,
    /// Its kind and type.
    pub ty: String,
    /// Whether the host provides it; a module with an unprovided import
    /// cannot run.
    pub provided: bool,
}

impl ModuleInner {
    /// The module's binary wasm (as loaded, text assembled).
    pub(crate) fn wasm(&self) -> &[u8] {
        &self.wasm
    }
}

impl std::fmt::Debug for Module {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Module")
            .field("name", &self.inner.name)
            .field("command", &self.is_command())
            .field("tasks", &self.inner.info.tasks)
            .finish()
    }
}

impl Module {
    pub(crate) fn from_file(runtime: &Runtime, path: &Path) -> Result<Module, Error> {
        if path.is_dir() {
            return Err(Error::new(
                ErrorKind::CannotRun,
                format!("`{}` is a directory, not a module file", path.display()),
            ));
        }
        let bytes = std::fs::read(path).map_err(|error| match error.kind() {
            std::io::ErrorKind::NotFound => Error::new(
                ErrorKind::NotFound,
                format!("module `{}` not found: check the path", path.display()),
            ),
            _ => Error::new(
                ErrorKind::CannotRun,
                format!("cannot read module `{}`: {error}", path.display()),
            ),
        })?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        Module::from_bytes(runtime, &name, &bytes)
    }

    pub(crate) fn from_bytes(runtime: &Runtime, name: &str, bytes: &[u8]) -> Result<Module, Error> {
        let wasm = to_binary(name, bytes)?;
        let plain = prepare(runtime, runtime.inner.plain(), name, &wasm)?;
        let info = describe(&plain.module);
        Ok(Module {
            inner: Arc::new(ModuleInner {
                runtime: runtime.clone(),
                name: name.to_owned(),
                wasm,
                plain,
                fuel: OnceLock::new(),
                info,
            }),
        })
    }

    /// Runs one task in a fresh instance and reports how it ended. Every
    /// failure, whatever the guest did, is an [`Outcome`] with its status:
    /// this never panics and never returns early.
    pub fn run(&self, task: &Task) -> Outcome {
        worker::run(self, task, &CancelToken::never())
    }

    /// Runs one task as [`run`](Module::run) does, ending it with
    /// `Cancelled` when `token` is cancelled.
    pub fn run_with(&self, task: &Task, token: &CancelToken) -> Outcome {
        worker::run(self, task, token)
    }

    /// The module's name: its file name, or the name given to
    /// [`Runtime::load_bytes`].
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The typed tasks the module exports, in export order.
    pub fn tasks(&self) -> &[String] {
        &self.inner.info.tasks
    }

    /// Whether the module is a WASI command (exports `_start`).
    pub fn is_command(&self) -> bool {
        self.inner.info.start == Signature::Right
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
        let info = &self.inner.info;
        let name = self.name();
        let task_list = || {
            if info.tasks.is_empty() {
                "it exports no wasmproc tasks".to_owned()
            } else {
                format!("its tasks: {}", info.tasks.join(", "))
            }
        };
        let cannot_run = |message: String| Err(Error::new(ErrorKind::CannotRun, message));
        match entry {
            Entry::Command => match &info.start {
                Signature::Right => Ok(Entry::Command),
                Signature::Missing => cannot_run(format!(
                    "`{name}` is not a WASI command: it has no `_start` export ({}); pick a task instead",
                    task_list()
                )),
                Signature::Wrong(ty) => cannot_run(format!(
                    "`{name}` exports `_start` as {ty}; a command's `_start` is func () -> ()"
                )),
            },
            Entry::Task(wanted) => {
                if info.tasks.iter().any(|t| t == wanted) {
                    Ok(Entry::Task(wanted.clone()))
                } else if let Some((_, ty)) = info.malformed_tasks.iter().find(|(t, _)| t == wanted)
                {
                    cannot_run(format!(
                        "`{name}` exports task `{wanted}` as {ty}; a task export is func () -> (i32): \
                         build it with the wasmproc-guest SDK of this version"
                    ))
                } else {
                    cannot_run(format!("`{name}` has no task `{wanted}`; {}", task_list()))
                }
            }
            Entry::Auto => match (&info.start, info.tasks.as_slice()) {
                (Signature::Right, _) => Ok(Entry::Command),
                (_, [only]) => Ok(Entry::Task(only.clone())),
                (_, []) => cannot_run(format!(
                    "`{name}` exports neither `_start` nor any wasmproc task: nothing to run"
                )),
                (_, tasks) => cannot_run(format!(
                    "`{name}` exports several tasks ({}): choose one (`--task NAME`)",
                    tasks.join(", ")
                )),
            },
        }
    }

    /// How this load obtained the compiled module: from the cache, or by
    /// compiling it.
    pub fn cache_status(&self) -> CacheStatus {
        self.inner.plain.cache_status
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
        let slot = self.inner.runtime.inner.plain();
        let mut store = wasmtime::Store::new(&slot.engine, HostState::scratch());
        self.inner
            .plain
            .module
            .imports()
            .map(|import| ImportInfo {
                module: import.module().to_owned(),
                name: import.name().to_owned(),
                ty: describe_extern(&import.ty()),
                provided: slot.linker.get_by_import(&mut store, &import).is_some(),
            })
            .collect()
    }

    /// The prepared module for the plain or the fuel-metering engine.
    pub(crate) fn prepared(&self, fuel: bool) -> Result<&Prepared, Error> {
        if !fuel {
            return Ok(&self.inner.plain);
        }
        let inner = &self.inner;
        inner
            .fuel
            .get_or_init(|| {
                let slot = inner.runtime.inner.fuel()?;
                prepare(&inner.runtime, slot, &inner.name, &inner.wasm)
            })
            .as_ref()
            .map_err(|error| Error::new(error.kind().clone(), error.to_string()))
    }
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
        _ => Err(cannot_run(format!(
            "`{name}` is not a WebAssembly module (no `\\0asm` header and not WebAssembly text)"
        ))),
    }
}

fn prepare(
    runtime: &Runtime,
    slot: &EngineSlot,
    name: &str,
    wasm: &[u8],
) -> Result<Prepared, Error> {
    let (module, cache_status) = runtime
        .inner
        .cache
        .load_or_compile(&slot.engine, wasm)
        .map_err(|error| {
            Error::new(
                ErrorKind::CannotRun,
                format!("`{name}` is not a valid WebAssembly module: {error:#}"),
            )
        })?;
    let pre = slot.linker.instantiate_pre(&module).map_err(|error| {
        format!(
            "`{name}` cannot be linked: {error:#}. wasmproc provides WASI preview 1 \
             (`wasi_snapshot_preview1`) and the wasmproc SDK (`{}`); see `wasmproc inspect` for the imports",
            wasmproc_abi::IMPORT_MODULE
        )
    });
    Ok(Prepared {
        module,
        pre,
        cache_status,
    })
}

fn describe(module: &wasmtime::Module) -> ModuleInfo {
    let mut info = ModuleInfo {
        tasks: Vec::new(),
        task_exports: Vec::new(),
        malformed_tasks: Vec::new(),
        start: Signature::Missing,
        has_initialize: false,
    };
    for export in module.exports() {
        let ty = export.ty();
        let func = ty.func();
        if let Some(task) = wasmproc_abi::task_name(export.name()) {
            match func {
                Some(f)
                    if f.params().len() == 0
                        && f.results().map(|r| matches!(r, ValType::I32)).eq([true]) =>
                {
                    info.tasks.push(task.to_owned());
                    info.task_exports.push(export.name().to_owned());
                }
                _ => info
                    .malformed_tasks
                    .push((task.to_owned(), describe_extern(&ty))),
            }
        } else if export.name() == "_start" {
            info.start = match func {
                Some(f) if f.params().len() == 0 && f.results().len() == 0 => Signature::Right,
                _ => Signature::Wrong(describe_extern(&ty)),
            };
        } else if export.name() == "_initialize" {
            info.has_initialize = func.is_some();
        }
    }
    info
}

fn describe_extern(ty: &ExternType) -> String {
    match ty {
        ExternType::Func(f) => {
            let list = |types: &mut dyn Iterator<Item = ValType>| {
                types.map(|t| t.to_string()).collect::<Vec<_>>().join(", ")
            };
            format!(
                "func ({}) -> ({})",
                list(&mut f.params()),
                list(&mut f.results())
            )
        }
        ExternType::Memory(_) => "memory".into(),
        ExternType::Table(_) => "table".into(),
        ExternType::Global(_) => "global".into(),
        ExternType::Tag(_) => "tag".into(),
    }
}
