//! `wasmproc cache`: what the module cache holds, and emptying it.

use std::io::Write;
use std::time::SystemTime;

use serde_json::json;

use crate::flags::{CacheAction, CacheArgs};

pub(crate) fn cache(args: CacheArgs) -> anyhow::Result<u8> {
    let runtime = wasmproc::Runtime::new()?;
    let Some(dir) = runtime.cache_dir().map(std::path::Path::to_owned) else {
        let why = runtime
            .cache_off_reason()
            .unwrap_or("no cache directory is set");
        say!("wasmproc cache: the cache is off ({why})");
        return Ok(0);
    };
    match args.action {
        CacheAction::List { json } => {
            let entries = runtime.cache_entries()?;
            let mut out = std::io::stdout().lock();
            let total: u64 = entries.iter().map(|entry| entry.bytes).sum();
            for entry in &entries {
                let ago = SystemTime::now()
                    .duration_since(entry.last_used)
                    .unwrap_or_default();
                let line = if json {
                    json!({
                        "path": entry.path.display().to_string(),
                        "bytes": entry.bytes,
                        "last_used_secs_ago": ago.as_secs(),
                        "kind": entry.kind.name(),
                    })
                    .to_string()
                } else {
                    format!(
                        "{:>10}  {:>12}  {:<12}  {}",
                        bytesize::ByteSize(entry.bytes).display().iec().to_string(),
                        format!("{} ago", humantime::format_duration(whole_seconds(ago))),
                        entry.kind.name(),
                        entry.path.display()
                    )
                };
                // A closed stdout (`| head`) ends the listing quietly.
                if writeln!(out, "{line}").is_err() {
                    return Ok(0);
                }
            }
            if !json {
                say!(
                    "wasmproc cache: {} entr{} in {}, {} of a budget of {}",
                    entries.len(),
                    if entries.len() == 1 { "y" } else { "ies" },
                    dir.display(),
                    bytesize::ByteSize(total).display().iec(),
                    budget()
                );
            }
        }
        CacheAction::Clear => {
            let (count, bytes) = runtime.clear_cache()?;
            say!(
                "wasmproc cache: removed {count} entr{} ({}) from {}",
                if count == 1 { "y" } else { "ies" },
                bytesize::ByteSize(bytes).display().iec(),
                dir.display()
            );
        }
    }
    Ok(0)
}

fn whole_seconds(duration: std::time::Duration) -> std::time::Duration {
    std::time::Duration::from_secs(duration.as_secs())
}

/// The budget in force, as people write it.
fn budget() -> String {
    match std::env::var(wasmproc::CACHE_MAX_ENV) {
        Ok(text) if !text.is_empty() => text,
        _ => bytesize::ByteSize(wasmproc::DEFAULT_CACHE_MAX)
            .display()
            .iec()
            .to_string(),
    }
}
