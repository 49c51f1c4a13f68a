//! The pool: submit, handles, map, chunks, shutdown, and no task lost.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wasmproc::{Capabilities, ErrorKind, ExitStatus, Limits, Pool, Shutdown, Task, TrapKind};
use wasmproc_tests::{Started, announced_sleep, sdk_tasks, wasi_cmd};

fn pool(workers: usize) -> Pool {
    Pool::builder(sdk_tasks()).workers(workers).build().unwrap()
}

fn sleep_task(ms: u64) -> Task {
    Task::call("sleep_ms", &ms).unwrap()
}

#[test]
fn submit_and_wait() {
    let pool = pool(2);
    let handle = pool.submit(Task::call("square", &9u64).unwrap()).unwrap();
    assert_eq!(handle.wait().decode::<u64>().unwrap(), 81);
    assert!(handle.is_finished());
    assert_eq!(handle.try_get().unwrap().status, ExitStatus::Exited(0));
    assert_eq!(handle.into_outcome().decode::<u64>().unwrap(), 81);
}

#[test]
fn wait_timeout_only_stops_the_waiting() {
    let pool = pool(1);
    let handle = pool.submit(sleep_task(300)).unwrap();
    assert!(handle.wait_timeout(Duration::from_millis(20)).is_none());
    assert!(handle.try_get().is_none() && !handle.is_finished());
    let outcome = handle
        .wait_timeout(Duration::from_secs(30))
        .expect("ends within 30s");
    assert_eq!(outcome.decode::<u64>().unwrap(), 300);
}

#[test]
fn cancel_a_queued_task_and_a_running_one() {
    let pool = pool(1);
    let started = Started::new();
    let running = pool.submit(announced_sleep(&started, 3_600_000)).unwrap();
    let queued = pool.submit(Task::call("calls", &()).unwrap()).unwrap();
    // The first is running (it says so) when the second is cancelled.
    started.wait();
    queued.cancel();
    // A queued task ends at once, not when a worker comes free.
    assert_eq!(
        queued
            .wait_timeout(Duration::from_secs(5))
            .map(|outcome| outcome.status),
        Some(ExitStatus::Cancelled)
    );
    let started = Instant::now();
    running.cancel();
    assert_eq!(running.wait().status, ExitStatus::Cancelled);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a blocked guest ends at once"
    );
    let queued = queued.wait();
    assert_eq!(queued.status, ExitStatus::Cancelled);
    assert!(
        queued
            .message
            .as_deref()
            .unwrap()
            .contains("before it started")
    );
    // The worker serves on.
    let after = pool.submit(Task::call("square", &5u64).unwrap()).unwrap();
    assert_eq!(after.wait().decode::<u64>().unwrap(), 25);
}

#[test]
fn map_yields_in_input_order() {
    let pool = pool(3);
    let squares: Vec<u64> = pool
        .map("square", 0..500u64)
        .map(|o| o.decode().unwrap())
        .collect();
    assert_eq!(squares, (0..500u64).map(|x| x * x).collect::<Vec<_>>());
}

#[test]
fn map_keeps_order_when_early_tasks_are_slow() {
    let pool = pool(3);
    let delays = [200u64, 0, 0, 100, 0, 0, 0, 50];
    let results: Vec<u64> = pool
        .map("sleep_ms", delays)
        .map(|o| o.decode().unwrap())
        .collect();
    assert_eq!(results, delays);
}

/// A map keeps more tasks in flight than the pool's queue holds: the tasks
/// past the queue must not hold up outcomes that have already arrived.
#[test]
fn a_quick_result_is_not_held_up_by_long_tasks_waiting_for_queue_room() {
    for isolation in both_isolations() {
        let pool = Pool::builder(sdk_tasks())
            .workers(1)
            .isolation(isolation.clone())
            .build()
            .unwrap();
        let started = Instant::now();
        let delays = std::iter::once(10u64).chain(std::iter::repeat_n(60_000, 30));
        let mut results = pool.map("sleep_ms", delays);
        let first = results.next().expect("an outcome");
        assert_eq!(first.decode::<u64>().unwrap(), 10, "{isolation:?}");
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{isolation:?}: the first outcome took {:?}: it waited for a 60 s task to free the queue",
            started.elapsed()
        );
        // Dropping the rest cancels them.
    }
}

