//! Initializers as snapshots: state built once, every task starting from
//! it in a fresh instance, in both isolations; every failure of an
//! initializer a status, with nothing cached; the snapshot cache.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use wasmproc::{
    CacheStatus, DirGrant, Error, ErrorKind, ExitStatus, Initializer, Isolation, Limits, Module,
    Outcome, Pool, ProcessOptions, Runtime, Task, TrapKind,
};
use wasmproc_tests::{guests, init_tasks};

use crate::pool_host;

#[derive(serde::Serialize)]
struct TableSpec {
    len: usize,
    seed: u64,
}

/// A seed no other test uses, so that each test makes its own snapshot in
/// the suite's shared cache.
fn fresh_seed() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let base = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    base.wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed) << 40) % 1_000_000_007
}

fn table(len: usize, seed: u64) -> Initializer {
    Initializer::call("table", &TableSpec { len, seed }).unwrap()
}

fn call(name: &str, arg: impl serde::Serialize) -> Task {
    Task::call(name, &arg).unwrap()
}

/// Submits `task` and waits for its outcome.
fn submitted(pool: &Pool, task: Task) -> Outcome {
    pool.submit(task).unwrap().wait().clone()
}

fn isolations() -> [(&'static str, Isolation); 2] {
    [
        ("threads", Isolation::Thread),
        (
            "processes",
            Isolation::Process(ProcessOptions::default().executable(pool_host())),
        ),
    ]
}

/// A runtime of its own: a private cache in `dir` (or none).
fn runtime_in(dir: Option<&Path>) -> Runtime {
    match dir {
        Some(dir) => Runtime::builder()
            .cache_dir(dir)
            .cache_key_file(dir.with_extension("key"))
            .build()
            .unwrap(),
        None => Runtime::builder().no_cache().build().unwrap(),
    }
}

/// The path of the (first) entry in `cache` whose file ends in `.{kind}`.
fn entry_of_kind(cache: &Path, kind: &str) -> std::path::PathBuf {
    std::fs::read_dir(cache)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .find(|path| path.extension().is_some_and(|e| e == kind))
        .unwrap_or_else(|| panic!("a {kind} entry in {}", cache.display()))
}

fn snapshots_in(dir: &Path) -> usize {
    wasmproc_tests::cache_entries(dir, "snapshot")
}

#[test]
fn tasks_see_the_state_the_initializer_left() {
    let seed = fresh_seed();
    let snapshot = init_tasks().initialize_with(&table(1000, seed)).unwrap();
    let outcome = snapshot.run(&call("lookup", 10));
    assert!(outcome.success(), "{outcome:?}");
    assert_eq!(outcome.decode::<Option<u64>>().unwrap(), Some(100 + seed));
    let state = snapshot.run(&call("state", ()));
    assert_eq!(state.decode::<(u64, u64)>().unwrap(), (seed, 1));
    // The module it was made from is untouched.
    let plain = init_tasks().run(&call("table_len", ()));
    assert_eq!(plain.decode::<usize>().unwrap(), 0);

    assert_eq!(
        snapshot.initialized_by().map(Initializer::name),
        Some("table")
    );
    assert_eq!(snapshot.tasks(), init_tasks().tasks());
    // The initializer that ran is gone from the snapshot; the others stay.
    assert!(!snapshot.initializers().iter().any(|i| i == "table"));
    assert!(snapshot.initializers().iter().any(|i| i == "seed_only"));
}

#[test]
fn each_task_starts_from_the_snapshot_not_from_the_last_task() {
    let seed = fresh_seed();
    let snapshot = init_tasks().initialize_with(&table(100, seed)).unwrap();
    for (label, isolation) in isolations() {
        let pool = Pool::builder(&snapshot)
            .workers(1)
            .isolation(isolation)
            .build()
            .unwrap();
        for _ in 0..3 {
            // Each scribble finds the snapshot's value, not the zero the
            // previous one wrote; each task is its instance's first call.
            let old = submitted(&pool, call("scribble", 5));
            assert_eq!(
                old.decode::<Option<u64>>().unwrap(),
                Some(25 + seed),
                "{label}"
            );
            let calls = submitted(&pool, call("calls", ()));
            assert_eq!(calls.decode::<u64>().unwrap(), 1, "{label}");
        }
        let state = submitted(&pool, call("state", ()));
        assert_eq!(state.decode::<(u64, u64)>().unwrap(), (seed, 1), "{label}");
    }
}

#[test]
fn a_pool_initializer_runs_once_for_every_worker_and_isolation() {
    let seed = fresh_seed();
    for (label, isolation) in isolations() {
        let pool = Pool::builder(init_tasks())
            .workers(2)
            .isolation(isolation)
            .initializer("table", &TableSpec { len: 64, seed })
            .build()
            .unwrap();
        let found: Vec<Option<u64>> = pool
            .map("lookup", 0..64usize)
            .map(|outcome| outcome.decode().unwrap())
            .collect();
        let expected: Vec<Option<u64>> = (0..64u64).map(|i| Some(i * i + seed)).collect();
        assert_eq!(found, expected, "{label}");
    }
}

#[test]
fn worker_processes_run_a_snapshot_without_a_cache_too() {
    let runtime = runtime_in(None);
    let module = runtime.load(guests::INIT_TASKS).unwrap();
    let snapshot = module.initialize_with(&table(10, 3)).unwrap();
    assert_eq!(snapshot.cache_status(), CacheStatus::Uncached);
    let pool = Pool::builder(&snapshot)
        .workers(1)
        .isolation(isolations()[1].1.clone())
        .build()
        .unwrap();
    let outcome = submitted(&pool, call("lookup", 9));
    assert_eq!(outcome.decode::<Option<u64>>().unwrap(), Some(84));
}

#[test]
fn the_cache_keys_snapshots_by_initializer_and_argument() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let module = runtime_in(Some(&cache)).load(guests::INIT_TASKS).unwrap();

    let first = module.initialize_with(&table(10, 1)).unwrap();
    assert_eq!(first.cache_status(), CacheStatus::Compiled);
    assert_eq!(snapshots_in(&cache), 1);
    // The same initializer and argument, in a new runtime (a new program):
    // found in the cache, the same state.
    let again = runtime_in(Some(&cache))
        .load(guests::INIT_TASKS)
        .unwrap()
        .initialize_with(&table(10, 1))
        .unwrap();
    assert_eq!(again.cache_status(), CacheStatus::Hit);
    assert_eq!(
        again
            .run(&call("lookup", 3))
            .decode::<Option<u64>>()
            .unwrap(),
        Some(10)
    );
    // Another argument, another initializer: other snapshots.
    let other = module.initialize_with(&table(10, 2)).unwrap();
    assert_eq!(other.cache_status(), CacheStatus::Compiled);
    assert_eq!(
        other
            .run(&call("lookup", 3))
            .decode::<Option<u64>>()
            .unwrap(),
        Some(11)
    );
    let seeded = module.initialize("seed_only", &1u64).unwrap();
    assert_eq!(seeded.cache_status(), CacheStatus::Compiled);
    assert_eq!(
        seeded
            .run(&call("table_len", ()))
            .decode::<usize>()
            .unwrap(),
        0
    );
    assert_eq!(snapshots_in(&cache), 3);
    // One instrumented copy (the module wizer made ready to snapshot,
    // compiled) served every initializer and argument, and one entry holds
    // the functions compiled for the module's snapshots, which later ones
    // reuse.
    assert_eq!(wasmproc_tests::cache_entries(&cache, "instrumented"), 1);
    assert_eq!(wasmproc_tests::cache_entries(&cache, "functions"), 1);
}

