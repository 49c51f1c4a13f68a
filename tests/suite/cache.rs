//! The compiled-module cache: a second load reads the compiled code, a bad
//! or forged entry is rebuilt, a key others may read is not used.

use std::path::{Path, PathBuf};

use wasmproc::{
    CacheStatus, CancelToken, Executor, Isolation, Pool, ProcessOptions, Runtime, Task,
};
use wasmproc_tests::guests;

use crate::pool_host;

/// A runtime caching in `dir`, its entries signed with the key in
/// `dir`'s sibling `<dir>.key` (outside the cache, as the default is).
fn runtime_in(dir: &Path) -> Runtime {
    Runtime::builder()
        .cache_dir(dir)
        .cache_key_file(key_file_of(dir))
        .build()
        .unwrap()
}

fn key_file_of(dir: &Path) -> PathBuf {
    dir.with_extension("key")
}

/// An entry in the cache's format, signed with `key`.
fn signed_entry(key: &[u8], wasm: &[u8], artifact: &[u8]) -> Vec<u8> {
    let wasm_hash = blake3_of(wasm);
    let key: [u8; 32] = key.try_into().unwrap();
    let mut tag = blake3::Hasher::new_keyed(&key);
    tag.update(&wasm_hash);
    tag.update(artifact);
    // The artifact first (wasmtime maps the file), then the trailer.
    let mut entry = artifact.to_vec();
    entry.extend_from_slice(&wasm_hash);
    entry.extend_from_slice(tag.finalize().as_bytes());
    entry.extend_from_slice(b"WPCACHE4");
    entry
}

/// The cache's one compiled module (beside it: the record that it was
/// checked, and the functions its compile made, which its snapshots reuse).
fn only_entry(dir: &Path) -> std::path::PathBuf {
    let entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        // Files only: `files/` holds the records of module files.
        .filter(|path| {
            path.is_file()
                && path
                    .extension()
                    .is_none_or(|e| e != "checked" && e != "functions")
        })
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    entries.into_iter().next().unwrap()
}

fn square_works(runtime: &Runtime) -> CacheStatus {
    let module = runtime.load(guests::SDK_TASKS).unwrap();
    assert_eq!(
        module
            .run(&Task::call("square", &5u64).unwrap())
            .decode::<u64>()
            .unwrap(),
        25
    );
    module.cache_status()
}

#[test]
fn second_load_is_a_cache_hit_also_in_a_new_runtime() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(square_works(&runtime_in(dir.path())), CacheStatus::Compiled);
    assert_eq!(square_works(&runtime_in(dir.path())), CacheStatus::Hit);
    assert_eq!(square_works(&runtime_in(dir.path())), CacheStatus::Hit);
    assert!(
        only_entry(dir.path())
            .extension()
            .is_some_and(|e| e == "cwasm")
    );
}

#[test]
fn corrupt_entry_is_detected_and_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    square_works(&runtime_in(dir.path()));
    let entry = only_entry(dir.path());
    let mut bytes = std::fs::read(&entry).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x5a;
    std::fs::write(&entry, &bytes).unwrap();
    assert_eq!(square_works(&runtime_in(dir.path())), CacheStatus::Rebuilt);
    assert_eq!(
        square_works(&runtime_in(dir.path())),
        CacheStatus::Hit,
        "the rebuilt entry is good"
    );
}

/// A load of an entry that was checked and has not changed skips hashing
/// it; a change made in place, its modification time put back, is still
/// seen (the change time moves) and the entry checked in full.
#[test]
fn an_entry_changed_in_place_is_checked_again() {
    let dir = tempfile::tempdir().unwrap();
    square_works(&runtime_in(dir.path()));
    assert_eq!(square_works(&runtime_in(dir.path())), CacheStatus::Hit);
    let entry = only_entry(dir.path());
    let modified = std::fs::metadata(&entry).unwrap().modified().unwrap();
    let mut bytes = std::fs::read(&entry).unwrap();
    bytes[100] ^= 0x01;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&entry)
        .unwrap();
    std::io::Write::write_all(&mut &file, &bytes).unwrap();
    file.set_modified(modified).unwrap();
    drop(file);
    assert_eq!(square_works(&runtime_in(dir.path())), CacheStatus::Rebuilt);
}

