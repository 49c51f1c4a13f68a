//! `wasmproc compile` and `wasmproc inspect`: what a module is, without
//! running it.

use std::io::Write;

use serde_json::json;
use wasmproc::CacheStatus;

use crate::flags::{CompileArgs, InspectArgs};
use crate::usage;

/// `wasmproc compile`: the module into the cache, and with --init its
/// snapshot too; one line for each says what was done.
pub(crate) fn compile(args: CompileArgs) -> anyhow::Result<u8> {
    let limits = args.limits.to_limits()?;
    let caps = args.grants.to_capabilities()?;
    let init = args.init.to_initializer(&caps, &limits)?;
    if init.is_none() && (args.limits.any() || !args.grants.is_empty()) {
        // Compiling runs no guest code: without an initializer these flags
        // would be silently ignored.
        return Err(usage(
            "the limits, --dir and --env of `compile` are for an initializer, and no --init \
             names one: add --init NAME, or leave them out",
        ));
    }
    let runtime = args.load.runtime(1).build()?;
    let module = runtime.load(&args.module)?;
    let snapshot = match &init {
        Some(init) => Some(module.initialize_with(init)?),
        None => None,
    };
    let place = runtime
        .cache_dir()
        .map(|dir| dir.display().to_string())
        .unwrap_or_default();
    let cache_off = || match runtime.cache_off_reason() {
        Some(why) => format!("the cache is off ({why})"),
        None => match runtime.cache_dir() {
            Some(dir) if dir.exists() && !dir.is_dir() => format!(
                "the cache's place `{}` is a file, not a directory: set WASMPROC_CACHE_DIR to \
                 a directory you can write",
                dir.display()
            ),
            Some(dir) => match std::fs::create_dir_all(dir) {
                Err(error) => format!(
                    "the cache directory `{}` cannot be made ({error}): set WASMPROC_CACHE_DIR \
                     to a directory you can write",
                    dir.display()
                ),
                Ok(()) => format!("the cache at `{}` could not be written", dir.display()),
            },
            None => "the cache is off".into(),
        },
    };
    let what = match module.cache_status() {
        CacheStatus::Hit => format!("already compiled, in the cache at {place}"),
        CacheStatus::Compiled => format!("compiled into the cache at {place}"),
        CacheStatus::Rebuilt => {
            format!("recompiled: the cache entry at {place} was stale or corrupt")
        }
        _ => format!("compiled, but {}: later runs compile again", cache_off()),
    };
    // `--fuel` runs use code with fuel metering compiled in: prepared too,
    // so that they start at once as well.
    module.prepare_for_fuel()?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{}: {what} (with its fuel-metered form for --fuel runs)",
        module.name()
    )?;
    if let (Some(snapshot), Some(init)) = (snapshot, &init) {
        let name = init.name();
        let what = match snapshot.cache_status() {
            CacheStatus::Hit => format!("already in the cache at {place}"),
            CacheStatus::Compiled | CacheStatus::Rebuilt => {
                format!("made, into the cache at {place}")
            }
            _ => format!("made, but {}: later runs initialize again", cache_off()),
        };
        writeln!(
            out,
            "{}: snapshot of initializer `{name}` {what}",
            module.name()
        )?;
    }
    Ok(0)
}

/// A task's signature, the records and enums it uses (with their
/// fields), and a complete example of its argument when the shapes give
/// one.
fn write_signature(
    out: &mut impl Write,
    signature: &wasmproc::TaskSignature,
    flag: &str,
) -> std::io::Result<()> {
    writeln!(out, "  {signature}")?;
    for shape in signature.named_shapes() {
        writeln!(out, "      {shape}")?;
    }
    let named = !signature.named_shapes().is_empty();
    if (named || signature.params.len() > 1)
        && let Some(example) = signature.example_argument()
    {
        writeln!(out, "      e.g. {flag} '{example}'")?;
    }
    Ok(())
}

