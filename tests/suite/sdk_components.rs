//! SDK guests built for wasm32-wasip2 through the library: components that
//! reach the host through the SDK's WIT contract (`guest/wit`) instead of
//! the core imports `wasmproc_v1`. The same guests as the core suites'
//! (`sdk-tasks`, `share-tasks`), the same answers, in both isolations.

use std::sync::OnceLock;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::json;
use wasmproc::{
    Entry, ErrorKind, ExitStatus, Isolation, Limits, Lock, Module, Pool, ProcessOptions, Queue,
    SharedRegion, Task, pipe,
};
use wasmproc_tests::{Started, guests, runtime, sdk_tasks};

use crate::pool_host;

fn sdk_tasks_p2() -> &'static Module {
    static MODULE: OnceLock<Module> = OnceLock::new();
    MODULE.get_or_init(|| runtime().load(guests::SDK_TASKS_P2).expect("it loads"))
}

fn share_tasks_p2() -> &'static Module {
    static MODULE: OnceLock<Module> = OnceLock::new();
    MODULE.get_or_init(|| runtime().load(guests::SHARE_TASKS_P2).expect("it loads"))
}

/// A pool of `workers` over `module` in each isolation.
fn pools(module: &Module, workers: usize) -> Vec<(&'static str, Pool)> {
    let process = ProcessOptions::default().executable(pool_host());
    [
        ("thread", Isolation::Thread),
        ("process", Isolation::Process(process)),
    ]
    .into_iter()
    .map(|(label, isolation)| {
        let pool = Pool::builder(module)
            .workers(workers)
            .isolation(isolation)
            .build()
            .unwrap();
        (label, pool)
    })
    .collect()
}

fn call(name: &str, arg: impl serde::Serialize) -> Task {
    Task::call(name, &arg).unwrap()
}

#[test]
fn an_sdk_component_lists_the_tasks_and_signatures_of_its_core_build() {
    let component = sdk_tasks_p2();
    assert!(component.is_component() && component.is_sdk_component() && !component.is_command());
    assert!(!sdk_tasks().is_sdk_component());
    let mut p2: Vec<_> = component.tasks().to_vec();
    let mut p1: Vec<_> = sdk_tasks().tasks().to_vec();
    p2.sort();
    p1.sort();
    assert_eq!(p2, p1);
    let square = component.signature("square").expect("recorded");
    assert_eq!(
        square.to_string(),
        sdk_tasks().signature("square").unwrap().to_string()
    );
    assert_eq!(
        component.resolve(&Entry::Task("square".into())).unwrap(),
        Entry::Task("square".into())
    );
    let missing = component.resolve(&Entry::Task("nope".into())).unwrap_err();
    assert_eq!(missing.kind(), &ErrorKind::CannotRun);
    assert!(
        missing.to_string().contains("has no task `nope`"),
        "{missing}"
    );
}

#[test]
fn results_failures_panics_misfits_and_limits_match_the_core_build_in_both_isolations() {
    for (label, pool) in pools(sdk_tasks_p2(), 1) {
        let run = |task: Task| pool.submit(task).unwrap().wait().clone();
        let summary = run(call(
            "summarize",
            json!({
                "id": 7, "customer": null,
                "lines": [{"sku": "apple", "qty": 3, "price_cents": 50}],
                "tags": {}, "shipping": "pickup", "discount": 0.0
            }),
        ));
        assert_eq!(
            summary.status,
            ExitStatus::Exited(0),
            "{label}: {summary:?}"
        );
        let summary: serde_json::Value = summary.decode().unwrap();
        assert_eq!(summary["total_cents"], 150, "{label}");

        let failed = run(call("fail_with", (7, "no stock")));
        assert_eq!(failed.status, ExitStatus::Exited(7), "{label}");
        assert_eq!(failed.message.as_deref(), Some("no stock"), "{label}");

        let panicked = run(call("panics", "boom"));
        assert_eq!(
            panicked.status,
            ExitStatus::Exited(101),
            "{label}: {panicked:?}"
        );
        assert!(panicked.panicked, "{label}");
        assert!(panicked.message.unwrap().contains("boom"), "{label}");

        let misfit = run(call("add", "not two numbers"));
        assert_eq!(
            misfit.status,
            ExitStatus::BadInvocation,
            "{label}: {misfit:?}"
        );
        assert!(misfit.argument_misfit().is_some(), "{label}: {misfit:?}");

        let timeout = Limits::default().timeout(Duration::from_millis(300));
        let slow = run(call("sleep_ms", 5000).limits(timeout));
        assert_eq!(slow.status, ExitStatus::TimedOut, "{label}");

        let small = Limits::default().max_memory(32 << 20);
        let greedy = run(call("allocate_mib", 100).limits(small));
        assert_eq!(greedy.status, ExitStatus::MemoryExceeded, "{label}");

        // Each task starts in a fresh instance, as in the core build.
        for _ in 0..2 {
            assert_eq!(
                run(call("calls", ())).decode::<u32>().unwrap(),
                1,
                "{label}"
            );
        }
    }
}

