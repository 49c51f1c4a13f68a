//! What a module exports and imports, read once at load: its tasks and
//! initializers, its command entry, and each export's and import's type in
//! words.

use wasmtime::{ExternType, ValType};

/// The WASI preview 1 import module.
const WASI_P1: &str = "wasi_snapshot_preview1";

/// What a module exports, as the module layer needs it to resolve entries.
pub(super) struct ModuleInfo {
    pub(super) tasks: Calls,
    pub(super) initializers: Calls,
    pub(super) start: Signature,
    pub(super) has_initialize: bool,
    /// Whether it exports its memory as `memory`.
    pub(super) exports_memory: bool,
    /// Whether it imports WASI or SDK functions, which need that memory.
    pub(super) needs_memory: bool,
}

/// The typed calls of one kind (tasks, or initializers) a module exports:
/// both are `() -> i32` functions under the contract's prefix.
#[derive(Debug, Default)]
pub(super) struct Calls {
    /// Their names, in export order.
    pub(super) names: Vec<String>,
    /// The export name of each, in the same order.
    pub(super) exports: Vec<String>,
    /// Exports under the prefix whose signature is not `() -> i32`, with
    /// their type.
    pub(super) malformed: Vec<(String, String)>,
}

impl Calls {
    /// Records the export `export` named `name` of type `ty`.
    fn add(&mut self, name: &str, export: &str, ty: &ExternType) {
        match ty.func() {
            Some(f)
                if f.params().len() == 0
                    && f.results().map(|r| matches!(r, ValType::I32)).eq([true]) =>
            {
                self.names.push(name.to_owned());
                self.exports.push(export.to_owned());
            }
            _ => self.malformed.push((name.to_owned(), describe_extern(ty))),
        }
    }

    /// The export of the call named `name`.
    pub(super) fn export_of(&self, name: &str) -> Option<&str> {
        let index = self.names.iter().position(|n| n == name)?;
        Some(&self.exports[index])
    }

    /// The type of the malformed export named `name`, if there is one.
    pub(super) fn malformed_type(&self, name: &str) -> Option<&str> {
        self.malformed
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, ty)| ty.as_str())
    }
}

/// Whether an expected export is there, and of the right type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Signature {
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
    /// cannot run, unless it is stubbed.
    pub provided: bool,
    /// Whether it is an unprovided function import that the runtime
    /// defines as a trap ([`RuntimeBuilder::stub_unknown_imports`](crate::RuntimeBuilder::stub_unknown_imports)).
    pub stubbed: bool,
}

/// The description of something that exports none of a core module's
/// contract (a component's core view).
pub(super) fn nothing() -> ModuleInfo {
    ModuleInfo {
        tasks: Calls::default(),
        initializers: Calls::default(),
        start: Signature::Missing,
        has_initialize: false,
        exports_memory: false,
        needs_memory: false,
    }
}

pub(super) fn describe(module: &wasmtime::Module) -> ModuleInfo {
    let mut info = ModuleInfo {
        tasks: Calls::default(),
        initializers: Calls::default(),
        start: Signature::Missing,
        has_initialize: false,
        exports_memory: false,
        needs_memory: module.imports().any(|import| {
            matches!(import.ty(), ExternType::Func(_))
                && [WASI_P1, wasmproc_abi::IMPORT_MODULE].contains(&import.module())
                && !["proc_exit", "sched_yield"].contains(&import.name())
        }),
    };
    for export in module.exports() {
        let ty = export.ty();
        let func = ty.func();
        if let Some(task) = wasmproc_abi::task_name(export.name()) {
            info.tasks.add(task, export.name(), &ty);
        } else if let Some(init) = wasmproc_abi::init_name(export.name()) {
            info.initializers.add(init, export.name(), &ty);
        } else if export.name() == "_start" {
            info.start = match func {
                Some(f) if f.params().len() == 0 && f.results().len() == 0 => Signature::Right,
                _ => Signature::Wrong(describe_extern(&ty)),
            };
        } else if export.name() == "_initialize" {
            info.has_initialize = func.is_some();
        } else if export.name() == "memory" {
            info.exports_memory = matches!(ty, ExternType::Memory(_));
        }
    }
    info
}

/// An export's or import's kind and type in words, e.g. `func () -> (i32)`.
pub(super) fn describe_extern(ty: &ExternType) -> String {
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