#[test]
fn truncated_entry_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    square_works(&runtime_in(dir.path()));
    let entry = only_entry(dir.path());
    let bytes = std::fs::read(&entry).unwrap();
    std::fs::write(&entry, &bytes[..bytes.len() / 3]).unwrap();
    assert_eq!(square_works(&runtime_in(dir.path())), CacheStatus::Rebuilt);
}

#[test]
fn stale_entry_with_a_valid_tag_is_rebuilt() {
    // An entry signed with the right key that is not an artifact of this
    // engine (as after a wasmtime upgrade that kept the entry's name).
    let dir = tempfile::tempdir().unwrap();
    square_works(&runtime_in(dir.path()));
    let entry = only_entry(dir.path());
    let key = std::fs::read(key_file_of(dir.path())).unwrap();
    let wasm = std::fs::read(guests::SDK_TASKS).unwrap();
    let stale = signed_entry(&key, &wasm, b"an artifact of some other engine");
    std::fs::write(&entry, stale).unwrap();
    assert_eq!(square_works(&runtime_in(dir.path())), CacheStatus::Rebuilt);
}

/// Whoever can write the cache directory but lacks the key cannot plant
/// code: an entry with `sdk_tasks`'s name and header but another module's
/// compiled code, signed with any other key, is recompiled, not run.
#[test]
fn a_forged_entry_is_never_run() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = runtime_in(dir.path());
    square_works(&runtime);
    let target = only_entry(dir.path());
    // Another module's real compiled code, from a cache of the forger's.
    let forger = tempfile::tempdir().unwrap();
    let forger_runtime = runtime_in(forger.path());
    forger_runtime.load(guests::WASI_CMD).unwrap();
    let entry = std::fs::read(only_entry(forger.path())).unwrap();
    let foreign_artifact = &entry[..entry.len() - (32 + 32 + 8)];
    let forger_key = std::fs::read(key_file_of(forger.path())).unwrap();
    let wasm = std::fs::read(guests::SDK_TASKS).unwrap();
    std::fs::write(&target, signed_entry(&forger_key, &wasm, foreign_artifact)).unwrap();

    assert_eq!(square_works(&runtime_in(dir.path())), CacheStatus::Rebuilt);
}

/// A key file that other users may read would let them sign entries: it is
/// not used, the cache is off, and the runtime says why and how to fix it.
#[cfg(unix)]
#[test]
fn a_key_others_can_read_turns_the_cache_off() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    square_works(&runtime_in(dir.path()));
    let key_file = key_file_of(dir.path());
    let mode = std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "a new key is its owner's alone");
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let runtime = runtime_in(dir.path());
    assert_eq!(runtime.cache_dir(), None);
    let reason = runtime.cache_off_reason().unwrap();
    assert!(reason.contains("chmod 600"), "{reason}");
    assert_eq!(square_works(&runtime), CacheStatus::Uncached);
}

/// A key file that belongs to another user is not used either (root must
/// not trust a key another user can write). Changing a file's owner takes
/// root; elsewhere this checks nothing and says so.
#[cfg(unix)]
#[test]
fn another_users_key_turns_the_cache_off() {
    let dir = tempfile::tempdir().unwrap();
    square_works(&runtime_in(dir.path()));
    let key_file = key_file_of(dir.path());
    if std::os::unix::fs::chown(&key_file, Some(65534), None).is_err() {
        eprintln!("skipped: changing a file's owner needs root");
        return;
    }
    let runtime = runtime_in(dir.path());
    let reason = runtime.cache_off_reason().unwrap();
    assert!(reason.contains("belongs to user 65534"), "{reason}");
    assert_eq!(square_works(&runtime), CacheStatus::Uncached);
}

/// The cache's directory is its owner's alone.
#[cfg(unix)]
#[test]
fn a_new_cache_directory_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("cache");
    square_works(&runtime_in(&dir));
    let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
}

#[test]
fn cache_can_be_turned_off() {
    let runtime = Runtime::builder().no_cache().build().unwrap();
    assert_eq!(runtime.cache_dir(), None);
    assert_eq!(square_works(&runtime), CacheStatus::Uncached);
}