#[test]
fn a_damaged_functions_entry_is_compiled_again() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let module = runtime_in(Some(&cache)).load(guests::INIT_TASKS).unwrap();
    module.initialize_with(&table(10, 1)).unwrap();
    let entry = entry_of_kind(&cache, "functions");
    // Each function's key given the next one's code, the tag left as it
    // was: were the entry used unchecked, the snapshot would run the wrong
    // code for every function.
    let bytes = swap_functions(&std::fs::read(&entry).unwrap());
    std::fs::write(&entry, &bytes).unwrap();

    let other = runtime_in(Some(&cache))
        .load(guests::INIT_TASKS)
        .unwrap()
        .initialize_with(&table(10, 5))
        .unwrap();
    assert_eq!(other.cache_status(), CacheStatus::Compiled);
    let found = other.run(&call("lookup", 3));
    assert_eq!(found.decode::<Option<u64>>().unwrap(), Some(14));
    // Written again, whole.
    assert_ne!(std::fs::read(&entry).unwrap(), bytes);
}

/// A functions entry (length-prefixed keys and values, then a 72-byte
/// trailer: identity, tag, magic) with each key given the next key's value.
fn swap_functions(entry: &[u8]) -> Vec<u8> {
    fn take(body: &mut &[u8]) -> Vec<u8> {
        let (len, rest) = body.split_first_chunk::<4>().unwrap();
        let (part, rest) = rest.split_at(u32::from_le_bytes(*len) as usize);
        *body = rest;
        part.to_vec()
    }
    let (mut body, trailer) = entry.split_at(entry.len() - 72);
    let mut pairs = Vec::new();
    while !body.is_empty() {
        pairs.push((take(&mut body), take(&mut body)));
    }
    assert!(pairs.len() > 1, "a module of more than one function");
    let mut swapped = Vec::new();
    for (i, (key, _)) in pairs.iter().enumerate() {
        let (_, value) = &pairs[(i + 1) % pairs.len()];
        for part in [key, value] {
            swapped.extend_from_slice(&(part.len() as u32).to_le_bytes());
            swapped.extend_from_slice(part);
        }
    }
    swapped.extend_from_slice(trailer);
    swapped
}

