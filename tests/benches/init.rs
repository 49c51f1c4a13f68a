//! The initializer benchmark: a prime sieve of tens of megabytes built once
//! by an initializer (the `primes` example guest), then read by thousands
//! of tasks, each in a fresh instance that starts from the snapshot;
//! measured side by side, in one run, with the same tasks without the
//! state, with the sieve built inside every task, with Python's
//! `multiprocessing.Pool(initializer=…)` under spawn and fork, and (through
//! the binary) with a module without an initializer.
//!
//! Run: `cargo bench -p wasmproc-tests --bench init` (add `-- --tasks N` to
//! change the number of queries, default 10000; `-- --limit L` the sieve's
//! limit, default 50000000; `-- --only lib|python|cli` for one section).

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use wasmproc::{Isolation, Module, Pool, ProcessOptions, Runtime, Task};

/// The sieve's limit: about 60 MB of state, built in about half a second.
const DEFAULT_LIMIT: u32 = 50_000_000;

/// How many tasks build the sieve themselves (each takes as long as the
/// initializer); their time per task is scaled to the whole run.
const FROM_SCRATCH_TASKS: usize = 4;

fn row(name: &str, value: f64, unit: &str) -> f64 {
    println!("  {name:<64} {value:>12.1} {unit}");
    value
}

/// A runtime caching in `dir`: a fresh directory makes the first
/// initializer call really run the initializer.
fn runtime_in(dir: &Path) -> Runtime {
    Runtime::builder()
        .cache_dir(dir.join("cache"))
        .cache_key_file(dir.join("cache.key"))
        .build()
        .expect("the runtime builds")
}

/// `count` numbers spread over `[0, limit)`, the same in every run.
fn queries(count: usize, limit: u32) -> Vec<u64> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    (0..count)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % u64::from(limit)
        })
        .collect()
}

/// Runs `is_prime` over `numbers` on `module` with two workers: the wall
/// time and how many were prime.
fn map_is_prime(module: &Module, isolation: Isolation, numbers: &[u64]) -> (Duration, usize) {
    let pool = Pool::builder(module)
        .workers(2)
        .isolation(isolation)
        .build()
        .expect("the pool builds");
    // Workers up before the clock starts.
    pool.map("is_prime", [0u64, 1]).for_each(drop);
    let started = Instant::now();
    let primes = count_primes(pool.map("is_prime", numbers.iter().copied()));
    (started.elapsed(), primes)
}

fn count_primes(outcomes: impl Iterator<Item = wasmproc::Outcome>) -> usize {
    outcomes
        .map(|outcome| outcome.decode::<bool>().expect("is_prime answers"))
        .filter(|&prime| prime)
        .count()
}