/// A queue of no room hands each job straight to a worker, so it always
/// looks empty: the pool must still start a second worker for a job that
/// waits there while the first is busy, and a map keeps both busy.
#[test]
fn a_map_over_a_queue_of_no_room_uses_every_worker() {
    for isolation in both_isolations() {
        let pool = Pool::builder(sdk_tasks())
            .workers(2)
            .queue_bound(0)
            .isolation(isolation.clone())
            .build()
            .unwrap();
        let started = Instant::now();
        let results: Vec<u64> = pool
            .map("sleep_ms", [1500u64, 1500])
            .map(|outcome| outcome.decode().unwrap())
            .collect();
        assert_eq!(results, [1500, 1500], "{isolation:?}");
        assert!(
            started.elapsed() < Duration::from_millis(2700),
            "{isolation:?}: two 1.5 s tasks on two workers took {:?}: one ran after the other",
            started.elapsed()
        );
    }
}

/// Thread workers, and worker processes (this test binary as their host).
fn both_isolations() -> [wasmproc::Isolation; 2] {
    let process = wasmproc::ProcessOptions::default().executable(crate::pool_host());
    [
        wasmproc::Isolation::Thread,
        wasmproc::Isolation::Process(process),
    ]
}

#[test]
fn map_pulls_inputs_lazily_from_an_endless_iterator() {
    let pool = Pool::builder(sdk_tasks())
        .workers(2)
        .queue_bound(4)
        .build()
        .unwrap();
    let pulled = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&pulled);
    let endless = (0u64..).inspect(move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
    });
    let first: Vec<u64> = pool
        .map("square", endless)
        .take(20)
        .map(|o| o.decode().unwrap())
        .collect();
    assert_eq!(first[19], 361);
    let pulled = pulled.load(Ordering::SeqCst);
    // The window holds 8 submissions per worker; once tasks prove short,
    // a submission is a batch of up to 32 of them.
    assert!(
        pulled <= 20 + 16 * 32,
        "pulled {pulled} inputs for 20 results: the window bounds it"
    );
}

/// A slow first task does not let an ordered map pull its whole input:
/// the finished outcomes it holds back count against its window.
#[test]
fn an_ordered_map_holds_back_a_bounded_number_of_results() {
    let pool = pool(2);
    let pulled = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&pulled);
    let tasks = std::iter::once(sleep_task(1500)).chain((0..100_000u64).map(move |i| {
        counter.fetch_add(1, Ordering::SeqCst);
        Task::call("square", &i).unwrap()
    }));
    let mut results = pool.map_tasks(tasks);
    let first = std::thread::scope(|scope| {
        let waiting = scope.spawn(|| results.next());
        // Not a handshake but the point: the map has this long to pull
        // more than its window while the first task still runs.
        std::thread::sleep(Duration::from_millis(800));
        let pulled_while_waiting = pulled.load(Ordering::SeqCst);
        assert!(
            !waiting.is_finished(),
            "the first task still runs when the inputs are counted"
        );
        // The window: 8 batches per worker (16 here), a batch of short
        // tasks at most 32 of them (`map.rs`'s `MAX_BATCH`).
        assert!(
            pulled_while_waiting <= 16 * 32,
            "{pulled_while_waiting} inputs pulled while the first task ran"
        );
        waiting.join().unwrap()
    });
    assert!(first.unwrap().success());
    drop(results);
}

/// `map_stream`: each result comes out while the producer still waits to
/// send the next task (a `tail -f`, a socket), not when the input ends.
#[test]
fn map_stream_yields_each_result_while_the_producer_waits() {
    let pool = pool(2);
    let (tasks, outcomes) = pool.map_stream();
    let (answered, answer) = crossbeam_channel::unbounded::<u64>();
    std::thread::scope(|scope| {
        let producer = scope.spawn(move || {
            for n in 1..=3u64 {
                tasks.send(Task::call("square", &n).unwrap()).unwrap();
                // The next task only after this one's result is out.
                let seen = answer.recv_timeout(Duration::from_secs(20));
                assert_eq!(seen, Ok(n * n), "the result of task {n} was held back");
            }
        });
        for outcome in outcomes {
            answered.send(outcome.decode().unwrap()).unwrap();
        }
        producer.join().unwrap();
    });
}