#[test]
fn a_forged_snapshot_is_not_used() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let module = runtime_in(Some(&cache)).load(guests::INIT_TASKS).unwrap();
    module.initialize_with(&table(10, 5)).unwrap();
    let entry = entry_of_kind(&cache, "snapshot");
    // Whoever can write the cache but lacks the key changes a byte.
    let mut bytes = std::fs::read(&entry).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&entry, bytes).unwrap();
    let again = module.initialize_with(&table(10, 5)).unwrap();
    assert_eq!(again.cache_status(), CacheStatus::Rebuilt);
    assert_eq!(
        again
            .run(&call("lookup", 3))
            .decode::<Option<u64>>()
            .unwrap(),
        Some(14)
    );
}

/// The initializer's failure as an error, and that nothing was cached.
fn failed(init: Initializer) -> Error {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let module = runtime_in(Some(&cache)).load(guests::INIT_TASKS).unwrap();
    let error = module
        .initialize_with(&init)
        .expect_err("the initializer fails");
    assert_eq!(snapshots_in(&cache), 0, "nothing is cached: {error}");
    let name = init.name().to_owned();
    assert!(error.message().contains(&format!("`{name}`")), "{error}");
    error
}

#[test]
fn every_failure_of_an_initializer_is_a_status() {
    let timeout = Limits::default().timeout(Duration::from_millis(300));
    let cases: Vec<(Initializer, ExitStatus, &str)> = vec![
        (
            Initializer::call("refuse", &7u8).unwrap(),
            ExitStatus::Exited(7),
            "the initializer refuses",
        ),
        (
            Initializer::call("panics", &()).unwrap(),
            ExitStatus::Exited(101),
            "the initializer panics",
        ),
        (
            Initializer::call("traps", &()).unwrap(),
            ExitStatus::Trapped(TrapKind::MemoryOutOfBounds),
            "out of bounds",
        ),
        (
            Initializer::call("spins", &()).unwrap().limits(timeout),
            ExitStatus::TimedOut,
            "300ms",
        ),
        (
            Initializer::call("spins", &())
                .unwrap()
                .limits(Limits::default().fuel(1_000_000)),
            ExitStatus::FuelExhausted,
            "fuel",
        ),
        (
            Initializer::call("hogs", &64usize)
                .unwrap()
                .limits(Limits::default().max_memory(16 << 20)),
            ExitStatus::MemoryExceeded,
            "memory",
        ),
        (
            Initializer::call("exits", &4).unwrap(),
            ExitStatus::Exited(4),
            "",
        ),
    ];
    for (init, status, words) in cases {
        let name = init.name().to_owned();
        let error = failed(init);
        assert_eq!(error.exit_status(), status, "{name}: {error}");
        assert_eq!(error.kind(), &ErrorKind::TaskFailed(status), "{name}");
        assert!(error.message().contains(words), "{name}: {error}");
    }
}

#[test]
fn a_bad_argument_is_a_bad_invocation() {
    for init in [
        Initializer::call_json("table", &b"{not json"[..]),
        Initializer::call("table", &"a string, not a spec").unwrap(),
    ] {
        let error = failed(init);
        assert_eq!(error.kind(), &ErrorKind::BadInvocation, "{error}");
        assert_eq!(error.exit_status(), ExitStatus::BadInvocation);
    }
}

