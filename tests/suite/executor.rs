//! The one interface over back ends (`Executor`), through a local pool in
//! both isolations: what the binary's `run` and `map` and the cluster's
//! client rely on.

use std::collections::BTreeSet;

use wasmproc::{
    CancelToken, Executor, ExitStatus, Isolation, MapOptions, Outcome, Pool, ProcessOptions, Task,
    TaskHandle,
};
use wasmproc_tests::{Started, announced_sleep, sdk_tasks};

fn pools() -> Vec<(&'static str, Pool)> {
    let process = ProcessOptions::default().executable(crate::pool_host());
    vec![
        (
            "thread",
            Pool::builder(sdk_tasks()).workers(2).build().unwrap(),
        ),
        (
            "process",
            Pool::builder(sdk_tasks())
                .workers(2)
                .isolation(Isolation::Process(process))
                .build()
                .unwrap(),
        ),
    ]
}

/// Generic over the back end, as a front end is.
fn squares(on: &impl Executor, options: MapOptions, count: u64) -> Vec<(usize, u64)> {
    let (tasks, results) = on.map_stream_with(
        options,
        Box::new(|_, outcome: Outcome| outcome.decode::<u64>().unwrap()),
    );
    std::thread::spawn(move || {
        for n in 0..count {
            tasks.send(Task::call("square", &n).unwrap()).unwrap();
        }
    });
    results.collect()
}

#[test]
fn maps_give_every_index_once_in_order_or_as_they_end() {
    for (isolation, pool) in pools() {
        let ordered = squares(&pool, MapOptions::new().chunksize(4), 200);
        let expected: Vec<(usize, u64)> = (0..200u64).map(|n| (n as usize, n * n)).collect();
        assert_eq!(ordered, expected, "{isolation}");

        let mut unordered = squares(&pool, MapOptions::new().unordered(true), 200);
        unordered.sort_unstable();
        assert_eq!(unordered, expected, "{isolation}");

        let typed: Vec<(usize, Outcome)> = pool.map_args("square", [3u64, 4]).collect();
        let indices: BTreeSet<usize> = typed.iter().map(|(index, _)| *index).collect();
        assert_eq!(indices, BTreeSet::from([0, 1]), "{isolation}");
        assert_eq!(typed[1].1.decode::<u64>().unwrap(), 16, "{isolation}");
    }
}

#[test]
fn run_waits_for_the_outcome_and_its_token_cancels() {
    for (isolation, pool) in pools() {
        let outcome = pool.run(Task::call("add", &(40, 2)).unwrap(), &CancelToken::new());
        assert_eq!(outcome.decode::<i64>().unwrap(), 42, "{isolation}");

        let started = Started::new();
        let token = CancelToken::new();
        let cancel = token.clone();
        let long = announced_sleep(&started, 60_000);
        let running = std::thread::scope(|scope| {
            let running = scope.spawn(|| pool.run(long, &token));
            started.wait();
            cancel.cancel();
            running.join().unwrap()
        });
        assert_eq!(running.status, ExitStatus::Cancelled, "{isolation}");
    }
}

#[test]
fn cancel_all_ends_what_runs_and_later_tasks_run() {
    for (isolation, pool) in pools() {
        let started = Started::new();
        let handle = Executor::submit(&pool, announced_sleep(&started, 60_000)).unwrap();
        started.wait();
        Executor::cancel_all(&pool);
        assert_eq!(handle.wait().status, ExitStatus::Cancelled, "{isolation}");
        let after = pool.run(Task::call("square", &9u64).unwrap(), &CancelToken::new());
        assert_eq!(after.decode::<u64>().unwrap(), 81, "{isolation}");
    }
}

#[test]
fn a_back_end_that_drops_a_task_reports_it_lost_never_hangs() {
    let (handle, completion): (TaskHandle, _) = TaskHandle::pending();
    assert!(handle.try_get().is_none());
    drop(completion);
    assert_eq!(handle.wait().status, ExitStatus::WorkerLost);

    let (handle, completion) = TaskHandle::pending();
    let watched = completion.cancel_token().clone();
    handle.cancel();
    assert!(
        watched.is_cancelled(),
        "the back end sees the handle's cancel"
    );
    completion.finish(Outcome::not_run(ExitStatus::Cancelled, "withdrawn"));
    assert_eq!(handle.wait().status, ExitStatus::Cancelled);
}
