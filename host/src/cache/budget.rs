//! The cache's size bound: after an entry is written, the least recently
//! used entries are removed until the cache fits its budget
//! (`WASMPROC_CACHE_MAX`, by default [`DEFAULT_CACHE_MAX`]). A snapshot
//! per distinct initializer argument could otherwise fill the disk.
//!
//! When an entry was last used is the newest modification time of the
//! entry and of its `.checked` record beside it: a hit touches the record,
//! never the entry (touching the entry would change its change time, and
//! so void the record, which would then cost a full check per load).

use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The default budget: room for many compiled modules and a few large
/// snapshots.
pub const DEFAULT_CACHE_MAX: u64 = 4 << 30;

/// The environment variable that sets the budget (`2GiB`, `500MB`, bytes).
pub const CACHE_MAX_ENV: &str = "WASMPROC_CACHE_MAX";

/// What a cache entry holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EntryKind {
    /// A compiled module or component.
    Compiled,
    /// An initializer's snapshot, compiled.
    Snapshot,
    /// A module as wasmtime-wizer instruments it to run initializers in,
    /// compiled: one per module, whatever the initializer.
    Instrumented,
    /// The functions compiled for a module (by its own compile, then by its
    /// latest snapshot's), which its next snapshot reuses: one per module
    /// and engine.
    Functions,
}

impl EntryKind {
    /// Every kind.
    const ALL: [EntryKind; 4] = [
        EntryKind::Compiled,
        EntryKind::Snapshot,
        EntryKind::Instrumented,
        EntryKind::Functions,
    ];

    /// The kind's name in listings: `compiled`, `snapshot`, `instrumented`,
    /// `functions`.
    pub fn name(self) -> &'static str {
        match self {
            EntryKind::Compiled => "compiled",
            EntryKind::Snapshot => "snapshot",
            EntryKind::Instrumented => "instrumented",
            EntryKind::Functions => "functions",
        }
    }

    /// The extension of its entries' files.
    pub(crate) const fn extension(self) -> &'static str {
        match self {
            EntryKind::Compiled => "cwasm",
            EntryKind::Snapshot => "snapshot",
            EntryKind::Instrumented => "instrumented",
            EntryKind::Functions => "functions",
        }
    }
}

/// One entry of the module cache.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CacheEntry {
    /// The entry's file.
    pub path: PathBuf,
    /// Its size on disk, with its check record.
    pub bytes: u64,
    /// When it was last loaded or written.
    pub last_used: SystemTime,
    /// What it holds.
    pub kind: EntryKind,
}

/// The `.checked` record beside `entry`.
pub(super) fn record_path(entry: &Path) -> PathBuf {
    let mut name = entry.as_os_str().to_owned();
    name.push(".checked");
    PathBuf::from(name)
}

/// The entries in `dir`, least recently used first; none when the
/// directory does not exist.
pub(crate) fn entries(dir: &Path) -> std::io::Result<Vec<CacheEntry>> {
    let listing = match std::fs::read_dir(dir) {
        Ok(listing) => listing,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(error),
    };
    let mut entries = Vec::new();
    for item in listing {
        let path = item?.path();
        let Some(extension) = path.extension().and_then(|e| e.to_str()) else {
            continue;
        };
        let Some(kind) = EntryKind::ALL
            .into_iter()
            .find(|kind| kind.extension() == extension)
        else {
            continue;
        };
        // Gone meanwhile (another process evicted it): not listed.
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        let record = std::fs::metadata(record_path(&path)).ok();
        let modified = |meta: &std::fs::Metadata| meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        let last_used = record.as_ref().map_or(modified(&meta), |record| {
            modified(&meta).max(modified(record))
        });
        entries.push(CacheEntry {
            bytes: meta.len() + record.map_or(0, |record| record.len()),
            last_used,
            kind,
            path,
        });
    }
    entries.sort_by_key(|entry| entry.last_used);
    Ok(entries)
}

/// Removes `entry` and its record; whether the entry was there to remove.
pub(crate) fn remove(entry: &Path) -> bool {
    let removed = std::fs::remove_file(entry).is_ok();
    let _ = std::fs::remove_file(record_path(entry));
    removed
}

