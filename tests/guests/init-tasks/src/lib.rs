//! Initializers, and tasks that read the state they leave. Each initializer
//! exercises one promise of the snapshot: state seen by tasks, tasks
//! isolated from each other, every failure a status, open files refused.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use wasmproc_guest::{Failure, init, task};

/// The table an initializer builds: `TABLE[i] = i * i + seed`.
static TABLE: Mutex<Vec<u64>> = Mutex::new(Vec::new());

/// The argument the initializer was called with.
static SEED: AtomicU64 = AtomicU64::new(0);

/// How many times any initializer ran in this instance's history.
static INIT_RUNS: AtomicU64 = AtomicU64::new(0);

/// How many tasks ran in this instance: 0 at the start of every task that
/// gets a fresh instance.
static CALLS: AtomicU64 = AtomicU64::new(0);

/// Words read from a granted file during initialization.
static WORDS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// A file kept open past the initializer (which the host must refuse).
static KEPT: Mutex<Option<std::fs::File>> = Mutex::new(None);

#[derive(serde::Deserialize)]
struct TableSpec {
    len: usize,
    seed: u64,
}

/// Builds `len` entries (and so `len * 8` bytes of state).
#[init]
fn table(spec: TableSpec) {
    let table = (0..spec.len as u64).map(|i| i * i + spec.seed).collect();
    *TABLE.lock().unwrap() = table;
    SEED.store(spec.seed, Ordering::Relaxed);
    INIT_RUNS.fetch_add(1, Ordering::Relaxed);
    println!("table of {} built", spec.len);
}

/// Another initializer of the same module: snapshots name the one they ran.
#[init]
fn seed_only(seed: u64) {
    SEED.store(seed, Ordering::Relaxed);
    INIT_RUNS.fetch_add(1, Ordering::Relaxed);
}

/// Reads a word list from a granted directory, closing the file.
#[init]
fn words(path: String) -> Result<(), Failure> {
    let text = std::fs::read_to_string(&path)
        .map_err(|error| Failure::new(1, format!("cannot read {path}: {error}")))?;
    *WORDS.lock().unwrap() = text.split_whitespace().map(str::to_owned).collect();
    INIT_RUNS.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// Leaves a file open: the host must refuse to snapshot.
#[init]
fn keep_open(path: String) -> Result<(), Failure> {
    let file = std::fs::File::open(&path)
        .map_err(|error| Failure::new(1, format!("cannot open {path}: {error}")))?;
    *KEPT.lock().unwrap() = Some(file);
    Ok(())
}

/// Fails with exit code `code`.
#[init]
fn refuse(code: u8) -> Result<(), Failure> {
    Err(Failure::new(code, "the initializer refuses"))
}

#[init]
fn panics() {
    panic!("the initializer panics");
}

#[init]
fn traps() {
    // An out-of-bounds access through a raw pointer: a wasm trap.
    let far = usize::MAX - 16;
    // SAFETY: none; this initializer exists to trap. The address is past
    // the end of every wasm32 memory, so the access traps and never reads.
    let value = unsafe { std::ptr::read_volatile(far as *const u64) };
    std::hint::black_box(value);
}

#[init]
fn spins() {
    let mut x = 0u64;
    loop {
        x = std::hint::black_box(x.wrapping_add(1));
    }
}

/// Allocates `mb` MiB and touches it.
#[init]
fn hogs(mb: usize) {
    let mut all = Vec::new();
    for _ in 0..mb {
        all.push(vec![1u8; 1 << 20]);
    }
    std::hint::black_box(&all);
    std::mem::forget(all);
}

#[init]
fn exits(code: i32) {
    std::process::exit(code);
}

/// When the initializer ran, in nanoseconds since the epoch.
static STAMPED_AT: AtomicU64 = AtomicU64::new(0);

/// Records when it ran: state a second run would not repeat, so a task
/// that sees it knows its instance came from the one snapshot.
#[init]
fn stamp() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos() as u64);
    STAMPED_AT.store(now, Ordering::Relaxed);
}

/// The table's entry `i`, if the table was built.
#[task]
fn lookup(i: usize) -> Option<u64> {
    TABLE.lock().unwrap().get(i).copied()
}

/// The table's length (0 on a module that was not initialized).
#[task]
fn table_len() -> usize {
    TABLE.lock().unwrap().len()
}

/// The seed, and how many initializers ran before this task.
#[task]
fn state() -> (u64, u64) {
    (
        SEED.load(Ordering::Relaxed),
        INIT_RUNS.load(Ordering::Relaxed),
    )
}

/// Overwrites entry `i` (and the seed) and returns what was there: the
/// next task, in its own instance, must still see the snapshot's value.
#[task]
fn scribble(i: usize) -> Option<u64> {
    SEED.store(u64::MAX, Ordering::Relaxed);
    let mut table = TABLE.lock().unwrap();
    let old = table.get(i).copied();
    if let Some(slot) = table.get_mut(i) {
        *slot = 0;
    }
    old
}

/// How many calls this instance served before, this one included.
#[task]
fn calls() -> u64 {
    CALLS.fetch_add(1, Ordering::Relaxed) + 1
}

/// When `stamp` ran (0 if it did not).
#[task]
fn stamped_at() -> u64 {
    STAMPED_AT.load(Ordering::Relaxed)
}

/// The words the initializer read, in order.
#[task]
fn word_list() -> Vec<String> {
    WORDS.lock().unwrap().clone()
}

/// Reads a file from the task's own grants: works after a snapshot whose
/// initializer had other grants (or none).
#[task]
fn read(path: String) -> Result<String, Failure> {
    std::fs::read_to_string(&path)
        .map_err(|error| Failure::new(1, format!("cannot read {path}: {error}")))
}
