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

/// The suite's poll with a deadline, here too for the tests that use it
/// beside the helpers above.
pub use crate::wait_for;

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

/// The resident memory of process `pid`, in bytes, from Linux's
/// `/proc/PID/status`; `None` elsewhere, or once the process is gone.
pub fn resident_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The most resident memory `pid` had over `span`, sampled every 100 ms.
pub fn peak_resident_bytes(pid: u32, span: Duration) -> u64 {
    let started = Instant::now();
    let mut peak = 0;
    while started.elapsed() < span {
        peak = peak.max(resident_bytes(pid).unwrap_or(0));
        std::thread::sleep(Duration::from_millis(100));
    }
    peak
}