#[test]
fn the_fuel_engine_has_entries_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = runtime_in(dir.path());
    let module = runtime.load(guests::SDK_TASKS).unwrap();
    let task = Task::call("square", &3u64)
        .unwrap()
        .limits(wasmproc::Limits::default().fuel(1_000_000));
    assert_eq!(module.run(&task).decode::<u64>().unwrap(), 9);
    assert_eq!(
        wasmproc_tests::cache_entries(dir.path(), "cwasm"),
        2,
        "plain and fuel artifacts differ"
    );
}

/// A copy of `guest` in `dir`, last changed more than a second ago (a
/// file changed just before its read is not remembered).
fn settled_copy(guest: &str, dir: &Path) -> PathBuf {
    let path = dir.join("module.wasm");
    std::fs::copy(guest, &path).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    path
}

fn square_in(module: &wasmproc::Module, isolation: Isolation) -> wasmproc::Outcome {
    let pool = Pool::builder(module)
        .workers(1)
        .isolation(isolation)
        .build()
        .unwrap();
    pool.run(Task::call("square", &6u64).unwrap(), &CancelToken::new())
}

fn process() -> Isolation {
    Isolation::Process(ProcessOptions::default().executable(pool_host()))
}

/// A module file loaded before and unchanged is known by the cache's
/// signed record of it: the load reads neither its wasm nor compiles, and
/// its tasks run in both isolations (a worker process loads the file too).
#[test]
fn an_unchanged_module_file_is_known_without_reading_it() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let path = settled_copy(guests::SDK_TASKS, dir.path());
    let first = runtime_in(&cache).load(&path).unwrap();
    assert_eq!(first.cache_status(), CacheStatus::Compiled);
    let records = std::fs::read_dir(cache.join("files")).unwrap().count();
    assert_eq!(records, 1, "the file is remembered");

    let known = runtime_in(&cache).load(&path).unwrap();
    assert_eq!(known.cache_status(), CacheStatus::Hit);
    for isolation in [Isolation::Thread, process()] {
        let outcome = square_in(&known, isolation);
        assert_eq!(outcome.decode::<u64>().unwrap(), 36, "{outcome:?}");
    }
    // Its wasm is read when needed: the SDK's signatures are in it.
    assert!(known.signature("square").is_some());
}

/// A module file changed after its load is another module: the next load
/// hashes it again, and a pool of the module loaded before keeps running
/// that module, in worker processes too (they load it from the cache by
/// its hash, not from the file), never the file's new one.
#[test]
fn a_changed_module_file_is_never_taken_for_the_old_module() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let path = settled_copy(guests::SDK_TASKS, dir.path());
    runtime_in(&cache).load(&path).unwrap();
    let known = runtime_in(&cache).load(&path).unwrap();
    assert_eq!(known.cache_status(), CacheStatus::Hit);

    // Another module written into the same file.
    std::fs::write(&path, std::fs::read(guests::WASI_CMD).unwrap()).unwrap();
    let reloaded = runtime_in(&cache).load(&path).unwrap();
    assert!(reloaded.is_command(), "the new file's module is loaded");
    assert!(reloaded.signature("square").is_none());

    // The module loaded before, in both isolations: still the old one.
    for isolation in [Isolation::Thread, process()] {
        let outcome = square_in(&known, isolation);
        assert_eq!(outcome.decode::<u64>().unwrap(), 36, "{outcome:?}");
    }

    // Removed: workers still start (the compiled code is in the cache).
    std::fs::remove_file(&path).unwrap();
    let outcome = square_in(&known, process());
    assert_eq!(outcome.decode::<u64>().unwrap(), 36, "{outcome:?}");
}

/// A pool whose module's entry was evicted from the cache (its budget)
/// after the module file changed still starts worker processes: the pool
/// writes the compiled code it holds (a core module's or a component's)
/// back to the cache before a worker loads it, and the worker runs the
/// pool's module, not the file's new one.
#[test]
fn a_worker_starts_when_the_entry_was_evicted_and_the_file_changed() {
    for guest in [guests::SDK_TASKS, guests::SDK_TASKS_P2] {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        let path = settled_copy(guest, dir.path());
        runtime_in(&cache).load(&path).unwrap();
        let known = runtime_in(&cache).load(&path).unwrap();
        assert_eq!(known.cache_status(), CacheStatus::Hit, "{guest}");

        replace_and_evict_everything_else(&path, &cache);

        let outcome = square_in(&known, process());
        assert_eq!(outcome.decode::<u64>().unwrap(), 36, "{guest}: {outcome:?}");
    }
}