/// The library rows: the initializer, the per-task cost with and without
/// the state, and the sieve built in every task.
fn library(primes_wasm: &Path, limit: u32, numbers: &[u64], ratios: &mut Vec<(String, f64)>) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let runtime = runtime_in(dir.path());
    let module = runtime.load(primes_wasm).expect("the primes guest loads");

    println!("\n1. the initializer: sieve({limit}), run once and snapshot");
    let started = Instant::now();
    let snapshot = module
        .initialize("sieve", &limit)
        .expect("the sieve builds");
    let initialize = started.elapsed();
    row(
        "run, snapshot and cache the initializer",
        initialize.as_secs_f64() * 1e3,
        "ms",
    );
    let probe = snapshot.run(&Task::call("nth_prime", &0).expect("serializes"));
    row(
        "state every task starts from (the instance's memory)",
        probe.peak_memory_bytes as f64 / (1 << 20) as f64,
        "MiB",
    );
    let started = Instant::now();
    let again = module.initialize("sieve", &limit).expect("the sieve loads");
    row(
        "the same snapshot again, from the cache",
        started.elapsed().as_secs_f64() * 1e3,
        "ms",
    );
    drop(again);

    println!(
        "\n2. per task, 2 thread workers, {} tasks (lower is better)",
        numbers.len()
    );
    // The same task on the same numbers, with and without the state: small
    // numbers (trial division takes a few steps), so both rows are the
    // cost of a task, and the difference is the state's.
    let small: Vec<u64> = numbers.iter().map(|n| n % 1000).collect();
    let (plain, _) = map_is_prime(&module, Isolation::Thread, &small);
    let plain_per_task = row(
        "is_prime(n < 1000) on the module without the state",
        plain.as_secs_f64() * 1e6 / numbers.len() as f64,
        "us",
    );
    let (same, _) = map_is_prime(&snapshot, Isolation::Thread, &small);
    let same_per_task = row(
        "is_prime(n < 1000) from the snapshot",
        same.as_secs_f64() * 1e6 / numbers.len() as f64,
        "us",
    );
    ratios.push((
        "per task, same numbers: snapshot / no state (target <= 1.5)".into(),
        same_per_task / plain_per_task,
    ));
    // Numbers over the whole sieve: each task reads another page of it.
    let (warm, primes) = map_is_prime(&snapshot, Isolation::Thread, numbers);
    let per_task = row(
        "is_prime(n < limit) from the snapshot, all over the sieve",
        warm.as_secs_f64() * 1e6 / numbers.len() as f64,
        "us",
    );
    ratios.push((
        "per task, all over the state: snapshot / no state".into(),
        per_task / plain_per_task,
    ));
    let (processes, process_primes) = map_is_prime(
        &snapshot,
        Isolation::Process(ProcessOptions::default()),
        numbers,
    );
    assert_eq!(process_primes, primes, "both isolations agree");
    row(
        "is_prime from the snapshot, 2 worker processes",
        processes.as_secs_f64() * 1e6 / numbers.len() as f64,
        "us",
    );

    println!("\n3. the sieve built inside every task instead ({FROM_SCRATCH_TASKS} tasks, scaled)");
    let pool = Pool::builder(&module)
        .workers(2)
        .build()
        .expect("the pool builds");
    let started = Instant::now();
    let scratch = numbers[..FROM_SCRATCH_TASKS]
        .iter()
        .map(|&n| Task::call("is_prime_from_scratch", &(limit, n)).expect("serializes"));
    pool.map_tasks(scratch).for_each(|outcome| {
        assert!(outcome.success(), "{outcome:?}");
    });
    let scratch_per_task = started.elapsed().as_secs_f64() / FROM_SCRATCH_TASKS as f64;
    let scratch_total = row(
        &format!("{} tasks that each build the sieve", numbers.len()),
        scratch_per_task * numbers.len() as f64,
        "s",
    );
    let snapshot_total = row(
        "the initializer once, then the tasks from its snapshot",
        (initialize + warm).as_secs_f64(),
        "s",
    );
    ratios.push((
        "total: sieve in every task / initializer once (target >= 50)".into(),
        scratch_total / snapshot_total,
    ));
    println!("  ({primes} of the {} numbers are prime)", numbers.len());
}

/// The end-to-end rows against Python: load, initialize (cold cache), two
/// workers, every query.
fn against_python(
    primes_wasm: &Path,
    limit: u32,
    numbers: &[u64],
    ratios: &mut Vec<(String, f64)>,
) {
    println!(
        "\n4. end to end: load, initialize, 2 workers, {} queries (wall, lower is better;\n   a first run initializes, a later one finds the snapshot in the cache)",
        numbers.len()
    );
    let mut rows = Vec::new();
    for (isolation_label, isolation) in [
        ("threads", Isolation::Thread),
        ("processes", Isolation::Process(ProcessOptions::default())),
    ] {
        // The first run initializes; a later run (another program, the
        // same cache) finds the snapshot.
        let dir = tempfile::tempdir().expect("a temporary directory");
        for run in ["first run", "later run"] {
            let started = Instant::now();
            let module = runtime_in(dir.path())
                .load(primes_wasm)
                .expect("the primes guest loads");
            let pool = Pool::builder(&module)
                .workers(2)
                .isolation(isolation.clone())
                .initializer("sieve", &limit)
                .build()
                .expect("the pool builds");
            let primes = count_primes(pool.map("is_prime", numbers.iter().copied()));
            let label = format!("{isolation_label}, {run}");
            let seconds = row(
                &format!("wasmproc, Pool with an initializer, {label}"),
                started.elapsed().as_secs_f64(),
                "s",
            );
            rows.push((label, seconds, primes));
        }
    }
    let python = python_peer(limit, numbers);
    for (method, seconds, primes) in &python {
        row(
            &format!("python multiprocessing.Pool(2, initializer=...), {method}"),
            *seconds,
            "s",
        );
        for (label, ours, our_primes) in &rows {
            assert_eq!(our_primes, primes, "python and wasmproc agree");
            ratios.push((
                format!("wall: python {method} / wasmproc {label}"),
                seconds / ours,
            ));
        }
    }
    if let Some((_, _, primes)) = rows.first() {
        println!("  (same answers: {primes} primes in every row)");
    }
}