#[test]
fn queues_pipes_regions_and_locks_round_trip_in_both_isolations() {
    for (label, pool) in pools(share_tasks_p2(), 2) {
        let submit = |task: Task| pool.submit(task).unwrap();

        // A queue: a task produces, the host consumes; then the reverse.
        let jobs = Queue::<u64>::new(8);
        let producer = submit(call("produce", 100).share("jobs", &jobs));
        let taken: u64 = (0..100).map(|_| jobs.get().unwrap()).sum();
        assert_eq!(taken, (0..100).sum::<u64>(), "{label}");
        assert_eq!(producer.wait().decode::<u64>().unwrap(), 100, "{label}");
        let consumer = submit(call("consume", ()).share("jobs", &jobs));
        for i in 1..=50 {
            jobs.put(&i).unwrap();
        }
        jobs.close();
        let (sum, count) = consumer.wait().decode::<(u64, u64)>().unwrap();
        assert_eq!((sum, count), ((1..=50).sum(), 50), "{label}");

        // The task's pipe, both ways.
        let (mine, theirs) = pipe();
        let doubler = submit(call("doubler", 5).pipe(theirs));
        for x in 1..=5u64 {
            mine.send(&x).unwrap();
            assert_eq!(mine.recv::<u64>().unwrap(), 2 * x, "{label}");
        }
        assert_eq!(doubler.wait().decode::<u64>().unwrap(), 5, "{label}");

        // A region: atomic counts from two workers, bytes written and read.
        let counts = SharedRegion::new(64).unwrap();
        let tasks = (0..4).map(|_| call("count", 1000).share("counts", &counts));
        for outcome in pool.map_tasks(tasks) {
            assert_eq!(
                outcome.status,
                ExitStatus::Exited(0),
                "{label}: {outcome:?}"
            );
        }
        assert_eq!(
            counts.u64_at(0).unwrap().load(Ordering::SeqCst),
            4000,
            "{label}"
        );
        let written = submit(call("write_read", (10, "hello")).share("counts", &counts));
        assert_eq!(
            written.wait().decode::<String>().unwrap(),
            "hello",
            "{label}"
        );
        let mut bytes = [0; 5];
        counts.read(10, &mut bytes).unwrap();
        assert_eq!(&bytes, b"hello", "{label}");

        // A lock over a region, taken by two tasks and the host.
        let counted = SharedRegion::new(8).unwrap();
        let lock = Lock::new().unwrap();
        let locked = || {
            call("locked_count", 2000)
                .share("counts", &counted)
                .share("lock", &lock)
        };
        let handles = [submit(locked()), submit(locked())];
        for _ in 0..500 {
            let _held = lock.lock().unwrap();
            let word = counted.u64_at(0).unwrap();
            word.store(word.load(Ordering::SeqCst) + 1, Ordering::SeqCst);
        }
        for handle in handles {
            assert_eq!(handle.wait().status, ExitStatus::Exited(0), "{label}");
        }
        assert_eq!(
            counted.u64_at(0).unwrap().load(Ordering::SeqCst),
            4500,
            "{label}"
        );

        // What was not granted stays closed, and misuse is an error.
        let errors = submit(call("region_errors", ()).share("counts", &counts));
        let errors: Vec<String> = errors.wait().decode().unwrap();
        assert_eq!(errors.len(), 3, "{label}: {errors:?}");
    }
}

#[test]
fn an_sdk_component_without_initializers_says_so() {
    let refused = sdk_tasks_p2().initialize("anything", &()).unwrap_err();
    assert_eq!(refused.kind(), &ErrorKind::CannotRun);
    assert!(
        refused
            .to_string()
            .contains("has no initializer `anything`")
            && refused.to_string().contains("#[wasmproc_guest::init]"),
        "{refused}"
    );
}

#[test]
fn a_component_blocked_on_a_queue_is_timed_out_or_cancelled_and_loses_nothing() {
    for (label, pool) in pools(share_tasks_p2(), 2) {
        let submit = |task: Task| pool.submit(task).unwrap();
        let jobs = Queue::<u64>::new(4);
        let waiting = call("take_one", ()).share("jobs", &jobs);
        let limits = Limits::default().timeout(Duration::from_millis(200));
        let timed = submit(waiting.clone().limits(limits));
        assert_eq!(timed.wait().status, ExitStatus::TimedOut, "{label}");

        // Cancelled once it waits in the WIT import (it says so first).
        let started = Started::new();
        let cancelled = submit(started.grant(waiting.clone()));
        started.wait();
        cancelled.cancel();
        assert_eq!(cancelled.wait().status, ExitStatus::Cancelled, "{label}");

        // Neither took a value put afterwards: the next taker gets it.
        jobs.put(&7).unwrap();
        assert_eq!(
            submit(waiting).wait().decode::<u64>().unwrap(),
            7,
            "{label}"
        );
        let within = submit(call("take_within", 50).share("jobs", &jobs));
        assert_eq!(
            within.wait().decode::<Option<u64>>().unwrap(),
            None,
            "{label}"
        );
    }
}