#[test]
fn map_stream_unordered_ends_when_the_senders_are_dropped() {
    let pool = pool(2);
    let (tasks, outcomes) = pool.map_stream_unordered();
    let second = tasks.clone();
    std::thread::spawn(move || {
        for i in 0..50u64 {
            let sender = if i % 2 == 0 { &tasks } else { &second };
            sender.send(Task::call("square", &i).unwrap()).unwrap();
        }
    });
    let mut seen: Vec<(usize, u64)> = outcomes
        .chunksize(4)
        .map(|(i, o)| (i, o.decode().unwrap()))
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        (0..50).map(|i| (i, (i * i) as u64)).collect::<Vec<_>>()
    );
}

#[test]
fn map_unordered_gives_every_index_once() {
    let pool = pool(3);
    let mut seen: Vec<(usize, u64)> = pool
        .map_unordered("square", 0..300u64)
        .map(|(index, outcome)| (index, outcome.decode().unwrap()))
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        (0..300).map(|i| (i, (i * i) as u64)).collect::<Vec<_>>()
    );
}

#[test]
fn map_of_commands_and_of_unserializable_args() {
    let pool = Pool::builder(wasi_cmd()).workers(2).build().unwrap();
    let tasks = (0..20).map(|i| Task::command().args(["exit", &(i % 3).to_string()]));
    let codes: Vec<ExitStatus> = pool.map_tasks(tasks).map(|o| o.status).collect();
    assert_eq!(
        codes,
        (0..20)
            .map(|i| ExitStatus::Exited(i % 3))
            .collect::<Vec<_>>()
    );

    let sdk = pool_for_sdk();
    // A map with non-string keys cannot become JSON: that item alone fails.
    let bad: HashMap<Vec<u8>, u8> = HashMap::from([(vec![1], 1)]);
    let args = vec![json!(1), json!({"two": [2]})];
    let mut outcomes = sdk.map("echo", args).collect::<Vec<_>>();
    outcomes.extend(sdk.map("echo", [bad]));
    assert_eq!(outcomes[0].decode::<Value>().unwrap(), json!(1));
    assert_eq!(outcomes[1].decode::<Value>().unwrap(), json!({"two": [2]}));
    assert_eq!(outcomes[2].status, ExitStatus::BadInvocation);
    let message = outcomes[2].message.as_deref().unwrap();
    assert!(message.contains("cannot be serialized"), "{message}");
}

fn pool_for_sdk() -> Pool {
    pool(2)
}

#[test]
fn chunks_share_an_instance_and_recover_from_failures() {
    let pool = pool(1);
    let shared: Vec<u32> = pool
        .map("calls", vec![(); 5])
        .chunksize(5)
        .map(|o| o.decode().unwrap())
        .collect();
    assert_eq!(
        shared,
        [1, 2, 3, 4, 5],
        "one instance served the whole chunk"
    );

    let tasks = vec![
        Task::call("calls", &()).unwrap(),
        Task::call("panics", "mid-chunk").unwrap(),
        Task::call("calls", &()).unwrap(),
        Task::call("square", &"not a number").unwrap(),
        Task::call("calls", &()).unwrap(),
    ];
    let outcomes: Vec<_> = pool.map_tasks(tasks).chunksize(5).collect();
    assert_eq!(outcomes[0].decode::<u32>().unwrap(), 1);
    assert_eq!(outcomes[1].status, ExitStatus::Exited(101));
    assert_eq!(
        outcomes[2].decode::<u32>().unwrap(),
        1,
        "a fresh instance after the panic"
    );
    assert_eq!(outcomes[3].status, ExitStatus::BadInvocation);
    assert_eq!(
        outcomes[4].decode::<u32>().unwrap(),
        2,
        "bad input does not spoil the instance"
    );
}

#[test]
fn chunked_tasks_keep_their_own_limits_and_output() {
    let pool = pool(1);
    let tasks = vec![
        Task::call("write_output", &(3usize, "a")).unwrap(),
        Task::call("spin", &())
            .unwrap()
            .limits(Limits::default().timeout(Duration::from_millis(100))),
        Task::call("write_output", &(5usize, "b")).unwrap(),
    ];
    let outcomes: Vec<_> = pool.map_tasks(tasks).chunksize(3).collect();
    assert_eq!(
        (
            outcomes[0].stdout.text().as_ref(),
            outcomes[0].stderr.text().as_ref()
        ),
        ("xxx", "a")
    );
    assert_eq!(outcomes[1].status, ExitStatus::TimedOut);
    assert_eq!(
        (
            outcomes[2].stdout.text().as_ref(),
            outcomes[2].stderr.text().as_ref()
        ),
        ("xxxxx", "b")
    );
}

