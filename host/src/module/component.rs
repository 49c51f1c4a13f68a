//! Components (WASI 0.2, `wasm32-wasip2`, and WASI 0.3): what one imports
//! and exports, in WIT names, whether it is a `wasi:cli/run` command (of
//! which WASI version), and its instantiation prepared with the component
//! linker.

use wasmtime::Engine;
use wasmtime::component::types::{ComponentItem, Type};
use wasmtime::component::{Component, InstancePre};

use super::TaskSignature;
use super::describe::{ExportInfo, ImportInfo};
use super::sdk_component::{SdkDispatch, find_dispatch, sdk_tasks};
use super::wit_shape::task_signature;
use crate::error::{Error, ErrorKind};
use crate::runtime::LinkedEngine;
use crate::store::HostState;
use crate::typed::{TypedExport, func_text, type_text, typed_exports};

/// The interface a WASI 0.2 command exports (`wasi:cli/run@0.2.x`).
const RUN_INTERFACE: &str = "wasi:cli/run@0.2.";

/// The interface a WASI 0.3 command exports (`run: async func() -> result`).
const RUN_INTERFACE_P3: &str = "wasi:cli/run@0.3.";

/// The WASI versions whose packages the component linker provides.
const PROVIDED_VERSIONS: [&str; 2] = ["@0.2.", "@0.3."];

/// The WASI packages wasmproc's component linker provides (all of
/// wasmtime-wasi's preview 2 and its 0.3, sockets denied by the context).
const PROVIDED_PACKAGES: [&str; 6] = [
    "wasi:cli/",
    "wasi:clocks/",
    "wasi:filesystem/",
    "wasi:io/",
    "wasi:random/",
    "wasi:sockets/",
];

/// What a component imports and exports, read once at load.
pub(super) struct ComponentInfo {
    /// Whether it exports `wasi:cli/run` (a command).
    pub(super) command: bool,
    pub(super) exports: Vec<ExportInfo>,
    /// Its exported functions other than WASI's, as `--task` names them:
    /// a function exported at the top level by its name, one of an
    /// exported interface as `interface#function`.
    pub(super) functions: Vec<String>,
    /// Their WIT signatures, as task signatures.
    pub(super) signatures: Vec<TaskSignature>,
    /// Its imports; `provided` and `stubbed` are set by `prepare`.
    pub(super) imports: Vec<ImportInfo>,
    /// Whether it was built with the SDK (`sdk_component`): then
    /// `functions` are its tasks and handlers, and `signatures` the SDK's.
    pub(super) sdk: bool,
    /// An SDK component's initializers.
    pub(super) initializers: Vec<String>,
}

impl ComponentInfo {
    /// Marks an SDK component (one that exports the dispatcher) as one,
    /// with the tasks the SDK recorded in `wasm`, its binary.
    pub(super) fn describe_sdk(&mut self, wasm: &[u8]) {
        if let Some(sdk) = sdk_tasks(&self.exports, wasm) {
            self.sdk = true;
            self.functions = sdk.tasks;
            self.initializers = sdk.initializers;
            self.signatures = sdk.signatures;
        }
    }
}

/// Where a command component's `wasi:cli/run` is, by WASI version.
pub(crate) enum CommandEntry {
    /// WASI 0.2: `run: func() -> result`.
    P2(wasmtime_wasi::p2::bindings::CommandIndices),
    /// WASI 0.3: `run: async func() -> result`, called in the store's
    /// event loop (`Store::run_concurrent`).
    P3(wasmtime_wasi::p3::bindings::CommandIndices),
}

/// A component's instantiation, prepared.
pub(crate) struct ComponentPre {
    /// The general form, for any export.
    pub(crate) pre: InstancePre<HostState>,
    /// Where `wasi:cli/run` is, for a command.
    pub(crate) command: Option<CommandEntry>,
    /// Its exported functions as typed tasks, found in this compiled
    /// component (an export's index is only good for the component it
    /// came from: the fuel-metering engine's is another).
    pub(crate) typed: Vec<TypedExport>,
    /// An SDK component's dispatcher (`sdk_component`).
    pub(crate) sdk: Option<SdkDispatch>,
}

/// Whether `bytes` (binary wasm) are a component rather than a core module:
/// the layer field of the header (`\0asm`, version, layer) is 1.
pub(super) fn is_component(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\0asm") && bytes.get(6..8) == Some(&[1, 0])
}

/// What `component` imports and exports.
pub(super) fn describe_component(engine: &Engine, component: &Component) -> ComponentInfo {
    let ty = component.component_type();
    let exports: Vec<ExportInfo> = ty
        .exports(engine)
        .map(|(name, item)| ExportInfo {
            name: name.to_owned(),
            ty: describe_item(engine, &item.ty, true),
        })
        .collect();
    let imports = ty
        .imports(engine)
        .map(|(name, item)| ImportInfo {
            module: name.to_owned(),
            name: String::new(),
            ty: describe_item(engine, &item.ty, false),
            provided: false,
            stubbed: false,
        })
        .collect();
    // The same list `prepare_component` keeps with each compiled form.
    let typed = typed_exports(component, engine);
    let functions = typed.iter().map(|export| export.name.clone()).collect();
    let signatures = typed.iter().map(task_signature).collect();
    ComponentInfo {
        command: exports
            .iter()
            .any(|e| e.name.starts_with(RUN_INTERFACE) || e.name.starts_with(RUN_INTERFACE_P3)),
        exports,
        functions,
        signatures,
        imports,
        sdk: false,
        initializers: Vec::new(),
    }
}

