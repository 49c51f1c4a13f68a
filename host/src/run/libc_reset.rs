//! wasi-libc's `__wasilibc_reset_preopens`, made callable by the host in a
//! component about to be snapshot.
//!
//! A component's libc keeps the handles of what it looked up or opened
//! (the granted directories, its stdio streams, open files) in its
//! descriptor table, in memory; the handles themselves live in the
//! instance's handle tables, which no snapshot keeps. wasi-libc offers
//! `__wasilibc_reset_preopens` for exactly this moment (newer versions
//! also empty the descriptor table, dropping every handle), but nothing
//! outside the component can call it: it is an export of the libc core
//! instance, which the component does not export. A component whose libc
//! is a library of its own (dynamically linked, as componentize-py's
//! CPython is) has that core export; this module adds a component export
//! that lifts it, to the copy wizer instruments (never to the snapshot),
//! and calls it once the initializer returned. Then an initializer that
//! read granted files (a Python `Pool(initializer=...)` with `dirs=`)
//! leaves nothing held, and every task's libc looks its own grants up
//! again. What the program itself keeps open (a file, a socket) is
//! refused before that ([`kept_open`]): libc would forget it, but the
//! program would still hold a descriptor naming nothing, or in a task,
//! something else.

use wasm_encoder::{
    Alias, CanonicalFunctionSection, ComponentAliasSection, ComponentExportKind,
    ComponentExportSection, ComponentSection, ComponentTypeSection, ExportKind,
};
use wasmparser::{
    CanonicalFunction, ComponentAlias, ComponentExternalKind, ComponentOuterAliasKind,
    ExternalKind, Instance, Parser, Payload, TypeRef,
};

use super::driver::block_on;
use crate::store::HostState;
use wasmtime::Store;
use wasmtime_wasi::ResourceTable;
use wasmtime_wasi::filesystem::Descriptor;
use wasmtime_wasi::sockets::{TcpSocket, UdpSocket};

/// The core export wasi-libc resets its handles with.
const LIBC_RESET: &str = "__wasilibc_reset_preopens";

/// The component export it is lifted to in the instrumented copy.
const RESET_EXPORT: &str = "wasmproc-reset-wasi-libc";

/// `instrumented` with a component export [`RESET_EXPORT`] that calls
/// the first core instance's `__wasilibc_reset_preopens` (a function of
/// no parameters and no results), when one has it; as it was otherwise.
pub(super) fn export_libc_reset(mut instrumented: Vec<u8>) -> Vec<u8> {
    let Some(found) = IndexSpaces::of(&instrumented) else {
        return instrumented;
    };
    let Some(instance) = found.libc_instance else {
        return instrumented;
    };
    let mut aliases = ComponentAliasSection::new();
    aliases.alias(Alias::CoreInstanceExport {
        instance,
        kind: ExportKind::Func,
        name: LIBC_RESET,
    });
    let mut types = ComponentTypeSection::new();
    types
        .function()
        .params::<_, wasm_encoder::ComponentValType>([])
        .result(None);
    let mut lift = CanonicalFunctionSection::new();
    lift.lift(found.core_funcs, found.types, []);
    let mut exports = ComponentExportSection::new();
    exports.export(RESET_EXPORT, ComponentExportKind::Func, found.funcs, None);
    // A component's sections may come in any order: these four, appended,
    // refer only to what precedes them.
    append(&mut instrumented, &aliases);
    append(&mut instrumented, &types);
    append(&mut instrumented, &lift);
    append(&mut instrumented, &exports);
    instrumented
}

fn append(component: &mut Vec<u8>, section: &impl ComponentSection) {
    component.push(section.id());
    section.encode(component);
}

/// Calls the export [`export_libc_reset`] added, if `instance` has it:
/// whether it did.
pub(super) fn reset_libc(
    store: &mut Store<HostState>,
    instance: wasmtime::component::Instance,
) -> wasmtime::Result<bool> {
    let Some(index) = instance.get_export_index(&mut *store, None, RESET_EXPORT) else {
        return Ok(false);
    };
    let reset = instance.get_typed_func::<(), ()>(&mut *store, index)?;
    block_on(reset.call_async(&mut *store, ()))?;
    Ok(true)
}

/// What the guest keeps open that a task could not use, named for a
/// message (`a file`, `2 sockets`): files, sockets, and directories past
/// the `granted` ones its libc looked up (wasmtime-wasi adds one entry per
/// granted directory when libc asks for them, once). `None` when nothing.
pub(super) fn kept_open(table: &mut ResourceTable, granted: usize) -> Option<String> {
    let (mut files, mut dirs, mut sockets) = (0usize, 0usize, 0usize);
    for entry in table.iter_mut() {
        if let Some(descriptor) = entry.downcast_ref::<Descriptor>() {
            match descriptor {
                Descriptor::File(_) => files += 1,
                Descriptor::Dir(_) => dirs += 1,
            }
        } else if entry.is::<TcpSocket>() || entry.is::<UdpSocket>() {
            sockets += 1;
        }
    }
    let named = |count: usize, one: &str| match count {
        0 => None,
        1 => Some(format!("a {one}")),
        n => Some(format!("{n} {one}s")),
    };
    let kept: Vec<String> = [
        named(files, "file"),
        named(dirs.saturating_sub(granted), "directory handle"),
        named(sockets, "socket"),
    ]
    .into_iter()
    .flatten()
    .collect();
    (!kept.is_empty()).then(|| kept.join(" and "))
}

