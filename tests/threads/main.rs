//! The one test that counts this process's threads, alone in its own test
//! binary: in the suite, other tests start and end threads while it counts,
//! so a count there could pass or fail by accident. Add no other test here.
//! (Linux only: the count comes from `/proc`.)

#![cfg(target_os = "linux")]

use std::time::Duration;

use wasmproc::{DirGrant, ExitStatus, Isolation, Limits, Pool, ProcessOptions, Task};
use wasmproc_tests::wasi_cmd;

/// The host program this test's process pool starts as its workers
/// (`tests/bin/pool_host.rs`; cargo builds it for this test).
fn pool_host() -> &'static std::path::Path {
    std::path::Path::new(env!("CARGO_BIN_EXE_pool-host"))
}

/// The threads of this process, from the kernel's own count.
fn threads() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// A guest blocked opening a FIFO that nobody writes leaves an OS thread
/// stuck in the kernel when its task times out: nothing can interrupt it.
/// In a thread worker, such threads are bounded (8 per worker); a worker
/// process retires after such a task, taking its stuck thread along.
#[test]
fn threads_stuck_on_a_fifo_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let stuck = || {
        Task::command()
            .args(["read", "/d/fifo"])
            .dir(DirGrant::new(dir.path(), "/d"))
            .limits(Limits::default().timeout(Duration::from_millis(30)))
    };
    let process = Isolation::Process(ProcessOptions::default().executable(pool_host()));
    for isolation in [Isolation::Thread, process] {
        let pool = Pool::builder(wasi_cmd())
            .workers(1)
            .isolation(isolation.clone())
            .build()
            .unwrap();
        // Warm up: the worker and its runtime exist before counting.
        assert!(
            pool.submit(Task::command().args(["exit", "0"]))
                .unwrap()
                .wait()
                .success()
        );
        let before = threads();
        let outcomes: Vec<_> = pool.map_tasks((0..40).map(|_| stuck())).collect();
        assert!(outcomes.iter().all(|o| o.status == ExitStatus::TimedOut));
        let grown = threads().saturating_sub(before);
        assert!(
            grown <= 8,
            "{isolation:?}: {grown} more threads after 40 stuck tasks"
        );
        // The worker still serves other tasks.
        assert!(
            pool.submit(Task::command().args(["exit", "0"]))
                .unwrap()
                .wait()
                .success()
        );
    }
    // Unblock whatever still waits on the FIFO, so its threads can end.
    let _ = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags_nonblock(&fifo);
}

/// Opens `path` for writing without blocking (a FIFO with readers).
trait OpenNonblock {
    fn custom_flags_nonblock(&mut self, path: &std::path::Path) -> std::io::Result<std::fs::File>;
}

impl OpenNonblock for std::fs::OpenOptions {
    fn custom_flags_nonblock(&mut self, path: &std::path::Path) -> std::io::Result<std::fs::File> {
        use std::os::unix::fs::OpenOptionsExt;
        // O_NONBLOCK on Linux.
        self.custom_flags(0o4000).open(path)
    }
}
