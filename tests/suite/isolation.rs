//! Thread and process isolation give the same outcomes; process workers
//! are supervised: killed from outside, crash-looping, or orphaned.

use std::time::{Duration, Instant};

use serde_json::json;
use wasmproc::{
    Capabilities, DirGrant, ExitStatus, Isolation, Limits, Outcome, Output, Pool, ProcessOptions,
    Stdin, Task, TrapKind,
};
use wasmproc_tests::{Started, announced_sleep, sdk_tasks, wasi_cmd, wasi_cmd_p2};

use crate::pool_host;

fn process() -> Isolation {
    Isolation::Process(ProcessOptions::default().executable(pool_host()))
}

fn pool(module: &wasmproc::Module, isolation: Isolation, workers: usize) -> Pool {
    Pool::builder(module)
        .workers(workers)
        .isolation(isolation)
        .build()
        .unwrap()
}

fn timeout(ms: u64) -> Limits {
    Limits::default().timeout(Duration::from_millis(ms))
}

/// Every row of the status table, and what travels with it.
fn typed_cases() -> Vec<(&'static str, Task, ExitStatus)> {
    let call = |name: &str, arg: serde_json::Value| Task::call(name, &arg).unwrap();
    vec![
        ("square", call("square", json!(12)), ExitStatus::Exited(0)),
        (
            "rich types",
            call("add", json!([40, 2])),
            ExitStatus::Exited(0),
        ),
        (
            "own exit code",
            call("fail_with", json!([33, "nope"])),
            ExitStatus::Exited(33),
        ),
        (
            "panic",
            call("panics", json!("boom")),
            ExitStatus::Exited(101),
        ),
        (
            "missing task",
            call("no_such_task", json!(null)),
            ExitStatus::CannotRun,
        ),
        (
            "not JSON",
            Task::call_json("square", &b"{nope"[..]),
            ExitStatus::BadInvocation,
        ),
        (
            "wrong type",
            call("square", json!("x")),
            ExitStatus::BadInvocation,
        ),
        (
            "rejected",
            Task::rejected("bad input line"),
            ExitStatus::BadInvocation,
        ),
        (
            "unreachable",
            call("unreachable", json!(null)),
            ExitStatus::Trapped(TrapKind::Unreachable),
        ),
        (
            "out of bounds",
            call("out_of_bounds", json!(null)),
            ExitStatus::Trapped(TrapKind::MemoryOutOfBounds),
        ),
        (
            "stack overflow",
            call("recurse", json!(100_000_000u64)),
            ExitStatus::Trapped(TrapKind::StackOverflow),
        ),
        (
            "memory bomb",
            call("allocate_mib", json!(256)).limits(Limits::default().max_memory(16 << 20)),
            ExitStatus::MemoryExceeded,
        ),
        (
            "busy timeout",
            call("spin", json!(null)).limits(timeout(50)),
            ExitStatus::TimedOut,
        ),
        (
            "sleeping timeout",
            call("sleep_ms", json!(3_600_000)).limits(timeout(50)),
            ExitStatus::TimedOut,
        ),
        (
            "fuel",
            call("spin", json!(null)).limits(Limits::default().fuel(10_000)),
            ExitStatus::FuelExhausted,
        ),
        (
            "env grant",
            call("env_var", json!("K")).env("K", "v"),
            ExitStatus::Exited(0),
        ),
        (
            "stdin bytes",
            call("read_stdin", json!(null)).stdin(Stdin::Bytes((&b"in"[..]).into())),
            ExitStatus::Exited(0),
        ),
        (
            "output cap",
            call("write_output", json!([5000, "err"])).limits(Limits::default().max_output(100)),
            ExitStatus::Exited(0),
        ),
        (
            "argument over its limit",
            call("echo", json!("x".repeat(5000))).limits(Limits::default().max_args(1024)),
            ExitStatus::BadInvocation,
        ),
        (
            "result over its limit",
            call("echo", json!("x".repeat(5000))).limits(Limits::default().max_result(1024)),
            ExitStatus::MemoryExceeded,
        ),
        (
            "NUL in argv",
            call("square", json!(1)).args(["a\0b"]),
            ExitStatus::BadInvocation,
        ),
    ]
}