#[test]
fn an_unknown_initializer_is_named_with_the_ones_there_are() {
    let error = init_tasks().initialize("nope", &()).unwrap_err();
    assert_eq!(error.kind(), &ErrorKind::CannotRun);
    assert!(error.message().contains("no initializer `nope`"), "{error}");
    assert!(error.message().contains("table"), "{error}");
    // An initializer is not a task, and the message says how to run it.
    let outcome = init_tasks().run(&call("table", ()));
    assert_eq!(outcome.status, ExitStatus::CannotRun);
    assert!(outcome.message.unwrap().contains("--init table"));
    // A module without initializers says so.
    let plain = wasmproc_tests::sdk_tasks()
        .initialize("setup", &())
        .unwrap_err();
    assert!(plain.message().contains("exports none"), "{plain}");
}

#[test]
fn a_file_left_open_is_refused_and_one_closed_is_fine() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("words.txt"), "alpha beta gamma").unwrap();
    let grant = DirGrant::new(dir.path(), "/data");

    let keeps = Initializer::call("keep_open", &"/data/words.txt")
        .unwrap()
        .dir(grant.clone());
    let error = failed(keeps);
    assert_eq!(error.kind(), &ErrorKind::CannotRun, "{error}");
    assert!(error.message().contains("file still open"), "{error}");

    let reads = Initializer::call("words", &"/data/words.txt")
        .unwrap()
        .dir(grant);
    let snapshot = init_tasks().initialize_with(&reads).unwrap();
    let words = snapshot.run(&call("word_list", ()));
    assert_eq!(
        words.decode::<Vec<String>>().unwrap(),
        ["alpha", "beta", "gamma"]
    );
    // A task reaches its own grants, not the initializer's.
    let other = tempfile::tempdir().unwrap();
    std::fs::write(other.path().join("note.txt"), "mine").unwrap();
    let own = Task::call("read", &"/mine/note.txt")
        .unwrap()
        .dir(DirGrant::new(other.path(), "/mine"));
    assert_eq!(snapshot.run(&own).decode::<String>().unwrap(), "mine");
    let theirs = snapshot.run(&call("read", "/data/words.txt"));
    assert_eq!(theirs.status, ExitStatus::Exited(1), "{theirs:?}");
}

#[test]
fn a_failing_pool_initializer_fails_the_build_with_its_status() {
    for (label, isolation) in isolations() {
        let error = Pool::builder(init_tasks())
            .isolation(isolation)
            .initializer("refuse", &9u8)
            .build()
            .expect_err("the build fails");
        assert_eq!(error.exit_status(), ExitStatus::Exited(9), "{label}");
    }
    // The pool's limits bind its initializer.
    let error = Pool::builder(init_tasks())
        .limits(Limits::default().timeout(Duration::from_millis(200)))
        .initializer("spins", &())
        .build()
        .expect_err("the build fails");
    assert_eq!(error.exit_status(), ExitStatus::TimedOut);
}

#[test]
fn a_snapshot_can_be_initialized_again() {
    let seed = fresh_seed();
    let table = init_tasks().initialize_with(&table(8, seed)).unwrap();
    let both: Module = table.initialize("seed_only", &(seed + 1)).unwrap();
    let state = both.run(&call("state", ()));
    assert_eq!(state.decode::<(u64, u64)>().unwrap(), (seed + 1, 2));
    let found = both.run(&call("lookup", 2));
    assert_eq!(found.decode::<Option<u64>>().unwrap(), Some(4 + seed));
    assert!(both.initializers().is_empty() || !both.initializers().iter().any(|i| i == "table"));
}

/// A snapshot found in the cache holds no wasm; fuel metering (another
/// engine) and another initializer need it, and get it.
#[test]
fn a_cached_snapshot_runs_with_fuel_and_takes_another_initializer() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let made = runtime_in(Some(&cache))
        .load(guests::INIT_TASKS)
        .unwrap()
        .initialize_with(&table(16, 9))
        .unwrap();
    assert_eq!(made.cache_status(), CacheStatus::Compiled);
    let found = runtime_in(Some(&cache))
        .load(guests::INIT_TASKS)
        .unwrap()
        .initialize_with(&table(16, 9))
        .unwrap();
    assert_eq!(found.cache_status(), CacheStatus::Hit);
    let metered = call("lookup", 4).limits(Limits::default().fuel(10_000_000));
    let outcome = found.run(&metered);
    assert_eq!(
        outcome.decode::<Option<u64>>().unwrap(),
        Some(25),
        "{outcome:?}"
    );
    assert!(outcome.fuel_used.is_some_and(|fuel| fuel > 0));
    let both = found.initialize("seed_only", &77u64).unwrap();
    let state = both.run(&call("state", ()));
    assert_eq!(state.decode::<(u64, u64)>().unwrap(), (77, 2));
}