/// Removes the least recently used entries of `dir`, never those in `keep`
/// (the entry just written; after a compile's functions, its code), until
/// the rest fit in `max` bytes. Best effort:
/// an entry another process removed first, or that cannot be removed, is
/// passed over.
///
/// Every kind by the same rule: the entries that only speed up snapshots
/// (a module's instrumented copy and its functions) are used by each new
/// snapshot of their module, so while snapshots are being made they are
/// the most recently used. Evicted before the others, they went at each
/// snapshot's write in a full cache, and the next snapshot compiled the
/// Python-function runner twice again (2 s -> 9 s).
pub(super) fn evict(dir: &Path, max: u64, keep: &[&Path]) {
    let Ok(entries) = entries(dir) else {
        return;
    };
    let mut total: u64 = entries.iter().map(|entry| entry.bytes).sum();
    for entry in entries {
        if total <= max {
            break;
        }
        if keep.contains(&entry.path.as_path()) {
            continue;
        }
        if remove(&entry.path) {
            tracing::info!(
                target: "wasmproc::cache",
                "cache over its budget of {}: removed {} ({}), least recently used",
                crate::limits::human(max),
                entry.path.display(),
                crate::limits::human(entry.bytes)
            );
            total = total.saturating_sub(entry.bytes);
        }
    }
}

/// Marks the entry at `entry` used now: its record's time, or the entry's
/// own where it has no record. Best effort.
pub(super) fn mark_used(entry: &Path) {
    let record = record_path(entry);
    let target = if record.exists() {
        record
    } else {
        entry.to_owned()
    };
    if let Ok(file) = super::regular::open(&target, true) {
        let _ = file.set_modified(SystemTime::now());
    }
}

/// The budget `text` names (`2GiB`, `500MB`, a byte count).
pub(crate) fn parse_budget(text: &str) -> Result<u64, String> {
    text.trim()
        .parse::<bytesize::ByteSize>()
        .map(|size| size.as_u64())
        .map_err(|error| {
            format!("{CACHE_MAX_ENV}={text:?} is not a size ({error}): give one like 4GiB or 500MB")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry_file(dir: &Path, name: &str, bytes: usize, age_secs: u64) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, vec![0u8; bytes]).unwrap();
        let when = SystemTime::now() - std::time::Duration::from_secs(age_secs);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(when)
            .unwrap();
        path
    }

    #[test]
    fn the_least_recently_used_go_first_and_the_new_entry_stays() {
        let dir = tempfile::tempdir().unwrap();
        let oldest = entry_file(dir.path(), "a.cwasm", 100, 300);
        let older = entry_file(dir.path(), "b.snapshot", 100, 200);
        let recent = entry_file(dir.path(), "c.cwasm", 100, 100);
        let new = entry_file(dir.path(), "d.cwasm", 100, 400);
        let other = entry_file(dir.path(), "notes.txt", 1000, 500);
        // A hit on the oldest: its record is touched, not the entry.
        std::fs::write(record_path(&oldest), b"record").unwrap();
        mark_used(&oldest);
        evict(dir.path(), 250, &[&new]);
        assert!(oldest.exists(), "used just now");
        assert!(
            !older.exists() && !recent.exists(),
            "the least recently used"
        );
        assert!(new.exists(), "the entry just written is kept");
        assert!(other.exists(), "not an entry");
        let left: Vec<PathBuf> = entries(dir.path())
            .unwrap()
            .into_iter()
            .map(|e| e.path)
            .collect();
        assert_eq!(left, [new, oldest]);
    }

    #[test]
    fn what_speeds_up_snapshots_stays_while_it_is_used() {
        let dir = tempfile::tempdir().unwrap();
        let old_snapshot = entry_file(dir.path(), "a.snapshot", 100, 300);
        let module = entry_file(dir.path(), "b.cwasm", 100, 200);
        let instrumented = entry_file(dir.path(), "c.instrumented", 100, 20);
        let functions = entry_file(dir.path(), "d.functions", 100, 10);
        let snapshot = entry_file(dir.path(), "e.snapshot", 100, 0);
        evict(dir.path(), 300, &[&snapshot]);
        assert!(!old_snapshot.exists() && !module.exists());
        assert!(instrumented.exists() && functions.exists() && snapshot.exists());
    }

    #[test]
    fn budgets_are_read_as_sizes() {
        assert_eq!(parse_budget("4GiB"), Ok(4 << 30));
        assert_eq!(parse_budget("1024"), Ok(1024));
        assert!(
            parse_budget("lots")
                .unwrap_err()
                .contains("WASMPROC_CACHE_MAX")
        );
    }
}