/// The sizes of a component's top-level index spaces that the appended
/// sections extend, and the core instance whose module exports the reset.
#[derive(Default)]
struct IndexSpaces {
    types: u32,
    funcs: u32,
    core_funcs: u32,
    core_instances: u32,
    modules: u32,
    /// The top-level modules that export [`LIBC_RESET`] as a function of
    /// no parameters and no results.
    libc_modules: Vec<u32>,
    libc_instance: Option<u32>,
}

/// What is known of a core module while its sections go by: enough to
/// tell the type of an exported function.
#[derive(Default)]
struct ModuleScan {
    index: u32,
    /// Per type index: whether it is a function type `[] -> []`.
    nullary: Vec<bool>,
    /// The type index of each function, imports first.
    func_types: Vec<u32>,
}

impl ModuleScan {
    fn exports_reset(&self, func: u32) -> bool {
        self.func_types
            .get(func as usize)
            .and_then(|ty| self.nullary.get(*ty as usize))
            .copied()
            .unwrap_or(false)
    }
}

/// Where the parse is: in the component itself, in one of its modules, or
/// in a nested component (whose index spaces are its own).
enum Scope {
    Module(ModuleScan),
    Nested,
}

impl IndexSpaces {
    /// The index spaces of `component`, counted as the component model
    /// defines them; `None` for what does not parse (the caller keeps the
    /// component as it is, and wasmtime reports the problem).
    fn of(component: &[u8]) -> Option<IndexSpaces> {
        let mut spaces = IndexSpaces::default();
        let mut scopes: Vec<Scope> = Vec::new();
        for payload in Parser::new(0).parse_all(component) {
            let payload = payload.ok()?;
            match scopes.last_mut() {
                Some(Scope::Module(module)) => {
                    if let Payload::End(_) = payload {
                        scopes.pop();
                    } else {
                        module.read(&payload, &mut spaces.libc_modules)?;
                    }
                    continue;
                }
                Some(Scope::Nested) => {
                    match payload {
                        Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => {
                            scopes.push(Scope::Nested)
                        }
                        Payload::End(_) => {
                            scopes.pop();
                        }
                        _ => {}
                    }
                    continue;
                }
                None => {}
            }
            spaces.read(payload, &mut scopes)?;
        }
        Some(spaces)
    }

    /// Counts what one top-level section adds to each index space.
    fn read(&mut self, payload: Payload<'_>, scopes: &mut Vec<Scope>) -> Option<()> {
        match payload {
            Payload::ModuleSection { .. } => {
                scopes.push(Scope::Module(ModuleScan {
                    index: self.modules,
                    ..ModuleScan::default()
                }));
                self.modules += 1;
            }
            Payload::ComponentSection { .. } => scopes.push(Scope::Nested),
            Payload::InstanceSection(reader) => {
                for instance in reader {
                    if let Instance::Instantiate { module_index, .. } = instance.ok()?
                        && self.libc_instance.is_none()
                        && self.libc_modules.contains(&module_index)
                    {
                        self.libc_instance = Some(self.core_instances);
                    }
                    self.core_instances += 1;
                }
            }
            Payload::ComponentAliasSection(reader) => {
                for alias in reader {
                    match alias.ok()? {
                        ComponentAlias::CoreInstanceExport { kind, .. } => {
                            if matches!(kind, ExternalKind::Func | ExternalKind::FuncExact) {
                                self.core_funcs += 1;
                            }
                        }
                        ComponentAlias::InstanceExport { kind, .. } => self.add(kind)?,
                        ComponentAlias::Outer { kind, .. } => match kind {
                            ComponentOuterAliasKind::Type => self.types += 1,
                            // A module from elsewhere shifts the module
                            // indices that instantiations name: not handled.
                            ComponentOuterAliasKind::CoreModule => return None,
                            _ => {}
                        },
                    }
                }
            }
            Payload::ComponentCanonicalSection(reader) => {
                for function in reader {
                    match function.ok()? {
                        CanonicalFunction::Lift { .. } => self.funcs += 1,
                        _ => self.core_funcs += 1,
                    }
                }
            }
            Payload::ComponentImportSection(reader) => {
                for import in reader {
                    self.add(import.ok()?.ty.kind())?;
                }
            }
            Payload::ComponentExportSection(reader) => {
                for export in reader {
                    let export = export.ok()?;
                    if export.name.name == RESET_EXPORT {
                        // Already there: nothing is added twice.
                        self.libc_instance = None;
                        self.libc_modules.clear();
                    }
                    self.add(export.kind)?;
                }
            }
            Payload::ComponentTypeSection(reader) => {
                self.types = self.types.checked_add(reader.count())?;
            }
            _ => {}
        }
        Some(())
    }

