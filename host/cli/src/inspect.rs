//! `wasmproc compile` and `wasmproc inspect`: what a module is, without
//! running it.

use std::io::Write;

use serde_json::json;
use wasmproc::CacheStatus;

use crate::args::{InspectArgs, ModuleArgs};

pub(crate) fn compile(args: ModuleArgs) -> anyhow::Result<u8> {
    let runtime = args.load.runtime(1).build()?;
    let module = runtime.load(&args.module)?;
    let place = runtime
        .cache_dir()
        .map(|dir| dir.display().to_string())
        .unwrap_or_default();
    let what = match module.cache_status() {
        CacheStatus::Hit => format!("already compiled, in the cache at {place}"),
        CacheStatus::Compiled => format!("compiled into the cache at {place}"),
        CacheStatus::Rebuilt => {
            format!("recompiled: the cache entry at {place} was stale or corrupt")
        }
        _ => match runtime.cache_off_reason() {
            Some(why) => {
                format!("compiled, but the cache is off ({why}): later runs compile again")
            }
            None => {
                "compiled, but the cache is off or not writable: later runs compile again".into()
            }
        },
    };
    writeln!(std::io::stdout(), "{}: {what}", module.name())?;
    Ok(0)
}

pub(crate) fn inspect(args: InspectArgs) -> anyhow::Result<u8> {
    let runtime = args.load.runtime(1).build()?;
    let module = runtime.load(&args.module)?;
    // Written with `?`: a closed stdout (`| head`) ends the command quietly.
    let mut out = std::io::stdout().lock();
    let exports = module.exports();
    let imports = module.imports();
    if args.json {
        let value = json!({
            "name": module.name(),
            "command": module.is_command(),
            "tasks": module.tasks(),
            "exports": exports.iter().map(|e| json!({"name": e.name, "type": e.ty})).collect::<Vec<_>>(),
            "imports": imports
                .iter()
                .map(|i| json!({"module": i.module, "name": i.name, "type": i.ty, "provided": i.provided}))
                .collect::<Vec<_>>(),
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
        return Ok(0);
    }
    let kind = match (module.is_command(), module.tasks().is_empty()) {
        (true, true) => "a WASI command",
        (true, false) => "a WASI command with SDK tasks",
        (false, false) => "a module of SDK tasks",
        (false, true) => "a module with neither `_start` nor SDK tasks: nothing to run",
    };
    writeln!(out, "{}: {kind}", module.name())?;
    if !module.tasks().is_empty() {
        writeln!(
            out,
            "\ntasks (wasmproc run {} --task NAME --args JSON):",
            module.name()
        )?;
        for task in module.tasks() {
            writeln!(out, "  {task}")?;
        }
    }
    writeln!(out, "\nexports:")?;
    for export in &exports {
        writeln!(out, "  {:<32} {}", export.name, export.ty)?;
    }
    writeln!(out, "\nimports:")?;
    for import in &imports {
        let provided = if import.provided {
            ""
        } else {
            "   NOT PROVIDED: the module cannot run"
        };
        writeln!(
            out,
            "  {:<40} {}{provided}",
            format!("{}::{}", import.module, import.name),
            import.ty
        )?;
    }
    Ok(0)
}