#[test]
fn pool_defaults_apply_unless_a_task_has_its_own() {
    let pool = Pool::builder(sdk_tasks())
        .workers(2)
        .limits(Limits::default().timeout(Duration::from_millis(500)))
        .capabilities(Capabilities::default().env("FROM_POOL", "yes"))
        .build()
        .unwrap();
    let defaulted = pool.submit(sleep_task(10_000)).unwrap();
    assert_eq!(defaulted.wait().status, ExitStatus::TimedOut);
    let own = pool
        .submit(sleep_task(100).limits(Limits::default().timeout(Duration::from_secs(30))))
        .unwrap();
    assert_eq!(own.wait().decode::<u64>().unwrap(), 100);
    let env = pool
        .submit(Task::call("env_var", "FROM_POOL").unwrap())
        .unwrap();
    assert_eq!(
        env.wait().decode::<Option<String>>().unwrap().as_deref(),
        Some("yes")
    );
}

#[test]
fn closed_pool_refuses_new_tasks_and_join_drains() {
    let pool = pool(2);
    let handles: Vec<_> = (0..6)
        .map(|_| pool.submit(sleep_task(30)).unwrap())
        .collect();
    pool.join();
    assert!(
        handles
            .iter()
            .all(|h| h.try_get().is_some_and(|o| o.success()))
    );
    let error = pool
        .submit(Task::call("square", &1u64).unwrap())
        .unwrap_err();
    assert_eq!(error.kind(), &ErrorKind::PoolClosed);
    let refused: Vec<_> = pool.map("square", 0..3u64).collect();
    assert!(
        refused.iter().all(|o| o.status == ExitStatus::Cancelled),
        "{refused:?}"
    );
}

#[test]
fn shutdown_cancel_ends_queued_and_running_tasks() {
    let pool = pool(1);
    let running = pool.submit(sleep_task(3_600_000)).unwrap();
    let queued: Vec<_> = (0..3)
        .map(|_| pool.submit(sleep_task(3_600_000)).unwrap())
        .collect();
    let started = Instant::now();
    pool.shutdown(Shutdown::Cancel);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(running.wait().status, ExitStatus::Cancelled);
    assert!(
        queued
            .iter()
            .all(|h| h.wait().status == ExitStatus::Cancelled)
    );
}

#[test]
fn dropping_the_pool_cancels_and_joins() {
    let handle = {
        let pool = pool(2);
        pool.submit(sleep_task(3_600_000)).unwrap()
    };
    // The drop returned, so its threads were joined; the task has its status.
    assert_eq!(
        handle.try_get().map(|o| o.status),
        Some(ExitStatus::Cancelled)
    );
}