/// The parts of an outcome that must not depend on isolation.
#[derive(Debug, PartialEq)]
struct Essence {
    status: ExitStatus,
    result: Option<Vec<u8>>,
    message: Option<String>,
    panicked: bool,
    stdout: Vec<u8>,
    stdout_truncated: bool,
    stderr: Vec<u8>,
}

fn essence(outcome: &Outcome) -> Essence {
    Essence {
        status: outcome.status,
        result: outcome.result.clone(),
        message: outcome.message.clone(),
        panicked: outcome.panicked,
        stdout: outcome.stdout.bytes.clone(),
        stdout_truncated: outcome.stdout.truncated,
        stderr: outcome.stderr.bytes.clone(),
    }
}

#[test]
fn every_status_is_the_same_in_threads_and_processes() {
    let threads = pool(sdk_tasks(), Isolation::Thread, 2);
    let processes = pool(sdk_tasks(), process(), 2);
    let (names, tasks): (Vec<_>, Vec<_>) = typed_cases()
        .into_iter()
        .map(|(n, t, s)| (n, (t, s)))
        .unzip();
    let in_threads: Vec<Outcome> = threads
        .map_tasks(tasks.iter().map(|(t, _)| t.clone()))
        .collect();
    let in_processes: Vec<Outcome> = processes
        .map_tasks(tasks.iter().map(|(t, _)| t.clone()))
        .collect();
    for ((name, (_, expected)), (thread, process)) in names
        .iter()
        .zip(&tasks)
        .zip(in_threads.iter().zip(&in_processes))
    {
        assert_eq!(
            &thread.status, expected,
            "{name} in a thread: {:?}",
            thread.message
        );
        assert_eq!(
            essence(thread),
            essence(process),
            "{name}: thread and process differ"
        );
    }
    assert_eq!(in_processes[0].decode::<u64>().unwrap(), 144);
    assert!(in_processes[17].stdout.truncated);
}

#[test]
fn commands_are_the_same_in_threads_and_processes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f.txt"), "granted").unwrap();
    let caps = Capabilities::default().dir(DirGrant::new(dir.path(), "/d"));
    let tasks = vec![
        Task::command().args(["exit", "7"]),
        Task::command()
            .args(["read", "/d/f.txt"])
            .capabilities(caps),
        Task::command().args(["read", "/etc/hostname"]),
        Task::command().args(["panic"]),
        Task::command()
            .args(["sleep", "3600000"])
            .limits(timeout(50)),
        Task::command()
            .args(["symlink", "../secret", "/d/link"])
            .dir(DirGrant::new(dir.path(), "/d")),
        Task::command().args(["env"]).env("A", "1").env("A", "2"),
        Task::command()
            .args(["list", "/d"])
            .dir(DirGrant::new(dir.path(), "/d"))
            .dir(DirGrant::new(dir.path(), "/x/../d/")),
        Task::command().args(["exit", "0"]).env("K", "v\0w"),
    ];
    let threads = pool(wasi_cmd(), Isolation::Thread, 2);
    let processes = pool(wasi_cmd(), process(), 2);
    let a: Vec<Outcome> = threads.map_tasks(tasks.clone()).collect();
    let b: Vec<Outcome> = processes.map_tasks(tasks).collect();
    for (thread, process) in a.iter().zip(&b) {
        assert_eq!(essence(thread), essence(process));
    }
    assert_eq!(b[0].status, ExitStatus::Exited(7));
    assert_eq!(b[1].stdout.text(), "granted");
    assert_eq!(b[2].status, ExitStatus::Exited(2), "no grant, no file");
    assert_eq!(b[4].status, ExitStatus::TimedOut);
    assert!(
        b[5].stderr.text().contains("cannot link"),
        "symlinks are refused"
    );
    assert_eq!(b[6].stdout.text(), "A=2\n", "the last value wins");
    assert_eq!(
        b[7].status,
        ExitStatus::BadInvocation,
        "one grant per guest path"
    );
    assert_eq!(b[8].status, ExitStatus::BadInvocation, "no NUL in env");
}

