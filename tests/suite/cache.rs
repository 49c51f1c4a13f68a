//! The compiled-module cache: a second load maps, a bad entry is rebuilt.

use std::path::Path;

use wasmproc::{CacheStatus, Runtime, Task};
use wasmproc_tests::guests;

fn runtime_in(dir: &Path) -> Runtime {
    Runtime::builder().cache_dir(dir).build().unwrap()
}

fn only_entry(dir: &Path) -> std::path::PathBuf {
    let entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
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
fn stale_entry_with_a_valid_checksum_is_rebuilt() {
    // An entry that passes the checksum but is not an artifact of this
    // engine (as after a wasmtime upgrade that kept the key).
    let dir = tempfile::tempdir().unwrap();
    square_works(&runtime_in(dir.path()));
    let entry = only_entry(dir.path());
    let artifact = b"an artifact of some other engine".to_vec();
    let mut bytes = b"WPCACHE2".to_vec();
    bytes.extend_from_slice(blake3_of(&std::fs::read(guests::SDK_TASKS).unwrap()).as_slice());
    bytes.extend_from_slice(blake3_of(&artifact).as_slice());
    bytes.extend_from_slice(&artifact);
    std::fs::write(&entry, bytes).unwrap();
    assert_eq!(square_works(&runtime_in(dir.path())), CacheStatus::Rebuilt);
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
        std::fs::read_dir(dir.path()).unwrap().count(),
        2,
        "plain and fuel artifacts differ"
    );
}

/// BLAKE3 through the wasmproc-independent reference: the `blake3` CLI is
/// not assumed, so the suite hashes with the crate the host uses.
fn blake3_of(bytes: &[u8]) -> [u8; 32] {
    *blake3::hash(bytes).as_bytes()
}
