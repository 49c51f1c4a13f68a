//! The sharing benchmark: pipes, queues, region atomics and locks between
//! the host and sandboxed tasks, in both isolations, measured side by side
//! with Python's multiprocessing in one run.
//!
//! Run: `cargo bench -p wasmproc-tests --bench share` (add `-- --tasks N`
//! to change the message count per row; default 200000; `-- --only pipe`,
//! `queue`, `adds` or `lock` for one section).

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::Instant;

use wasmproc::{
    Isolation, Lock, Module, Pool, ProcessOptions, Queue, Runtime, SharedRegion, Task, pipe,
};
use wasmproc_tests::guests;

fn process() -> Isolation {
    Isolation::Process(ProcessOptions::default())
}

fn pool(module: &Module, isolation: Isolation, workers: usize) -> Pool {
    let pool = Pool::builder(module)
        .workers(workers)
        .isolation(isolation)
        .build()
        .expect("the pool builds");
    // Workers up before the clock starts.
    let warm = (0..workers).map(|_| Task::call("count", &0u64).expect("serializes"));
    let counts = SharedRegion::new(8).expect("region");
    pool.map_tasks(warm.map(|t| t.share("counts", &counts)))
        .for_each(drop);
    pool
}

fn row(name: &str, value: f64, unit: &str) -> f64 {
    println!("  {name:<60} {value:>14.1} {unit}");
    value
}

/// Round trips over a pipe: host sends, the task doubles and answers.
fn pipe_round_trip(module: &Module, isolation: Isolation, trips: u64) -> f64 {
    let pool = pool(module, isolation, 1);
    let (mine, theirs) = pipe();
    let task = Task::call("doubler", &(trips + 1))
        .expect("serializes")
        .pipe(theirs);
    let handle = pool.submit(task).expect("submits");
    mine.send(&0u64).expect("sends");
    mine.recv::<u64>().expect("answers");
    let started = Instant::now();
    for i in 1..=trips {
        mine.send(&i).expect("sends");
        assert_eq!(mine.recv::<u64>().expect("answers"), 2 * i);
    }
    let micros = started.elapsed().as_secs_f64() * 1e6 / trips as f64;
    assert!(handle.wait().status.success());
    micros
}

/// The least a round trip between two processes costs here: 8 bytes
/// each way over a pair of pipes to a child that echoes them (this
/// program, `--echo-child`), one wake-up each way, no framing and no
/// serialization. A pipe between the host and a process worker cannot be
/// faster than this; it shows what a design with fewer wake-ups could gain.
fn raw_pipe_round_trip(trips: u64) -> f64 {
    let exe = std::env::current_exe().expect("this benchmark's path");
    let mut child = Command::new(exe)
        .arg("--echo-child")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the echoing child starts");
    let mut to = child.stdin.take().expect("piped");
    let mut from = child.stdout.take().expect("piped");
    let mut answer = [0u8; 8];
    let mut trip = |i: u64| {
        to.write_all(&i.to_le_bytes()).expect("writes");
        from.read_exact(&mut answer).expect("reads");
        assert_eq!(u64::from_le_bytes(answer), i);
    };
    trip(0);
    let started = Instant::now();
    for i in 1..=trips {
        trip(i);
    }
    let micros = started.elapsed().as_secs_f64() * 1e6 / trips as f64;
    drop(to);
    child.wait().expect("the echoing child ends");
    micros
}

/// The child of [`raw_pipe_round_trip`]: echoes 8 bytes at a time.
fn echo_child() {
    let mut word = [0u8; 8];
    let mut stdin = std::io::stdin().lock();
    let mut stdout = std::io::stdout().lock();
    while stdin.read_exact(&mut word).is_ok() {
        stdout.write_all(&word).expect("writes");
        stdout.flush().expect("flushes");
    }
}

/// Messages per second from one producer task to the host.
fn queue_throughput(module: &Module, isolation: Isolation, messages: u32) -> f64 {
    let pool = pool(module, isolation, 1);
    let jobs = Queue::<u32>::new(1024);
    let task = Task::call("bench_produce", &messages)
        .expect("serializes")
        .share("jobs", &jobs);
    let started = Instant::now();
    let handle = pool.submit(task).expect("submits");
    for i in 0..messages {
        assert_eq!(jobs.get().expect("gets"), i);
    }
    let per_second = f64::from(messages) / started.elapsed().as_secs_f64();
    assert!(handle.wait().status.success());
    per_second
}

/// Atomic adds per second from one task (its own run time: the clock
/// starts and stops inside the guest's loop's host, not around the pool).
fn fetch_adds(module: &Module, isolation: Isolation, adds: u64) -> f64 {
    let pool = pool(module, isolation, 1);
    let counts = SharedRegion::new(8).expect("region");
    let task = Task::call("bench_fetch_add", &adds)
        .expect("serializes")
        .share("counts", &counts);
    let outcome = pool.submit(task).expect("submits").into_outcome();
    assert!(outcome.status.success());
    assert_eq!(counts.u64_at(0).expect("word").load(Ordering::SeqCst), adds);
    adds as f64 / outcome.duration.as_secs_f64()
}