/// Python's rows: `(start method, seconds, primes found)`.
fn python_peer(limit: u32, numbers: &[u64]) -> Vec<(String, f64, usize)> {
    let mut file = tempfile::NamedTempFile::new().expect("a temporary file");
    for n in numbers {
        writeln!(file, "{n}").expect("writes");
    }
    let args = [limit.to_string(), file.path().display().to_string()];
    wasmproc_tests::python_peer("init_peer.py", &args)
        .iter()
        .filter_map(|v| {
            Some((
                v["name"].as_str()?.to_owned(),
                v["seconds"].as_f64()?,
                usize::try_from(v["primes"].as_u64()?).ok()?,
            ))
        })
        .collect()
}

/// The binary rows: time to the first result of `wasmproc map` with an
/// initializer whose snapshot is cached, against the module without one.
fn binary(primes_wasm: &Path, limit: u32, ratios: &mut Vec<(String, f64)>) {
    println!("\n5. `wasmproc map`, time to the first result (median of 5, lower is better)");
    let wasmproc = wasmproc_tests::release_build(
        &["-p", "wasmproc-cli", "--bin", "wasmproc"],
        "release/wasmproc",
    );
    let dir = tempfile::tempdir().expect("a temporary directory");
    let limit = limit.to_string();
    let module = primes_wasm.to_str().expect("a UTF-8 path");
    let with_init = [
        "map",
        module,
        "--init",
        "sieve",
        "--init-args",
        &limit,
        "--task",
        "is_prime",
    ];
    let without = ["map", module, "--task", "is_prime"];
    // The first runs compile the module and make the snapshot.
    first_result(&wasmproc, dir.path(), &with_init);
    first_result(&wasmproc, dir.path(), &without);
    let (mut ours, mut plain) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        ours.push(first_result(&wasmproc, dir.path(), &with_init));
        plain.push(first_result(&wasmproc, dir.path(), &without));
    }
    let ours = row(
        "with --init (the snapshot from the cache)",
        wasmproc_tests::median(&mut ours) * 1e3,
        "ms",
    );
    let plain = row(
        "the module without an initializer",
        wasmproc_tests::median(&mut plain) * 1e3,
        "ms",
    );
    ratios.push((
        "first result: --init, cached / no initializer (target <= 2)".into(),
        ours / plain,
    ));
}

/// Seconds from starting `wasmproc args…` (one query on stdin) to its
/// first line of output.
fn first_result(wasmproc: &Path, dir: &Path, args: &[&str]) -> f64 {
    let started = Instant::now();
    let mut child = Command::new(wasmproc)
        .args(args)
        .env("WASMPROC_CACHE_DIR", dir.join("cache"))
        .env("WASMPROC_CACHE_KEY_FILE", dir.join("cache.key"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("wasmproc starts");
    let mut stdin = child.stdin.take().expect("piped");
    writeln!(stdin, "49999991").expect("writes the query");
    drop(stdin);
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("piped"))
        .read_line(&mut line)
        .expect("reads the first result");
    let seconds = started.elapsed().as_secs_f64();
    assert!(line.contains("true"), "49999991 is prime: {line}");
    child.wait().expect("wasmproc ends");
    seconds
}

fn main() {
    wasmproc::run_worker_if_requested();
    let count = wasmproc_tests::tasks_argument(10_000);
    let limit = std::env::args()
        .skip_while(|a| a != "--limit")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(DEFAULT_LIMIT);
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    println!(
        "wasmproc initializer benchmark: {count} queries, sieve to {limit}, {cpus} CPUs, one run"
    );
    let primes_wasm = wasmproc_tests::release_build(
        &[
            "-p",
            "wasmproc-guest",
            "--example",
            "primes",
            "--target",
            "wasm32-wasip1",
        ],
        "wasm32-wasip1/release/examples/primes.wasm",
    );
    let numbers = queries(count, limit);
    let mut ratios = Vec::new();
    if wasmproc_tests::bench_section_wanted("lib") {
        library(&primes_wasm, limit, &numbers, &mut ratios);
    }
    if wasmproc_tests::bench_section_wanted("python") {
        against_python(&primes_wasm, limit, &numbers, &mut ratios);
    }
    if wasmproc_tests::bench_section_wanted("cli") {
        binary(&primes_wasm, limit, &mut ratios);
    }
    println!("\nratios (measured side by side in this run)");
    for (name, ratio) in ratios {
        println!("  {name:<64} {ratio:>8.2}x");
    }
}