/// The same for a snapshot: its entry evicted and its base module's file
/// changed, a worker process still starts from the snapshot the pool holds
/// (it would otherwise run the initializer again over the changed file).
#[test]
fn a_worker_starts_from_a_snapshot_whose_entry_was_evicted_and_base_file_changed() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let path = settled_copy(guests::INIT_TASKS, dir.path());
    let init =
        wasmproc::Initializer::call("table", &serde_json::json!({"len": 20, "seed": 7})).unwrap();
    // A first program makes the snapshot (reading the file); a second finds
    // both in the cache and never reads the file.
    runtime_in(&cache)
        .load(&path)
        .unwrap()
        .initialize_with(&init)
        .unwrap();
    let known = runtime_in(&cache).load(&path).unwrap();
    assert_eq!(known.cache_status(), CacheStatus::Hit);
    let snapshot = known.initialize_with(&init).unwrap();
    assert_eq!(snapshot.cache_status(), CacheStatus::Hit);

    replace_and_evict_everything_else(&path, &cache);

    let pool = Pool::builder(&snapshot)
        .workers(1)
        .isolation(process())
        .build()
        .unwrap();
    let outcome = pool.run(Task::call("lookup", &3u64).unwrap(), &CancelToken::new());
    assert_eq!(
        outcome.decode::<Option<u64>>().unwrap(),
        Some(16),
        "{outcome:?}"
    );
}

/// And from a snapshot, core or component, whose entry was evicted: a
/// worker starts from the snapshot the pool holds (written back), never
/// from its initializer run again (which here would record another moment).
#[test]
fn a_worker_starts_from_the_pools_snapshot_never_a_second_run_of_its_initializer() {
    for guest in [guests::INIT_TASKS, guests::INIT_TASKS_P2] {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        let path = settled_copy(guest, dir.path());
        let init = wasmproc::Initializer::call("stamp", &()).unwrap();
        let snapshot = runtime_in(&cache)
            .load(&path)
            .unwrap()
            .initialize_with(&init)
            .unwrap();
        let stamped = || Task::call("stamped_at", &()).unwrap();
        let made_at = snapshot.run(&stamped()).decode::<u64>().unwrap();
        assert_ne!(made_at, 0, "{guest}");
        let known = runtime_in(&cache)
            .load(&path)
            .unwrap()
            .initialize_with(&init)
            .unwrap();
        assert_eq!(known.cache_status(), CacheStatus::Hit, "{guest}");
        replace_and_evict_everything_else(&path, &cache);
        let pool = Pool::builder(&known)
            .workers(1)
            .isolation(process())
            .build()
            .unwrap();
        let outcome = pool.run(stamped(), &CancelToken::new());
        assert_eq!(outcome.decode::<u64>().unwrap(), made_at, "{guest}");
    }
}

/// Writes another module into `path` and loads it under a budget of one
/// byte: its entry evicts every other one in `cache`.
fn replace_and_evict_everything_else(path: &Path, cache: &Path) {
    std::fs::write(path, std::fs::read(guests::WASI_CMD).unwrap()).unwrap();
    let small = Runtime::builder()
        .cache_dir(cache)
        .cache_key_file(key_file_of(cache))
        .cache_max(1)
        .build()
        .unwrap();
    assert!(small.load(path).unwrap().is_command());
    // The module's compiled code stays; the functions its compile made,
    // written after it, go first when the two do not fit.
    let mut kinds: Vec<&str> = small
        .cache_entries()
        .unwrap()
        .iter()
        .map(|entry| entry.kind.name())
        .collect();
    kinds.sort_unstable();
    assert_eq!(kinds, ["compiled"], "every other entry is evicted");
}

/// BLAKE3 through the wasmproc-independent reference: the `blake3` CLI is
/// not assumed, so the suite hashes with the crate the host uses.
fn blake3_of(bytes: &[u8]) -> [u8; 32] {
    *blake3::hash(bytes).as_bytes()
}
