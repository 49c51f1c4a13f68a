//! Processes from the outside, for the tests that kill workers and parents.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Sends `signal` (e.g. `-9`) to `pid`.
pub fn kill(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill {signal} {pid}");
}

/// Whether process `pid` exists.
pub fn alive(pid: u32) -> bool {
    Command::new("kill")
        .args(["-0", &pid.to_string()])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The pids of `parent`'s child processes.
pub fn children_of(parent: u32) -> Vec<u32> {
    let out = Command::new("pgrep")
        .args(["-P", &parent.to_string()])
        .output()
        .expect("pgrep runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Waits until `condition` holds, failing the test after 20 s.
pub fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let started = Instant::now();
    while !condition() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until `parent` has `workers` child processes, kills it with
/// SIGKILL, and waits until every one of them has exited too: no worker
/// outlives its pool.
pub fn kill_and_see_workers_exit(mut parent: std::process::Child, workers: usize) {
    wait_for("the worker processes", || {
        children_of(parent.id()).len() == workers
    });
    let children = children_of(parent.id());
    kill(parent.id(), "-9");
    let _ = parent.wait();
    wait_for("the workers to exit", || {
        children.iter().all(|pid| !alive(*pid))
    });
}