#[test]
fn cancel_reaches_a_task_in_a_worker_process() {
    let processes = pool(sdk_tasks(), process(), 1);
    let running = Started::new();
    let handle = processes
        .submit(announced_sleep(&running, 3_600_000))
        .unwrap();
    running.wait();
    let started = Instant::now();
    handle.cancel();
    assert_eq!(handle.wait().status, ExitStatus::Cancelled);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let next = processes
        .submit(Task::call("square", &3u64).unwrap())
        .unwrap();
    assert_eq!(
        next.wait().decode::<u64>().unwrap(),
        9,
        "the same worker serves on"
    );
}

/// A guest busy in its own code sees a cancel only through an epoch tick,
/// and the ticker ticks only when something may end: a cancel must reach
/// it, in both isolations, for a task that never calls the host (`spin`)
/// and has no deadline to wake the ticker.
#[test]
fn a_busy_task_without_a_deadline_is_cancelled_in_both_isolations() {
    let spinners: [(&str, &wasmproc::Module, Task); 3] = [
        ("SDK task", sdk_tasks(), Task::call("spin", &()).unwrap()),
        ("p1 command", wasi_cmd(), Task::command().args(["spin"])),
        ("component", wasi_cmd_p2(), Task::command().args(["spin"])),
    ];
    for (kind, module, spin) in spinners {
        for (isolation_name, isolation) in [("thread", Isolation::Thread), ("process", process())] {
            let name = format!("{kind}, {isolation_name}");
            let pool = pool(module, isolation, 2);
            let spinning = || pool.submit(spin.clone()).unwrap();
            let ends_cancelled = |handle: &wasmproc::TaskHandle| {
                handle
                    .wait_timeout(Duration::from_secs(5))
                    .map(|outcome| outcome.status)
            };
            // Cancelled while it spins, after the pool has been quiet a while.
            let first = spinning();
            std::thread::sleep(Duration::from_millis(300));
            first.cancel();
            assert_eq!(
                ends_cancelled(&first),
                Some(ExitStatus::Cancelled),
                "{name}"
            );
            // Cancelled a moment after it was submitted, in a worker that
            // has just ended another task.
            for _ in 0..5 {
                let next = spinning();
                std::thread::sleep(Duration::from_millis(20));
                next.cancel();
                assert_eq!(ends_cancelled(&next), Some(ExitStatus::Cancelled), "{name}");
            }
        }
    }
}

