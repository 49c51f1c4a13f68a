//! Components (WASI 0.2, `wasm32-wasip2`): what one imports and exports,
//! in WIT names, whether it is a `wasi:cli/run` command, and its
//! instantiation prepared with the WASI 0.2 linker.

use wasmtime::Engine;
use wasmtime::component::types::{ComponentItem, Type};
use wasmtime::component::{Component, InstancePre};
use wasmtime_wasi::p2::bindings::CommandIndices;

use super::describe::{ExportInfo, ImportInfo};
use crate::error::{Error, ErrorKind};
use crate::runtime::LinkedEngine;
use crate::store::HostState;

/// The interface a WASI 0.2 command exports (`wasi:cli/run@0.2.x`).
const RUN_INTERFACE: &str = "wasi:cli/run@0.2.";

/// The WASI 0.2 packages wasmproc's component linker provides (all of
/// wasmtime-wasi's preview 2, sockets denied by the context).
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
    /// Its exported functions other than `wasi:cli/run`'s, as `--task`
    /// names them: a function exported at the top level by its name, one
    /// of an exported interface as `interface#function`.
    pub(super) functions: Vec<String>,
    /// Its imports; `provided` and `stubbed` are set by `prepare`.
    pub(super) imports: Vec<ImportInfo>,
}

/// A component's instantiation, prepared.
pub(crate) struct ComponentPre {
    /// The general form, for any export.
    pub(crate) pre: InstancePre<HostState>,
    /// Where `wasi:cli/run` is, for a command.
    pub(crate) command: Option<CommandIndices>,
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
    let mut functions = Vec::new();
    for (name, item) in ty.exports(engine) {
        match item.ty {
            ComponentItem::ComponentFunc(_) => functions.push(name.to_owned()),
            ComponentItem::ComponentInstance(instance) if !name.starts_with(RUN_INTERFACE) => {
                for (inner, item) in instance.exports(engine) {
                    if matches!(item.ty, ComponentItem::ComponentFunc(_)) {
                        functions.push(format!("{name}#{inner}"));
                    }
                }
            }
            _ => {}
        }
    }
    ComponentInfo {
        command: exports.iter().any(|e| e.name.starts_with(RUN_INTERFACE)),
        exports,
        functions,
        imports,
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
            && import.contains("@0.2.")
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
                "`{name}` cannot be linked: {error:#}. wasmproc provides WASI 0.2 to components \
                 (wasi:cli, wasi:clocks, wasi:filesystem, wasi:io, wasi:random; wasi:sockets \
                 with every address denied), not wasi:http or other worlds; {stubbing}; see \
                 `wasmproc inspect` for the imports"
            ),
        )
        .caused_by(error)
    })?;
    let command = if info.command {
        Some(CommandIndices::new(&pre).map_err(|error| {
            Error::new(
                ErrorKind::CannotRun,
                format!(
                    "`{name}` exports `wasi:cli/run` in a form wasmproc does not run \
                     (WASI 0.2's is `run: func() -> result`): {error:#}"
                ),
            )
            .caused_by(error)
        })?)
    } else {
        None
    };
    Ok(ComponentPre { pre, command })
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
        ComponentItem::Type(ty) => format!("type {}", wit_type(ty)),
        ComponentItem::Resource(_) => "resource".into(),
    }
}

/// A function's signature in WIT, e.g. `func(n: u32) -> result<string>`.
pub(super) fn describe_func(func: &wasmtime::component::types::ComponentFunc) -> String {
    let params: Vec<String> = func
        .params()
        .map(|(name, ty)| format!("{name}: {}", wit_type(&ty)))
        .collect();
    let results: Vec<String> = func.results().map(|ty| wit_type(&ty)).collect();
    match results.as_slice() {
        [] => format!("func({})", params.join(", ")),
        [one] => format!("func({}) -> {one}", params.join(", ")),
        many => format!("func({}) -> ({})", params.join(", "), many.join(", ")),
    }
}

/// A value type in WIT words (records, variants and the like by their
/// shape: a component's type names are not kept in its compiled form).
fn wit_type(ty: &Type) -> String {
    let joined = |types: Vec<String>| types.join(", ");
    match ty {
        Type::Bool => "bool".into(),
        Type::S8 => "s8".into(),
        Type::U8 => "u8".into(),
        Type::S16 => "s16".into(),
        Type::U16 => "u16".into(),
        Type::S32 => "s32".into(),
        Type::U32 => "u32".into(),
        Type::S64 => "s64".into(),
        Type::U64 => "u64".into(),
        Type::Float32 => "f32".into(),
        Type::Float64 => "f64".into(),
        Type::Char => "char".into(),
        Type::String => "string".into(),
        Type::List(list) => format!("list<{}>", wit_type(&list.ty())),
        Type::Option(option) => format!("option<{}>", wit_type(&option.ty())),
        Type::Result(result) => match (result.ok(), result.err()) {
            (None, None) => "result".into(),
            (Some(ok), None) => format!("result<{}>", wit_type(&ok)),
            (None, Some(err)) => format!("result<_, {}>", wit_type(&err)),
            (Some(ok), Some(err)) => format!("result<{}, {}>", wit_type(&ok), wit_type(&err)),
        },
        Type::Tuple(tuple) => format!(
            "tuple<{}>",
            joined(tuple.types().map(|t| wit_type(&t)).collect())
        ),
        Type::Record(record) => format!(
            "record {{ {} }}",
            joined(
                record
                    .fields()
                    .map(|f| format!("{}: {}", f.name, wit_type(&f.ty)))
                    .collect()
            )
        ),
        Type::Variant(variant) => format!(
            "variant {{ {} }}",
            joined(
                variant
                    .cases()
                    .map(|c| match c.ty {
                        Some(ty) => format!("{}({})", c.name, wit_type(&ty)),
                        None => c.name.to_owned(),
                    })
                    .collect()
            )
        ),
        Type::Enum(e) => format!(
            "enum {{ {} }}",
            joined(e.names().map(str::to_owned).collect())
        ),
        Type::Flags(f) => format!(
            "flags {{ {} }}",
            joined(f.names().map(str::to_owned).collect())
        ),
        Type::Own(_) => "own<resource>".into(),
        Type::Borrow(_) => "borrow<resource>".into(),
        Type::Future(_) => "future".into(),
        Type::Stream(_) => "stream".into(),
        Type::ErrorContext => "error-context".into(),
        Type::Map(_) => "map".into(),
        Type::FixedLengthList(_) => "list (fixed length)".into(),
    }
}