/// Prepares `component`'s instantiation with `linked`'s component linker
/// (with `stub_unknown_imports`, its unknown functions trap when called);
/// marks which of `info`'s imports are provided.
pub(super) fn prepare_component(
    linked: &LinkedEngine,
    name: &str,
    component: &Component,
    info: &mut ComponentInfo,
) -> Result<ComponentPre, Error> {
    let known = |import: &str| {
        PROVIDED_PACKAGES
            .iter()
            .any(|package| import.starts_with(package))
            && PROVIDED_VERSIONS
                .iter()
                .any(|version| import.contains(version))
    };
    let stub = linked.stub_unknown_imports;
    let mut prepared = linked.component_linker.instantiate_pre(component);
    // Without stubs every import is provided or the link failed naming the
    // first one missing; then each is judged by its package.
    let all_provided = prepared.is_ok();
    if prepared.is_err() && stub {
        let mut stubbed = linked.component_linker.clone();
        prepared = stubbed
            .define_unknown_imports_as_traps(component)
            .and_then(|()| stubbed.instantiate_pre(component));
    }
    for import in &mut info.imports {
        import.provided = all_provided || known(&import.module);
        import.stubbed = !import.provided && prepared.is_ok();
    }
    let pre = prepared.map_err(|error| {
        let stubbing = if stub {
            "unknown functions are stubbed to trap (--stub-imports), but this import cannot be"
        } else {
            "an unknown function import can be stubbed to trap when called with \
             --stub-imports (RuntimeBuilder::stub_unknown_imports)"
        };
        Error::new(
            ErrorKind::CannotRun,
            format!(
                "`{name}` cannot be linked: {error:#}. wasmproc provides WASI 0.2 and 0.3 to \
                 components (wasi:cli, wasi:clocks, wasi:filesystem, wasi:io, wasi:random; \
                 wasi:sockets with every address denied), not wasi:http or other worlds; \
                 {stubbing}; see `wasmproc inspect` for the imports"
            ),
        )
        .caused_by(error)
    })?;
    let command = if info.command {
        Some(command_entry(name, &pre)?)
    } else {
        None
    };
    let typed = typed_exports(component, component.engine());
    let sdk = find_dispatch(name, component)?;
    Ok(ComponentPre {
        pre,
        command,
        typed,
        sdk,
    })
}

/// Where `pre`'s `wasi:cli/run` is: WASI 0.3's when it exports that
/// version (a program built for 0.3 may export 0.2's too), else 0.2's.
fn command_entry(name: &str, pre: &InstancePre<HostState>) -> Result<CommandEntry, Error> {
    let exports_p3 = pre
        .component()
        .component_type()
        .exports(pre.component().engine())
        .any(|(export, _)| export.starts_with(RUN_INTERFACE_P3));
    let entry = if exports_p3 {
        wasmtime_wasi::p3::bindings::CommandIndices::new(pre).map(CommandEntry::P3)
    } else {
        wasmtime_wasi::p2::bindings::CommandIndices::new(pre).map(CommandEntry::P2)
    };
    entry.map_err(|error| {
        Error::new(
            ErrorKind::CannotRun,
            format!(
                "`{name}` exports `wasi:cli/run` in a form wasmproc does not run (WASI 0.2's \
                 is `run: func() -> result`, 0.3's `run: async func() -> result`): {error:#}"
            ),
        )
        .caused_by(error)
    })
}

/// An import's or export's kind and type in WIT words: an interface with
/// its functions (with their signatures when `signatures`: an import's
/// list only names them, WASI's types are long), a function's signature.
fn describe_item(engine: &Engine, item: &ComponentItem, signatures: bool) -> String {
    match item {
        ComponentItem::ComponentFunc(func) => describe_func(func),
        ComponentItem::ComponentInstance(instance) => {
            let functions: Vec<String> = instance
                .exports(engine)
                .filter_map(|(name, item)| match item.ty {
                    ComponentItem::ComponentFunc(func) if signatures => {
                        Some(format!("{name}: {}", describe_func(&func)))
                    }
                    ComponentItem::ComponentFunc(_) => Some(name.to_owned()),
                    _ => None,
                })
                .collect();
            format!("interface {{ {} }}", functions.join("; "))
        }
        ComponentItem::CoreFunc(_) => "core func".into(),
        ComponentItem::Module(_) => "core module".into(),
        ComponentItem::Component(_) => "component".into(),
        ComponentItem::Type(ty) => format!("type {}", type_text(ty)),
        ComponentItem::Resource(_) => "resource".into(),
    }
}

/// A function's signature in WIT, e.g. `func(n: u32) -> result<string>`.
fn describe_func(func: &wasmtime::component::types::ComponentFunc) -> String {
    let params: Vec<(&str, Type)> = func.params().collect();
    let text = func_text(
        params.iter().map(|(name, ty)| (*name, ty)),
        func.results().next().as_ref(),
    );
    // WIT writes an async function `async func(...)`.
    if func.async_() {
        format!("async {text}")
    } else {
        text
    }
}