/// A writer that keeps what it is given, for a task's stdout.
#[derive(Clone, Default)]
struct Kept(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Kept {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Kept {
    fn output(&self) -> Output {
        Output::Writer(self.0.clone() as std::sync::Arc<std::sync::Mutex<dyn std::io::Write + Send>>)
    }

    fn bytes(&self) -> Vec<u8> {
        self.0.lock().unwrap().clone()
    }
}

/// A stdin read from the host's side and outputs written there stream to
/// and from a worker process as the guest reads and writes, in any amount:
/// the same bytes as in a thread, past every capture cap.
#[test]
fn streamed_stdin_and_output_are_relayed_to_a_worker_process() {
    let input: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    for isolation in [Isolation::Thread, process()] {
        let (stdout, stderr) = (Kept::default(), Kept::default());
        let cat = Task::command()
            .args(["cat"])
            .stdin(Stdin::reader(std::io::Cursor::new(input.clone())))
            .stdout(stdout.output());
        let flood = Task::command()
            .args(["say", "to both"])
            .stdout(stdout.output())
            .stderr(stderr.output());
        let workers = pool(wasi_cmd(), isolation.clone(), 1);
        let outcomes: Vec<Outcome> = workers.map_tasks([cat, flood]).collect();
        assert!(
            outcomes.iter().all(|o| o.success()),
            "{isolation:?}: {outcomes:?}"
        );
        let mut expected = input.clone();
        expected.extend_from_slice(b"to both\n");
        assert!(stdout.bytes() == expected, "{isolation:?}: stdout differs");
        assert_eq!(stderr.bytes(), b"to both\n", "{isolation:?}");
        assert!(
            outcomes[0].stdout.bytes.is_empty(),
            "streamed, not captured"
        );
    }
}

/// A guest waiting on a streamed stdin that never ends still ends at its
/// deadline, in a worker process as in a thread.
#[test]
fn a_guest_waiting_on_a_relayed_stdin_times_out() {
    struct Never;
    impl std::io::Read for Never {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            // A reader that never answers is the point: no handshake to wait for.
            std::thread::sleep(Duration::from_secs(3600));
            Ok(0)
        }
    }
    for isolation in [Isolation::Thread, process()] {
        let task = Task::command()
            .args(["cat"])
            .stdin(Stdin::reader(Never))
            .limits(timeout(200));
        let outcome = pool(wasi_cmd(), isolation.clone(), 1)
            .submit(task)
            .unwrap()
            .into_outcome();
        assert_eq!(outcome.status, ExitStatus::TimedOut, "{isolation:?}");
    }
}

#[test]
fn a_program_that_is_no_worker_is_reported() {
    let options = ProcessOptions::default()
        .executable(env!("CARGO_MANIFEST_DIR"))
        .retries(0);
    let processes = pool(sdk_tasks(), Isolation::Process(options), 1);
    let outcome = processes
        .submit(Task::call("square", &1u64).unwrap())
        .unwrap();
    let outcome = outcome.wait();
    assert_eq!(outcome.status, ExitStatus::WorkerLost);
    assert!(
        outcome
            .message
            .as_deref()
            .unwrap()
            .contains("cannot start the worker process"),
        "{:?}",
        outcome.message
    );
}

#[cfg(unix)]
mod supervision {
    use super::*;

    use wasmproc_tests::unix::{kill, wait_for};

    /// A worker killed with SIGKILL mid-task: that task gets `WorkerLost`,
    /// every other task completes, the pool keeps its size.
    #[test]
    fn kill_9_a_worker_mid_task() {
        let options = ProcessOptions::default().executable(pool_host()).retries(0);
        let processes = pool(sdk_tasks(), Isolation::Process(options), 2);
        let running = Started::new();
        let victim = processes
            .submit(announced_sleep(&running, 3_600_000))
            .unwrap();
        // In its worker before the others come, so it keeps that one busy.
        running.wait();
        let others: Vec<_> = (0..20u64)
            .map(|i| processes.submit(Task::call("square", &i).unwrap()).unwrap())
            .collect();
        // The victim's worker is the one still busy after the quick ones.
        for (i, other) in others.iter().enumerate() {
            assert_eq!(other.wait().decode::<u64>().unwrap(), (i * i) as u64);
        }
        assert!(!victim.is_finished());
        let before = processes.worker_pids();
        for pid in &before {
            // Only one worker is in the hour-long sleep; kill both to be
            // sure to hit it: the idle one is simply replaced.
            kill(*pid, "-9");
        }
        let outcome = victim.wait();
        assert_eq!(outcome.status, ExitStatus::WorkerLost);
        assert!(
            outcome.message.as_deref().unwrap().contains("died"),
            "{:?}",
            outcome.message
        );
        wait_for("two new workers", || {
            let pids = processes.worker_pids();
            pids.len() == 2 && pids.iter().all(|p| !before.contains(p))
        });
        let after: Vec<_> = (0..10u64)
            .map(|i| processes.submit(Task::call("square", &i).unwrap()).unwrap())
            .collect();
        assert!(
            after.iter().all(|h| h.wait().success()),
            "the pool serves on"
        );
    }

    /// A task cancelled while it runs, in a worker that does not answer
    /// (stopped), ends cancelled once the worker is killed after the
    /// grace: it is not run again, nor said to have never started.
    #[test]
    fn a_running_task_cancelled_in_a_stuck_worker_ends_cancelled() {
        let options = ProcessOptions::default()
            .executable(pool_host())
            .retries(1)
            .grace(Duration::from_millis(300));
        let processes = pool(sdk_tasks(), Isolation::Process(options), 1);
        wait_for("a worker", || processes.worker_pids().len() == 1);
        let worker = processes.worker_pids()[0];
        let running = Started::new();
        let handle = processes
            .submit(announced_sleep(&running, 3_600_000))
            .unwrap();
        running.wait();
        kill(worker, "-STOP");
        handle.cancel();
        let outcome = handle
            .wait_timeout(Duration::from_secs(30))
            .expect("ends after the grace");
        assert_eq!(outcome.status, ExitStatus::Cancelled);
        let message = outcome.message.as_deref().unwrap_or_default();
        assert!(message.contains("cancelled while it ran"), "{message}");
        // The stopped worker was killed, and a new one serves.
        wait_for("a new worker", || {
            processes.worker_pids().iter().any(|pid| *pid != worker)
        });
    }

    /// With retries, a task whose worker died runs again in a new one.
    #[test]
    fn a_task_is_retried_in_a_new_worker() {
        let options = ProcessOptions::default().executable(pool_host()).retries(1);
        let processes = pool(sdk_tasks(), Isolation::Process(options), 1);
        wait_for("a worker", || processes.worker_pids().len() == 1);
        let first = processes.worker_pids()[0];
        let running = Started::new();
        let handle = processes.submit(announced_sleep(&running, 1_000)).unwrap();
        // Killed mid-task, not before the task reached it.
        running.wait();
        kill(first, "-9");
        assert_eq!(
            handle.wait().decode::<u64>().unwrap(),
            1_000,
            "the retry succeeded"
        );
    }

    /// A task whose workers keep dying trips the crash-loop breaker and
    /// fails for good, with a message that says so.
    #[test]
    fn crash_loop_breaker_fails_a_poison_task() {
        let options = ProcessOptions::default()
            .executable(pool_host())
            .retries(100)
            .restart_intensity(3, Duration::from_secs(60));
        let processes = pool(sdk_tasks(), Isolation::Process(options), 1);
        let running = Started::new();
        let handle = processes
            .submit(announced_sleep(&running, 3_600_000))
            .unwrap();
        // Each time the task runs (again) in a worker, that worker dies
        // under it: every death counts against the task.
        let mut killed = Vec::new();
        while !handle.is_finished() {
            if running.wait_timeout(Duration::from_millis(50)).is_none() {
                continue;
            }
            let pids = processes.worker_pids();
            let busy: Vec<u32> = pids.into_iter().filter(|p| !killed.contains(p)).collect();
            assert_eq!(busy.len(), 1, "one worker runs the task: {busy:?}");
            kill(busy[0], "-9");
            killed.push(busy[0]);
            assert!(killed.len() < 50, "the breaker never tripped");
        }
        let outcome = handle.wait();
        assert_eq!(outcome.status, ExitStatus::WorkerLost);
        let message = outcome.message.as_deref().unwrap();
        assert!(
            message.contains("died 4 times within 1m") && message.contains("fails for good"),
            "{message}"
        );
    }

    /// Killing the parent closes the workers' pipes: they exit too.
    #[test]
    fn no_worker_outlives_a_killed_parent() {
        let parent = std::process::Command::new(pool_host())
            .args(["3600000", "3600000"])
            .env("POOL_HOST_MODULE", wasmproc_tests::guests::SDK_TASKS)
            .env("POOL_HOST_TASK", "sleep_ms")
            .env("POOL_HOST_WORKERS", "2")
            .env("WASMPROC_CACHE_DIR", wasmproc_tests::suite_cache_dir())
            .env(
                "WASMPROC_CACHE_KEY_FILE",
                wasmproc_tests::suite_cache_key_file(),
            )
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        wasmproc_tests::unix::kill_and_see_workers_exit(parent, 2);
    }
}

/// Worker processes get every setting of the pool's runtime: a recursion
/// that fits the default wasm stack but not a small one traps in both
/// isolations when the runtime's stack is small.
#[test]
fn a_custom_stack_limit_holds_in_worker_processes() {
    const DEPTH: u64 = 20_000;
    let deep = || Task::call("recurse", &DEPTH).unwrap();
    assert!(
        sdk_tasks().run(&deep()).success(),
        "the recursion fits the default stack"
    );
    let small_stack = wasmproc::Runtime::builder()
        .cache_dir(wasmproc_tests::suite_cache_dir())
        .max_wasm_stack(128 << 10)
        .build()
        .unwrap();
    let module = small_stack.load(wasmproc_tests::guests::SDK_TASKS).unwrap();
    for isolation in [Isolation::Thread, process()] {
        let outcome = pool(&module, isolation.clone(), 1)
            .submit(deep())
            .unwrap()
            .into_outcome();
        assert_eq!(
            outcome.status,
            ExitStatus::Trapped(TrapKind::StackOverflow),
            "{isolation:?}: {:?}",
            outcome.message
        );
    }
}

/// A program that builds a process pool but forgets to call
/// `run_worker_if_requested` would run itself again in each worker, which
/// builds the pool again: a tree of processes without end. Instead its
/// workers refuse to build a pool, its tasks end `WorkerLost` with the fix
/// in the message, and it exits on its own.
#[test]
fn a_program_that_forgot_the_worker_hook_is_told_and_spawns_no_tree() {
    let started = Instant::now();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_forgetful-host"))
        .args(["3", "4", "5"])
        .env("POOL_HOST_MODULE", wasmproc_tests::guests::SDK_TASKS)
        .env("POOL_HOST_TASK", "square")
        .env("POOL_HOST_WORKERS", "2")
        .env("WASMPROC_CACHE_DIR", wasmproc_tests::suite_cache_dir())
        .env(
            "WASMPROC_CACHE_KEY_FILE",
            wasmproc_tests::suite_cache_key_file(),
        )
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "one outcome per task: {stdout}");
    for line in &lines {
        assert!(line.starts_with("139 "), "{line}");
        assert!(line.contains("run_worker_if_requested"), "{line}");
    }
    // Each worker it started said why it would not build a pool, and none
    // started workers of its own: every refusal comes from the first level.
    let refusals = stderr
        .matches("was started as a wasmproc worker process")
        .count();
    assert!(refusals >= 1, "{stderr}");
    assert!(
        refusals <= 16,
        "a bounded number of starts, not a tree: {refusals}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
}

/// Long tasks go to whichever worker is free, never queued behind a busy
/// one while another idles: 4 tasks of 600 ms on 2 workers end in about two
/// task lengths (four if one worker held them all). Short tasks run first,
/// so that the pool has learned to batch and pipeline them.
#[test]
fn long_tasks_spread_over_the_free_workers() {
    const LONG_MS: u64 = 600;
    for isolation in [Isolation::Thread, process()] {
        let name = format!("{isolation:?}");
        let pool = pool(sdk_tasks(), isolation, 2);
        let warm: Vec<Outcome> = pool.map("square", 0..500u64).collect();
        assert!(warm.iter().all(Outcome::success), "{name}");

        let started = Instant::now();
        let mapped: Vec<Outcome> = pool.map("sleep_ms", [LONG_MS; 4]).collect();
        let by_map = started.elapsed();

        let started = Instant::now();
        let handles: Vec<_> = (0..4)
            .map(|_| {
                pool.submit(Task::call("sleep_ms", &LONG_MS).unwrap())
                    .unwrap()
            })
            .collect();
        let submitted: Vec<Outcome> = handles.iter().map(|h| h.wait().clone()).collect();
        let by_submit = started.elapsed();

        for outcome in mapped.iter().chain(&submitted) {
            assert_eq!(outcome.status, ExitStatus::Exited(0), "{name}: {outcome:?}");
        }
        // Two task lengths plus scheduling is 1.2 s; a hoarding worker
        // takes 2.4 s.
        for (how, took) in [("map", by_map), ("submit", by_submit)] {
            assert!(
                took < Duration::from_millis(3 * LONG_MS + 150),
                "{name}, {how}: 4 tasks of {LONG_MS} ms on 2 workers took {took:?}: \
                 a worker held tasks while the other was idle"
            );
        }
    }
}

/// A handle awaited in async code and a submit with a callback, in both
/// isolations: the same outcomes, cancellation included.
#[test]
fn handles_are_awaited_and_callbacks_called_in_both_isolations() {
    let executor = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    for isolation in [Isolation::Thread, process()] {
        let pool = pool(sdk_tasks(), isolation.clone(), 2);
        // Awaited: two tasks at once on one executor thread.
        let (a, b) = executor.block_on(async {
            let a = pool.submit(Task::call("square", &7u64).unwrap()).unwrap();
            let b = pool
                .submit(Task::call("sleep_ms", &50u64).unwrap())
                .unwrap();
            tokio::join!(a, b)
        });
        assert_eq!(a.decode::<u64>().unwrap(), 49, "{isolation:?}");
        assert_eq!(b.status, ExitStatus::Exited(0), "{isolation:?}");

        // Cancelled while awaited.
        let cancelled = executor.block_on(async {
            // Cancelled once the task runs, from outside the executor,
            // which is busy awaiting it.
            let started = Started::new();
            let handle = pool.submit(announced_sleep(&started, 60_000)).unwrap();
            let canceller = handle.clone();
            tokio::task::spawn_blocking(move || {
                started.wait();
                canceller.cancel();
            });
            handle.await
        });
        assert_eq!(cancelled.status, ExitStatus::Cancelled, "{isolation:?}");

        // Callbacks: success and failure alike, exactly once each.
        let (sender, received) = crossbeam_channel::unbounded();
        let mut handles = Vec::new();
        for task in [
            Task::call("square", &3u64).unwrap(),
            Task::call("panics", &"no").unwrap(),
        ] {
            let sender = sender.clone();
            let handle = pool
                .submit_with_callback(task, move |outcome| {
                    sender.send(outcome.status).unwrap();
                })
                .unwrap();
            handles.push(handle);
        }
        for handle in &handles {
            handle.wait();
        }
        // Registered after the end: called at once, on this thread.
        let sender_late = sender.clone();
        handles[0].on_done(move |outcome| sender_late.send(outcome.status).unwrap());
        drop(sender);
        let mut statuses: Vec<ExitStatus> = received.iter().collect();
        statuses.sort_by_key(|status| status.code());
        assert_eq!(
            statuses,
            [
                ExitStatus::Exited(0),
                ExitStatus::Exited(0),
                ExitStatus::Exited(101)
            ],
            "{isolation:?}"
        );
    }
}

/// A worker process writes a tiny task's outcome whether or not the task
/// behind it ends: outcomes that pile up while the next task runs go out
/// by the worker's flusher, never held behind a task that does not end.
/// Short tasks run first, so that the pool batches and pipelines them.
#[test]
fn outcomes_are_not_held_behind_a_stuck_task_in_a_worker_process() {
    let pool = pool(sdk_tasks(), process(), 1);
    let warm: Vec<Outcome> = pool.map("square", 0..500u64).collect();
    assert!(warm.iter().all(Outcome::success));

    let squares = 1..=20u64;
    let tasks = squares
        .clone()
        .map(|n| Task::call("square", &n).unwrap())
        .chain([Task::call("sleep_ms", &3_600_000u64).unwrap()]);
    let mut results = pool.map_tasks(tasks);
    let token = results.cancel_token();
    // Should the squares never come, the map is cancelled after a minute,
    // which ends the sleep and lets them out late: the test then fails
    // instead of hanging for an hour.
    let (answered, watch) = crossbeam_channel::bounded::<()>(0);
    let watchdog = {
        let token = token.clone();
        std::thread::spawn(move || {
            let fired = watch.recv_timeout(Duration::from_secs(60)).is_err();
            if fired {
                token.cancel();
            }
            fired
        })
    };
    for n in squares {
        let outcome = results.next().expect("an outcome per task");
        assert_eq!(outcome.decode::<u64>().unwrap(), n * n, "{outcome:?}");
    }
    let _ = answered.send(());
    assert!(
        !watchdog.join().unwrap(),
        "the squares came only once the stuck task behind them was cancelled"
    );
    token.cancel();
    let stuck = results.next().expect("the stuck task's outcome");
    assert_eq!(stuck.status, ExitStatus::Cancelled, "{stuck:?}");
    assert!(results.next().is_none());
}

/// A map's chunk shares one instance in a worker process as in a thread
/// worker: the same calls counted, a fresh instance after a panic, each
/// task's own limits and captured output.
#[test]
fn chunks_share_an_instance_in_both_isolations() {
    for isolation in [Isolation::Thread, process()] {
        let name = format!("{isolation:?}");
        let pool = pool(sdk_tasks(), isolation, 1);
        let counted: Vec<u32> = pool
            .map("calls", vec![(); 6])
            .chunksize(3)
            .map(|outcome| outcome.decode().unwrap())
            .collect();
        assert_eq!(
            counted,
            [1, 2, 3, 1, 2, 3],
            "{name}: one instance per chunk"
        );
        let alone: Vec<u32> = pool
            .map("calls", vec![(); 3])
            .map(|outcome| outcome.decode().unwrap())
            .collect();
        assert_eq!(alone, [1, 1, 1], "{name}: no chunk, a fresh instance each");

        let tasks = vec![
            Task::call("calls", &()).unwrap(),
            Task::call("panics", &"mid-chunk").unwrap(),
            Task::call("calls", &()).unwrap(),
            Task::call("spin", &()).unwrap().limits(timeout(100)),
            Task::call("calls", &()).unwrap(),
            Task::call("write_output", &(3usize, "a")).unwrap(),
            Task::call("calls", &()).unwrap(),
        ];
        let outcomes: Vec<Outcome> = pool.map_tasks(tasks).chunksize(7).collect();
        let statuses: Vec<ExitStatus> = outcomes.iter().map(|o| o.status).collect();
        assert_eq!(
            statuses,
            [
                ExitStatus::Exited(0),
                ExitStatus::Exited(101),
                ExitStatus::Exited(0),
                ExitStatus::TimedOut,
                ExitStatus::Exited(0),
                ExitStatus::Exited(0),
                ExitStatus::Exited(0),
            ],
            "{name}: {outcomes:?}"
        );
        assert_eq!(
            outcomes[2].decode::<u32>().unwrap(),
            1,
            "{name}: fresh after the panic"
        );
        assert_eq!(
            outcomes[4].decode::<u32>().unwrap(),
            1,
            "{name}: fresh after the timeout"
        );
        assert_eq!(outcomes[5].stdout.text(), "xxx", "{name}");
        assert_eq!(outcomes[5].stderr.text(), "a", "{name}");
        assert_eq!(
            outcomes[6].decode::<u32>().unwrap(),
            2,
            "{name}: shared after output"
        );
    }
}

/// Each task of a chunk in a worker process has its own time limit, not
/// the chunk: the pool starts a task's clock when the one before it ends,
/// so a chunk longer than one task's limit plus the grace is no overrun.
#[test]
fn a_chunk_longer_than_one_tasks_limit_is_not_an_overrun() {
    let options = ProcessOptions::default()
        .executable(pool_host())
        .grace(Duration::from_millis(200));
    let pool = pool(sdk_tasks(), Isolation::Process(options), 1);
    let tasks = (0..6).map(|_| {
        Task::call("sleep_ms", &150u64)
            .unwrap()
            .limits(timeout(300))
    });
    let outcomes: Vec<Outcome> = pool.map_tasks(tasks).chunksize(6).collect();
    for outcome in &outcomes {
        assert_eq!(outcome.decode::<u64>().unwrap(), 150, "{outcome:?}");
    }
}

/// Cancelling a chunked map in a worker process ends each of its tasks
/// exactly once: those that ran with their value, the rest `Cancelled`,
/// and the worker serves the next map.
#[test]
fn a_cancelled_chunk_ends_each_task_once_in_a_worker_process() {
    let pool = pool(sdk_tasks(), process(), 1);
    let mut results = pool.map("sleep_ms", [200u64; 8]).chunksize(8);
    let first = results.next().expect("the first outcome");
    assert_eq!(first.decode::<u64>().unwrap(), 200, "{first:?}");
    results.cancel_token().cancel();
    let rest: Vec<Outcome> = results.collect();
    assert_eq!(rest.len(), 7, "{rest:?}");
    assert!(
        rest.iter().any(|o| o.status == ExitStatus::Cancelled),
        "{rest:?}"
    );
    for outcome in &rest {
        assert!(
            outcome.success() || outcome.status == ExitStatus::Cancelled,
            "{outcome:?}"
        );
    }
    let after: Vec<u64> = pool
        .map("square", 0..4u64)
        .chunksize(2)
        .map(|outcome| outcome.decode().unwrap())
        .collect();
    assert_eq!(after, [0, 1, 4, 9]);
}