#[test]
fn dropping_a_map_cancels_what_is_in_flight() {
    let pool = pool(2);
    let started = Instant::now();
    let first = pool
        .map("sleep_ms", [0u64, 3_600_000, 3_600_000, 3_600_000])
        .next();
    assert_eq!(first.unwrap().decode::<u64>().unwrap(), 0);
    // The rest were cancelled when the iterator dropped: the pool is free.
    let next = pool.submit(Task::call("square", &3u64).unwrap()).unwrap();
    assert_eq!(next.wait().decode::<u64>().unwrap(), 9);
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// A map's own canceller ends its tasks, running and queued, while the
/// pool's other work goes on: what a front end needs when the thread that
/// holds the results is blocked waiting for the next one.
#[test]
fn a_map_cancelled_by_its_token_ends_its_own_tasks_only() {
    for isolation in both_isolations() {
        let name = format!("{isolation:?}");
        let pool = Pool::builder(sdk_tasks())
            .workers(2)
            .isolation(isolation)
            .build()
            .unwrap();
        let other_started = Started::new();
        let other = pool.submit(announced_sleep(&other_started, 1500)).unwrap();
        other_started.wait();
        let map_started = Started::new();
        let tasks = vec![
            announced_sleep(&map_started, 3_600_000),
            sleep_task(3_600_000),
            sleep_task(3_600_000),
        ];
        let results = pool.map_tasks(tasks);
        let token = results.cancel_token();
        let started = Instant::now();
        let statuses = std::thread::scope(|scope| {
            let reader = scope.spawn(|| results.map(|o| o.status).collect::<Vec<_>>());
            // Both workers are busy, one with each, when the map is cancelled.
            map_started.wait();
            token.cancel();
            reader.join().unwrap()
        });
        assert_eq!(statuses, [ExitStatus::Cancelled; 3], "{name}");
        assert!(started.elapsed() < Duration::from_secs(20), "{name}");
        let other = other.wait();
        assert_eq!(other.status, ExitStatus::Exited(0), "{name}: {other:?}");
        assert_eq!(other.decode::<u64>().unwrap(), 1500);
    }
}

/// Thousands of tasks of every kind of ending: each index is accounted for
/// exactly once, with the status its kind implies, and the pool serves on.
#[test]
fn stress_no_task_is_lost() {
    const TASKS: usize = 2400;
    // Pool defaults that every kind lives with; the time limit is generous
    // so that a loaded machine cannot turn a quick task into a timeout.
    let pool = Pool::builder(sdk_tasks())
        .workers(4)
        .limits(
            Limits::default()
                .timeout(Duration::from_secs(30))
                .max_memory(8 << 20)
                .max_output(1024),
        )
        .build()
        .unwrap();
    let spin_limits = Limits::default().timeout(Duration::from_millis(20));
    let kind = |i: usize| i % 12;
    let task = |i: usize| -> Task {
        match kind(i) {
            0..=3 => Task::call("square", &(i as u64)).unwrap(),
            4 => Task::call("panics", "stress").unwrap(),
            5 => Task::call("unreachable", &()).unwrap(),
            6 => Task::call("spin", &()).unwrap().limits(spin_limits.clone()),
            7 => Task::call("allocate_mib", &64usize).unwrap(),
            8 => Task::call("write_output", &(100_000usize, "")).unwrap(),
            9 => Task::call_json("square", &b"{bad json"[..]),
            10 => Task::call("no_such_task", &()).unwrap(),
            _ => Task::call("count_to", &u64::MAX)
                .unwrap()
                .limits(Limits::default().fuel(10_000)),
        }
    };
    let expected = |i: usize| -> ExitStatus {
        match kind(i) {
            0..=3 | 8 => ExitStatus::Exited(0),
            4 => ExitStatus::Exited(101),
            5 => ExitStatus::Trapped(TrapKind::Unreachable),
            6 => ExitStatus::TimedOut,
            7 => ExitStatus::MemoryExceeded,
            9 => ExitStatus::BadInvocation,
            10 => ExitStatus::CannotRun,
            _ => ExitStatus::FuelExhausted,
        }
    };
    let mut seen = vec![0u32; TASKS];
    for (index, outcome) in pool.map_tasks_unordered((0..TASKS).map(task)) {
        seen[index] += 1;
        assert_eq!(
            outcome.status,
            expected(index),
            "task {index}: {:?}",
            outcome.message
        );
        if kind(index) <= 3 {
            assert_eq!(outcome.decode::<u64>().unwrap(), (index * index) as u64);
        }
        if kind(index) == 8 {
            assert!(outcome.stdout.truncated && outcome.stdout.bytes.len() == 1024);
        }
    }
    assert!(seen.iter().all(|&n| n == 1), "every index exactly once");

    // Handles too: a burst of submits, every one answered.
    let handles: Vec<_> = (0..240)
        .map(|i| (i, pool.submit(task(i)).unwrap()))
        .collect();
    for (i, handle) in handles {
        assert_eq!(handle.wait().status, expected(i), "handle {i}");
    }
    let after: Vec<Value> = pool
        .map("echo", [json!("still serving")])
        .map(|o| o.decode().unwrap())
        .collect();
    assert_eq!(after, [json!("still serving")]);
}

/// Process pools start worker processes on demand and let idle ones go.
mod processes {
    use std::time::Duration;

    use wasmproc::{Isolation, Pool, ProcessOptions, Task};
    use wasmproc_tests::{sdk_tasks, wait_for};

    use crate::pool_host;

    fn processes(workers: usize, options: ProcessOptions) -> Pool {
        Pool::builder(sdk_tasks())
            .workers(workers)
            .isolation(Isolation::Process(options.executable(pool_host())))
            .build()
            .unwrap()
    }

    #[test]
    fn one_task_at_a_time_keeps_one_worker_process() {
        let pool = processes(16, ProcessOptions::default());
        wait_for("the first worker", || pool.worker_pids().len() == 1);
        for i in 0..10u64 {
            let handle = pool.submit(Task::call("square", &i).unwrap()).unwrap();
            assert_eq!(handle.wait().decode::<u64>().unwrap(), i * i);
            assert!(
                pool.worker_pids().len() <= 2,
                "task {i}: {:?}",
                pool.worker_pids()
            );
        }
        // At most one more started when a task came in the instant
        // before the worker was counted idle again; no more.
        assert!(pool.worker_pids().len() <= 2, "{:?}", pool.worker_pids());
    }

    #[test]
    fn a_burst_starts_workers_up_to_the_size_and_they_go_when_idle() {
        let options = ProcessOptions::default().idle_timeout(Some(Duration::from_millis(500)));
        let pool = processes(6, options);
        let handles: Vec<_> = (0..6)
            .map(|_| {
                pool.submit(Task::call("sleep_ms", &2_500u64).unwrap())
                    .unwrap()
            })
            .collect();
        wait_for("six worker processes", || pool.worker_pids().len() == 6);
        for handle in handles {
            assert_eq!(handle.wait().decode::<u64>().unwrap(), 2_500);
        }
        wait_for("the idle ones to stop", || pool.worker_pids().len() == 1);
        // The pool serves on, starting workers again for the next burst.
        let again: Vec<_> = (0..3)
            .map(|_| {
                pool.submit(Task::call("sleep_ms", &300u64).unwrap())
                    .unwrap()
            })
            .collect();
        for handle in again {
            assert!(handle.wait().success());
        }
    }

    #[test]
    fn min_workers_start_with_the_pool_and_stay() {
        let options = ProcessOptions::default()
            .min_workers(3)
            .idle_timeout(Some(Duration::from_millis(200)));
        let pool = processes(8, options);
        wait_for("three worker processes", || pool.worker_pids().len() == 3);
        let handles: Vec<_> = (0..5)
            .map(|_| {
                pool.submit(Task::call("sleep_ms", &500u64).unwrap())
                    .unwrap()
            })
            .collect();
        for handle in handles {
            assert!(handle.wait().success());
        }
        wait_for("back to three", || pool.worker_pids().len() == 3);
        // The point: three idle timeouts later, the minimum is still there.
        std::thread::sleep(Duration::from_millis(600));
        assert_eq!(pool.worker_pids().len(), 3, "the minimum stays");
    }

    /// After a burst of short tasks, where workers started on demand may
    /// never have taken a job (and so have no process), the minimum left
    /// has its processes.
    #[test]
    fn min_workers_keep_their_processes_after_a_burst_of_short_tasks() {
        let options = ProcessOptions::default()
            .min_workers(2)
            .idle_timeout(Some(Duration::from_millis(300)));
        let pool = processes(12, options);
        let handles: Vec<_> = (0..60)
            .map(|_| {
                pool.submit(Task::call("sleep_ms", &20u64).unwrap())
                    .unwrap()
            })
            .collect();
        for handle in handles {
            assert!(handle.wait().success());
        }
        wait_for("back to two", || pool.worker_pids().len() == 2);
        std::thread::sleep(Duration::from_millis(1_000));
        assert_eq!(pool.worker_pids().len(), 2, "{:?}", pool.worker_pids());
    }

    #[test]
    fn without_an_idle_timeout_workers_stay() {
        let pool = processes(4, ProcessOptions::default().idle_timeout(None));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                pool.submit(Task::call("sleep_ms", &400u64).unwrap())
                    .unwrap()
            })
            .collect();
        for handle in handles {
            assert!(handle.wait().success());
        }
        wait_for("four worker processes", || pool.worker_pids().len() == 4);
        // The point: idle for a while, they are all still there.
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(pool.worker_pids().len(), 4);
    }
}
