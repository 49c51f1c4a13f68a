//! Limits end the task, whatever it is doing, with their own status.

use std::time::{Duration, Instant};

use wasmproc::{ExitStatus, Limits, Stdin, Task, TrapKind};
use wasmproc_tests::{sdk_tasks, wasi_cmd};

/// How late a timeout may end a task. The deadline itself is precise to a
/// millisecond; the margin absorbs a loaded CI machine.
const MARGIN: Duration = Duration::from_millis(400);

fn timed(task: &Task, module: &wasmproc::Module) -> (wasmproc::Outcome, Duration) {
    let started = Instant::now();
    let outcome = module.run(task);
    (outcome, started.elapsed())
}

#[test]
fn timeout_ends_a_busy_loop() {
    let limit = Duration::from_millis(200);
    let task = Task::call("spin", &())
        .unwrap()
        .limits(Limits::default().timeout(limit));
    let (outcome, took) = timed(&task, sdk_tasks());
    assert_eq!(outcome.status, ExitStatus::TimedOut);
    assert!(took >= limit && took < limit + MARGIN, "took {took:?}");
    assert!(outcome.message.unwrap().contains("200ms"));
}

#[test]
fn timeout_ends_a_guest_sleeping_for_an_hour() {
    let limit = Duration::from_millis(300);
    let task = Task::call("sleep_ms", &3_600_000u64)
        .unwrap()
        .limits(Limits::default().timeout(limit));
    let (outcome, took) = timed(&task, sdk_tasks());
    assert_eq!(outcome.status, ExitStatus::TimedOut);
    assert!(took >= limit && took < limit + MARGIN, "took {took:?}");
}

#[test]
fn timeout_ends_a_command_sleeping_for_an_hour() {
    let limit = Duration::from_millis(300);
    let task = Task::command()
        .args(["sleep", "3600000"])
        .limits(Limits::default().timeout(limit));
    let (outcome, took) = timed(&task, wasi_cmd());
    assert_eq!(outcome.status, ExitStatus::TimedOut);
    assert!(took < limit + MARGIN, "took {took:?}");
}

#[test]
fn a_task_within_its_timeout_completes() {
    let task = Task::call("sleep_ms", &20u64)
        .unwrap()
        .limits(Limits::default().timeout(Duration::from_secs(10)));
    assert_eq!(sdk_tasks().run(&task).decode::<u64>().unwrap(), 20);
}

#[test]
fn stdin_is_readable_to_its_end() {
    let task = Task::call("read_stdin", &())
        .unwrap()
        .stdin(Stdin::Bytes((&b"abc"[..]).into()));
    assert_eq!(sdk_tasks().run(&task).decode::<String>().unwrap(), "abc");
}

#[test]
fn fuel_is_metered_and_reported() {
    let task = Task::call("count_to", &1000u64)
        .unwrap()
        .limits(Limits::default().fuel(10_000_000));
    let outcome = sdk_tasks().run(&task);
    assert_eq!(outcome.status, ExitStatus::Exited(0));
    let used = outcome.fuel_used.expect("fuel is reported when metered");
    assert!(used > 1000 && used < 10_000_000, "used {used}");

    let unmetered = sdk_tasks().run(&Task::call("count_to", &1000u64).unwrap());
    assert_eq!(unmetered.fuel_used, None);
}

#[test]
fn fuel_runs_out() {
    let task = Task::call("count_to", &1_000_000_000u64)
        .unwrap()
        .limits(Limits::default().fuel(50_000));
    let outcome = sdk_tasks().run(&task);
    assert_eq!(outcome.status, ExitStatus::FuelExhausted);
    assert_eq!(outcome.fuel_used, Some(50_000));
}

#[test]
fn memory_limit_ends_a_memory_bomb_and_reports_the_peak() {
    let limit = 32u64 << 20;
    let task = Task::call("allocate_mib", &1024usize)
        .unwrap()
        .limits(Limits::default().max_memory(limit));
    let outcome = sdk_tasks().run(&task);
    assert_eq!(outcome.status, ExitStatus::MemoryExceeded);
    assert!(outcome.peak_memory_bytes <= limit);
    // What it asked for, beside what it got.
    let asked = outcome.memory_asked_bytes.expect("the size asked for");
    assert!(asked > limit, "asked {asked}");
    assert!(
        outcome.peak_memory_bytes > 16 << 20,
        "peak {}",
        outcome.peak_memory_bytes
    );
    let message = outcome.message.unwrap();
    assert!(
        message.contains("over its limit of 32") && message.contains("MiB"),
        "{message}"
    );
}

#[test]
fn memory_within_the_limit_is_fine() {
    let task = Task::call("allocate_mib", &4usize)
        .unwrap()
        .limits(Limits::default().max_memory(64 << 20));
    assert_eq!(sdk_tasks().run(&task).decode::<usize>().unwrap(), 4);
}

#[test]
fn deep_recursion_overflows_the_stack() {
    let outcome = sdk_tasks().run(&Task::call("recurse", &100_000_000u64).unwrap());
    assert_eq!(outcome.status, ExitStatus::Trapped(TrapKind::StackOverflow));
    let backtrace = outcome.backtrace.expect("traps carry a wasm backtrace");
    assert!(backtrace.contains("down"), "{backtrace}");
}

#[test]
fn shallow_recursion_is_fine() {
    fn down(n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            down(n - 1).wrapping_mul(n | 1).wrapping_sub(n)
        }
    }
    let outcome = sdk_tasks().run(&Task::call("recurse", &100u64).unwrap());
    assert_eq!(outcome.decode::<u64>().unwrap(), down(100));
}

#[test]
fn an_unrepresentably_long_timeout_is_no_timeout() {
    let task = Task::call("square", &4u64)
        .unwrap()
        .limits(Limits::default().timeout(Duration::MAX));
    assert_eq!(sdk_tasks().run(&task).decode::<u64>().unwrap(), 16);
}

#[test]
fn zero_limits_are_bad_invocations() {
    for limits in [
        Limits::default().timeout(Duration::ZERO),
        Limits::default().fuel(0),
        Limits::default().max_memory(1000),
    ] {
        let outcome = sdk_tasks().run(&Task::call("square", &1u64).unwrap().limits(limits));
        assert_eq!(outcome.status, ExitStatus::BadInvocation);
    }
}

#[test]
fn out_of_bounds_access_traps() {
    let outcome = sdk_tasks().run(&Task::call("out_of_bounds", &()).unwrap());
    assert_eq!(
        outcome.status,
        ExitStatus::Trapped(TrapKind::MemoryOutOfBounds)
    );
    assert_eq!(
        outcome.message.as_deref(),
        Some("wasm trap: out of bounds memory access")
    );
    // Frames name the module and the guest's functions, innermost first.
    let backtrace = outcome.backtrace.unwrap();
    let frames: Vec<&str> = backtrace
        .lines()
        .filter(|line| line.contains("sdk_tasks.wasm!"))
        .collect();
    assert!(frames.len() >= 2, "{backtrace}");
    assert!(
        frames
            .iter()
            .any(|f| f.ends_with("!wasmproc_task:out_of_bounds")),
        "{backtrace}"
    );
}
