//! The soak run: many mixed tasks, a tenth of them hostile (every status of
//! the table), through a pool in both isolations, with worker processes
//! killed at random meanwhile. Checks that every task ends in exactly one
//! outcome with its expected status, and that host memory stays flat;
//! prints the figures.
//!
//! Run: `cargo bench -p wasmproc-tests --bench soak` (add `-- --tasks N`;
//! default 100000).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use wasmproc::{ExitStatus, Isolation, Limits, Pool, ProcessOptions, Runtime, Task, TrapKind};
use wasmproc_tests::guests;
use wasmproc_tests::mutations::Rng;

fn main() {
    // The process-isolation run starts this very binary as its workers.
    wasmproc::run_worker_if_requested();
    let tasks = wasmproc_tests::tasks_argument(100_000);
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    println!("wasmproc soak: {tasks} tasks, 10% hostile, {cpus} workers, each isolation");
    let cache = tempfile::tempdir().expect("a temporary directory");
    let runtime = Runtime::builder()
        .cache_dir(cache.path())
        .cache_key_file(cache.path().with_extension("key"))
        .build()
        .expect("runtime");
    let sdk = runtime.load(guests::SDK_TASKS).expect("sdk-tasks loads");

    let mut failed = false;
    for (name, isolation) in [
        ("threads", Isolation::Thread),
        (
            "processes, workers killed at random",
            Isolation::Process(ProcessOptions::default()),
        ),
    ] {
        let killing = matches!(isolation, Isolation::Process(_));
        let pool = Arc::new(
            Pool::builder(&sdk)
                .workers(cpus)
                .isolation(isolation)
                .build()
                .expect("pool"),
        );
        failed |= !soak(&pool, tasks, name, killing);
    }
    if failed {
        eprintln!("soak: FAILED");
        std::process::exit(1);
    }
    println!("\nsoak: every task ended exactly once with its status; memory stayed flat");
}

/// Runs the soak through `pool`; whether everything held.
fn soak(pool: &Arc<Pool>, tasks: usize, name: &str, killing: bool) -> bool {
    println!("\n{name}");
    let done = Arc::new(AtomicBool::new(false));
    let kills = Arc::new(AtomicUsize::new(0));
    let killer = killing.then(|| {
        let (done, kills, pool) = (Arc::clone(&done), Arc::clone(&kills), Arc::clone(pool));
        std::thread::spawn(move || kill_at_random(&|| pool.worker_pids(), &done, &kills))
    });

    let started = Instant::now();
    let mut seen = vec![false; tasks];
    let mut statuses: BTreeMap<String, usize> = BTreeMap::new();
    let (mut wrong, mut twice, mut lost) = (0usize, 0usize, 0usize);
    let mut rss = Vec::new();
    for (index, outcome) in pool.map_tasks_unordered((0..tasks).map(task)) {
        if std::mem::replace(&mut seen[index], true) {
            twice += 1;
        }
        let expected = expected(index);
        if outcome.status == ExitStatus::WorkerLost && killing {
            lost += 1;
        } else if outcome.status != expected
            || (expected.success()
                && index % 100 >= 10
                && outcome.decode::<u64>().ok() != Some((index * index) as u64))
        {
            wrong += 1;
            if wrong <= 5 {
                eprintln!(
                    "  task {index}: {:?} ({:?}), expected {expected:?}",
                    outcome.status, outcome.message
                );
            }
        }
        *statuses
            .entry(outcome.status.name().to_owned())
            .or_default() += 1;
        let count = statuses.values().sum::<usize>();
        if count == tasks / 10 || count == tasks / 2 || count == tasks {
            rss.push((count, resident_bytes()));
        }
    }
    let elapsed = started.elapsed();
    done.store(true, Ordering::SeqCst);
    if let Some(killer) = killer {
        let _ = killer.join();
    }
    let missing = seen.iter().filter(|s| !**s).count();
    println!(
        "  {tasks} tasks in {:.2}s ({:.0} tasks/s); {} worker processes killed",
        elapsed.as_secs_f64(),
        tasks as f64 / elapsed.as_secs_f64(),
        kills.load(Ordering::SeqCst)
    );
    println!("  outcomes by status: {statuses:?}");
    println!(
        "  missing {missing}, reported twice {twice}, unexpected status {wrong}, lost to kills {lost}"
    );
    let mib = |bytes: Option<u64>| {
        bytes.map_or("?".into(), |b| {
            format!("{:.1} MiB", b as f64 / (1 << 20) as f64)
        })
    };
    let samples: Vec<String> = rss
        .iter()
        .map(|(n, b)| format!("{n}: {}", mib(*b)))
        .collect();
    println!(
        "  host resident memory after N outcomes: {}",
        samples.join(", ")
    );
    let growth = match (rss.first(), rss.last()) {
        (Some((_, Some(first))), Some((_, Some(last)))) => last.saturating_sub(*first),
        _ => 0,
    };
    let flat = growth < 64 << 20;
    println!(
        "  growth from 10% to 100%: {} ({})",
        mib(Some(growth)),
        if flat { "flat" } else { "GROWING" }
    );
    missing == 0 && twice == 0 && wrong == 0 && flat
}

/// Task `index`: 90% trivial, 10% one of the table's failures.
fn task(index: usize) -> Task {
    let call = |name: &str, arg: serde_json::Value| Task::call(name, &arg).expect("serializes");
    let limits = Limits::default();
    match index % 100 {
        0 => call("fail_with", json!([7, "soak"])),
        1 => call("panics", json!("soak")),
        2 => call("unreachable", json!(null)),
        3 => call("out_of_bounds", json!(null)),
        4 => call("allocate_mib", json!(64)).limits(limits.max_memory(16 << 20)),
        5 => call("spin", json!(null)).limits(limits.fuel(20_000)),
        6 => Task::call_json("square", &b"not json"[..]),
        7 => call("no_such_task", json!(null)),
        8 => call("write_output", json!([200_000, "e"])).limits(limits.max_output(1 << 10)),
        9 if index % 1000 == 9 => {
            call("spin", json!(null)).limits(limits.timeout(Duration::from_millis(20)))
        }
        9 => call("recurse", json!(100_000_000u64)),
        _ => call("square", json!(index)),
    }
}

fn expected(index: usize) -> ExitStatus {
    match index % 100 {
        0 => ExitStatus::Exited(7),
        1 => ExitStatus::Exited(101),
        2 => ExitStatus::Trapped(TrapKind::Unreachable),
        3 => ExitStatus::Trapped(TrapKind::MemoryOutOfBounds),
        4 => ExitStatus::MemoryExceeded,
        5 => ExitStatus::FuelExhausted,
        6 => ExitStatus::BadInvocation,
        7 => ExitStatus::CannotRun,
        9 if index % 1000 == 9 => ExitStatus::TimedOut,
        9 => ExitStatus::Trapped(TrapKind::StackOverflow),
        _ => ExitStatus::Exited(0),
    }
}

/// Kills a random worker process every 50–250 ms until `done`.
fn kill_at_random(pids: &dyn Fn() -> Vec<u32>, done: &AtomicBool, kills: &AtomicUsize) {
    let mut rng = Rng::new(0x50a4);
    while !done.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(50 + rng.below(200) as u64));
        let live = pids();
        if live.is_empty() {
            continue;
        }
        let victim = live[rng.below(live.len())];
        let killed = std::process::Command::new("kill")
            .args(["-9", &victim.to_string()])
            .status()
            .is_ok_and(|s| s.success());
        if killed {
            kills.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// This process's resident memory, where the OS says it (Linux).
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}