    /// An import, export or alias of `kind`: one more in its index space.
    /// `None` for a module (imported, exported or aliased), which would
    /// shift the indices that instantiations name: not handled (wizer
    /// refuses such components too).
    fn add(&mut self, kind: ComponentExternalKind) -> Option<()> {
        match kind {
            ComponentExternalKind::Func => self.funcs += 1,
            ComponentExternalKind::Type => self.types += 1,
            ComponentExternalKind::Module => return None,
            _ => {}
        }
        Some(())
    }
}

impl ModuleScan {
    /// Notes a module section's types, functions and exports.
    fn read(&mut self, payload: &Payload<'_>, libc_modules: &mut Vec<u32>) -> Option<()> {
        match payload {
            Payload::TypeSection(reader) => {
                for group in reader.clone() {
                    for sub in group.ok()?.into_types() {
                        let nullary = match &sub.composite_type.inner {
                            wasmparser::CompositeInnerType::Func(func) => {
                                func.params().is_empty() && func.results().is_empty()
                            }
                            _ => false,
                        };
                        self.nullary.push(nullary);
                    }
                }
            }
            Payload::ImportSection(reader) => {
                for import in reader.clone().into_imports() {
                    if let TypeRef::Func(ty) | TypeRef::FuncExact(ty) = import.ok()?.ty {
                        self.func_types.push(ty);
                    }
                }
            }
            Payload::FunctionSection(reader) => {
                for ty in reader.clone() {
                    self.func_types.push(ty.ok()?);
                }
            }
            Payload::ExportSection(reader) => {
                for export in reader.clone() {
                    let export = export.ok()?;
                    if export.name == LIBC_RESET
                        && export.kind == ExternalKind::Func
                        && self.exports_reset(export.index)
                    {
                        libc_modules.push(self.index);
                    }
                }
            }
            _ => {}
        }
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::component::{Component, Linker};
    use wasmtime::{Engine, Store};

    /// A component whose "libc" counts its resets, behind imports, a type,
    /// a lowered function and a lifted one, so that every index space the
    /// appended sections extend is already in use.
    const COMPONENT: &str = r#"
      (component
        (import "log" (func $log (param "n" s32)))
        (type $unused (func))
        (core func $log_lowered (canon lower (func $log)))
        (core module $libc
          (import "host" "log" (func (param i32)))
          (global $resets (mut i32) (i32.const 0))
          (func (export "__wasilibc_reset_preopens")
            (global.set $resets (i32.add (global.get $resets) (i32.const 1))))
          (func (export "resets") (result i32) (global.get $resets)))
        (core module $other
          (func (export "__wasilibc_reset_preopens") (param i32)))
        (core instance $host (export "log" (func $log_lowered)))
        (core instance $other (instantiate $other))
        (core instance $libc (instantiate $libc (with "host" (instance $host))))
        (func (export "resets") (result s32) (canon lift (core func $libc "resets"))))
    "#;

    fn instantiate(wasm: &[u8]) -> (Store<()>, wasmtime::component::Instance) {
        let engine = Engine::default();
        let component = Component::new(&engine, wasm).expect("the component is valid");
        let mut linker = Linker::<()>::new(&engine);
        linker
            .root()
            .func_wrap("log", |_, (_,): (i32,)| Ok(()))
            .unwrap();
        let mut store = Store::new(&engine, ());
        let instance = linker.instantiate(&mut store, &component).unwrap();
        (store, instance)
    }

    fn call<R: wasmtime::component::ComponentNamedList + wasmtime::component::Lift>(
        store: &mut Store<()>,
        instance: wasmtime::component::Instance,
        name: &str,
    ) -> R {
        instance
            .get_typed_func::<(), R>(&mut *store, name)
            .unwrap()
            .call(&mut *store, ())
            .unwrap()
    }

    #[test]
    fn the_export_added_calls_the_libc_instances_reset() {
        let wasm = export_libc_reset(wat::parse_str(COMPONENT).unwrap());
        let (mut store, instance) = instantiate(&wasm);
        call::<()>(&mut store, instance, RESET_EXPORT);
        call::<()>(&mut store, instance, RESET_EXPORT);
        assert_eq!(call::<(i32,)>(&mut store, instance, "resets"), (2,));
        // Added once: a second pass finds the export there.
        assert_eq!(export_libc_reset(wasm.clone()), wasm);
    }

    #[test]
    fn a_component_with_no_such_libc_is_kept_as_it_is() {
        let without = COMPONENT.replace(
            r#"(func (export "__wasilibc_reset_preopens")"#,
            r#"(func (export "reset_something_else")"#,
        );
        let wasm = wat::parse_str(&without).unwrap();
        // `$other` exports the name with a parameter: not wasi-libc's.
        assert_eq!(export_libc_reset(wasm.clone()), wasm);
        let (mut store, instance) = instantiate(&wasm);
        assert!(
            instance
                .get_export_index(&mut store, None, RESET_EXPORT)
                .is_none()
        );
    }
}