pub(crate) fn inspect(args: InspectArgs) -> anyhow::Result<u8> {
    let runtime = args.load.runtime(1).build()?;
    let module = runtime.load(&args.module)?;
    // Written with `?`: a closed stdout (`| head`) ends the command quietly.
    let mut out = std::io::stdout().lock();
    let exports = module.exports();
    let functions = module.functions();
    let imports = module.imports();
    if args.json {
        let value = json!({
            "name": module.name(),
            "command": module.is_command(),
            "component": module.is_component(),
            "tasks": module.tasks(),
            "initializers": module.initializers(),
            "signatures": module.signatures(),
            "handlers": module.signatures().iter().filter(|s| s.is_handler()).map(|s| &s.name).collect::<Vec<_>>(),
            "exports": exports.iter().map(|e| json!({"name": e.name, "type": e.ty})).collect::<Vec<_>>(),
            "functions": functions.iter().map(|e| json!({"name": e.name, "type": e.ty})).collect::<Vec<_>>(),
            "imports": imports
                .iter()
                .map(|i| json!({"module": i.module, "name": i.name, "type": i.ty, "provided": i.provided, "stubbed": i.stubbed}))
                .collect::<Vec<_>>(),
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
        return Ok(0);
    }
    // A program built for WASI 0.3 may export 0.2's `run` too; 0.3's runs.
    let p3 = exports
        .iter()
        .any(|e| e.name.starts_with("wasi:cli/run@0.3."));
    let kind = match (module.is_command(), module.tasks().is_empty()) {
        _ if module.is_sdk_component() && module.is_command() => {
            "a WASI 0.2 command component with SDK tasks (wasm32-wasip2)"
        }
        _ if module.is_sdk_component() => "a component of SDK tasks (wasm32-wasip2)",
        _ if module.is_component() && module.is_command() && p3 => {
            "a WASI 0.3 command component (it exports `wasi:cli/run@0.3`, which is what runs)"
        }
        _ if module.is_component() && module.is_command() => {
            "a WASI 0.2 command component (it exports `wasi:cli/run`)"
        }
        _ if module.is_component() => {
            "a component that is not a WASI command (no `wasi:cli/run`): run a function with --task NAME"
        }
        (true, true) => "a WASI command",
        (true, false) => "a WASI command with SDK tasks",
        (false, false) => "a module of SDK tasks",
        (false, true) if functions.is_empty() => {
            "a module with neither `_start` nor SDK tasks: nothing to run"
        }
        (false, true) if exports.iter().any(|e| e.name == "_initialize") => {
            "a reactor (`_initialize`, no `_start`): call a function with --invoke NAME"
        }
        (false, true) => "a module of functions (no `_start`): call one with --invoke NAME",
    };
    writeln!(out, "{}: {kind}", module.name())?;
    if !module.tasks().is_empty() {
        writeln!(
            out,
            "\ntasks (wasmproc run {} --task NAME --args JSON):",
            module.name()
        )?;
        for task in module.tasks() {
            match module.signature(task) {
                Some(signature) if signature.is_handler() => writeln!(
                    out,
                    "  {signature}   a connection handler: wasmproc serve {} --listen ADDRESS --task {task}",
                    module.name()
                )?,
                Some(signature) => write_signature(&mut out, signature, "--args")?,
                None => writeln!(out, "  {task}")?,
            }
        }
    }
    if !module.initializers().is_empty() {
        writeln!(
            out,
            "\ninitializers (wasmproc run {} --init NAME --init-args JSON --task TASK):",
            module.name()
        )?;
        for init in module.initializers() {
            let signature = module
                .signatures()
                .iter()
                .find(|s| s.kind == "init" && s.name == *init);
            match signature {
                Some(signature) => write_signature(&mut out, signature, "--init-args")?,
                None => writeln!(out, "  {init}")?,
            }
        }
    }
    if !functions.is_empty() {
        writeln!(
            out,
            "\nfunctions (wasmproc run --invoke NAME {} [ARGS...]):",
            module.name()
        )?;
        for function in &functions {
            writeln!(out, "  {:<32} {}", function.name, function.ty)?;
        }
    }
    writeln!(out, "\nexports:")?;
    for export in &exports {
        writeln!(out, "  {:<32} {}", export.name, export.ty)?;
    }
    writeln!(out, "\nimports:")?;
    for import in &imports {
        let provided = match (import.provided, import.stubbed) {
            (true, _) => "",
            (false, true) => "   NOT PROVIDED: stubbed, traps when called (--stub-imports)",
            (false, false) => "   NOT PROVIDED: the module cannot run",
        };
        writeln!(
            out,
            "  {:<40} {}{provided}",
            if import.name.is_empty() {
                // A component's import: a WIT interface.
                import.module.clone()
            } else {
                format!("{}::{}", import.module, import.name)
            },
            import.ty
        )?;
    }
    Ok(0)
}