/// Increments per second of a counter under a lock, by two tasks at once.
fn locked_counter(module: &Module, isolation: Isolation, each: u64) -> f64 {
    let pool = pool(module, isolation, 2);
    let counts = SharedRegion::new(8).expect("region");
    let lock = Lock::new().expect("lock");
    let task = || {
        Task::call("locked_count", &each)
            .expect("serializes")
            .share("counts", &counts)
            .share("lock", &lock)
    };
    let started = Instant::now();
    let handles = [
        pool.submit(task()).expect("submits"),
        pool.submit(task()).expect("submits"),
    ];
    for handle in handles {
        assert!(handle.wait().status.success());
    }
    let per_second = (2 * each) as f64 / started.elapsed().as_secs_f64();
    assert_eq!(
        counts.u64_at(0).expect("word").load(Ordering::SeqCst),
        2 * each
    );
    per_second
}

fn python_peer(n: usize) -> Vec<(String, f64)> {
    wasmproc_tests::python_peer("share_peer.py", &[n.to_string()])
        .iter()
        .filter_map(|v| Some((v["name"].as_str()?.to_owned(), v["per_s"].as_f64()?)))
        .collect()
}

fn peer(python: &[(String, f64)], name: &str) -> Option<f64> {
    python.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
}

/// Whether the section `name` runs (all, unless `--only` names one).
fn wanted(name: &str) -> bool {
    let only = std::env::args().skip_while(|a| a != "--only").nth(1);
    only.is_none_or(|only| only == name)
}

fn main() {
    if std::env::args().any(|arg| arg == "--echo-child") {
        echo_child();
        return;
    }
    wasmproc::run_worker_if_requested();
    let n = wasmproc_tests::tasks_argument(200_000);
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    println!("wasmproc sharing benchmark: {n} messages per row, {cpus} CPUs, one run");
    let cache = tempfile::tempdir().expect("a temporary directory");
    let runtime = Runtime::builder()
        .cache_dir(cache.path())
        .build()
        .expect("runtime");
    let module = runtime
        .load(guests::SHARE_TASKS)
        .expect("share-tasks loads");
    let python = python_peer(n);

    let mut ratios = Vec::new();

    if wanted("pipe") {
        println!("\n1. pipe round trip, host <-> task (lower is better)");
        let trips = (n / 10).max(1000) as u64;
        let threads = pipe_round_trip(&module, Isolation::Thread, trips);
        row("wasmproc, thread worker", threads, "us");
        let processes = pipe_round_trip(&module, process(), trips);
        row("wasmproc, process worker", processes, "us");
        row(
            "8 bytes echoed by a child over 2 pipes (the floor)",
            raw_pipe_round_trip(trips),
            "us",
        );
        if let Some(per_s) = peer(&python, "Pipe round trip") {
            let python = row(
                "python multiprocessing.Pipe, 2 processes",
                1e6 / per_s,
                "us",
            );
            ratios.push((
                "pipe round trip: python / wasmproc threads",
                python / threads,
            ));
            ratios.push((
                "pipe round trip: python / wasmproc processes",
                python / processes,
            ));
        }
    }

    if wanted("queue") {
        println!("\n2. queue, one producer task, the host consuming (messages/s)");
        let threads = queue_throughput(&module, Isolation::Thread, n as u32);
        row("wasmproc, thread worker", threads, "/s");
        let processes = queue_throughput(&module, process(), n as u32);
        row("wasmproc, process worker", processes, "/s");
        if let Some(python) = peer(&python, "Queue, one producer process, the parent consuming") {
            row(
                "python multiprocessing.Queue, one producer process",
                python,
                "/s",
            );
            ratios.push((
                "queue throughput: wasmproc threads / python",
                threads / python,
            ));
            ratios.push((
                "queue throughput: wasmproc processes / python",
                processes / python,
            ));
        }
    }

    if wanted("adds") {
        println!("\n3. atomic fetch_add on a region from a guest, one worker (adds/s)");
        let adds = (n * 50) as u64;
        row(
            "wasmproc, thread worker",
            fetch_adds(&module, Isolation::Thread, adds),
            "/s",
        );
        row(
            "wasmproc, process worker",
            fetch_adds(&module, process(), adds),
            "/s",
        );
    }

    if wanted("lock") {
        println!("\n4. a counter under a lock, 2 workers incrementing (increments/s)");
        let each = (n / 2) as u64;
        let threads = locked_counter(&module, Isolation::Thread, each);
        row("wasmproc Lock, 2 thread workers", threads, "/s");
        let processes = locked_counter(&module, process(), each);
        row("wasmproc Lock, 2 process workers", processes, "/s");
        if let Some(python) = peer(&python, "Value += 1 under its lock, 2 processes") {
            row("python Value with its lock, 2 processes", python, "/s");
            ratios.push((
                "locked counter: wasmproc threads / python",
                threads / python,
            ));
            ratios.push((
                "locked counter: wasmproc processes / python",
                processes / python,
            ));
        }
    }

    println!("\nratios (measured above, in this run)");
    for (name, ratio) in ratios {
        row(name, ratio, "x");
    }
}
