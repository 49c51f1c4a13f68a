//! Talking and sharing: queues, pipes, shared regions and the locks over
//! them, between the host and sandboxed tasks, in both isolations.

use std::sync::atomic::Ordering;
use std::time::Duration;

use wasmproc::{
    Barrier, ErrorKind, Event, ExitStatus, Isolation, Limits, Lock, Pool, ProcessOptions, Queue,
    Semaphore, SharedRegion, Task, TrapKind, pipe,
};
use wasmproc_tests::{Started, share_tasks, wait_for};

use crate::pool_host;

fn isolations() -> [(&'static str, Isolation); 2] {
    [
        ("threads", Isolation::Thread),
        (
            "processes",
            Isolation::Process(ProcessOptions::default().executable(pool_host())),
        ),
    ]
}

fn pool(isolation: Isolation, workers: usize) -> Pool {
    Pool::builder(share_tasks())
        .workers(workers)
        .isolation(isolation)
        .build()
        .unwrap()
}

fn submit(pool: &Pool, task: Task) -> wasmproc::TaskHandle {
    pool.submit(task).expect("the pool takes tasks")
}

fn call(name: &str, arg: impl serde::Serialize) -> Task {
    Task::call(name, &arg).unwrap()
}

fn timeout(ms: u64) -> Limits {
    Limits::default().timeout(Duration::from_millis(ms))
}

#[test]
fn producers_and_consumers_share_a_queue_with_the_host() {
    for (label, isolation) in isolations() {
        let pool = pool(isolation, 2);
        let jobs = Queue::<u64>::new(8);
        // A task produces, the host consumes; then the host produces and a
        // task consumes until the host closes the queue.
        let producer = submit(&pool, call("produce", 100).share("jobs", &jobs));
        let taken: u64 = (0..100).map(|_| jobs.get().unwrap()).sum();
        assert_eq!(taken, (0..100).sum::<u64>(), "{label}");
        assert_eq!(producer.wait().decode::<u64>().unwrap(), 100, "{label}");

        let consumer = submit(&pool, call("consume", ()).share("jobs", &jobs));
        for i in 1..=50 {
            jobs.put(&i).unwrap();
        }
        jobs.close();
        let (sum, count) = consumer.wait().decode::<(u64, u64)>().unwrap();
        assert_eq!((sum, count), ((1..=50).sum(), 50), "{label}");
    }
}

#[test]
fn four_producers_fill_one_host_queue_with_every_message_once() {
    for (label, isolation) in isolations() {
        let pool = pool(isolation, 4);
        // Small: the producers wait for room and stream on credits.
        let jobs = Queue::<u64>::new(16);
        let each = 5_000;
        let producers: Vec<_> = (0..4)
            .map(|k| {
                submit(
                    &pool,
                    call("produce_from", (k * each, each)).share("jobs", &jobs),
                )
            })
            .collect();
        let mut got: Vec<u64> = (0..4 * each).map(|_| jobs.get().unwrap()).collect();
        for producer in producers {
            assert_eq!(producer.wait().decode::<u64>().unwrap(), each, "{label}");
        }
        assert_eq!(jobs.len(), 0, "{label}: nothing more came");
        got.sort_unstable();
        assert!(
            got.iter().copied().eq(0..4 * each),
            "{label}: every message arrives once"
        );
    }
}

#[test]
fn a_task_forwards_a_stream_between_host_queues_in_order() {
    for (label, isolation) in isolations() {
        let pool = pool(isolation, 1);
        let (jobs, done) = (Queue::<u64>::new(8), Queue::<u64>::new(8));
        let forward = submit(
            &pool,
            call("forward", ())
                .share("jobs", &jobs)
                .share("done", &done),
        );
        let feeder = {
            let jobs = jobs.clone();
            std::thread::spawn(move || {
                for i in 0..2_000 {
                    jobs.put(&i).unwrap();
                }
                jobs.close();
            })
        };
        let got: Vec<u64> = (0..2_000).map(|_| done.get().unwrap()).collect();
        feeder.join().unwrap();
        assert!(got.iter().copied().eq(0..2_000), "{label}: in order, once");
        assert_eq!(forward.wait().decode::<u64>().unwrap(), 2_000, "{label}");
    }
}

#[test]
fn a_bounded_queue_holds_back_a_flood() {
    for (label, isolation) in isolations() {
        let pool = pool(isolation, 1);
        let jobs = Queue::<String>::new(4);
        let flood = submit(&pool, call("flood", (1000, 1024)).share("jobs", &jobs));
        wait_for("the producer to fill the queue", || jobs.len() >= 4);
        // The producer waits on the full queue: it holds no more than that.
        assert_eq!(jobs.len(), 4, "{label}");
        for _ in 0..1000 {
            assert_eq!(jobs.get().unwrap().len(), 1024, "{label}");
        }
        assert_eq!(flood.wait().decode::<u64>().unwrap(), 1000, "{label}");
        // Large messages (which cross processes one at a time) too.
        let flood = submit(&pool, call("flood", (20, 70_000)).share("jobs", &jobs));
        for _ in 0..20 {
            assert_eq!(jobs.get().unwrap().len(), 70_000, "{label}");
        }
        assert_eq!(flood.wait().decode::<u64>().unwrap(), 20, "{label}");
    }
}

/// A put on a closed queue fails in a worker process as in a thread: it is
/// not told it went through while the pool drops it (sends that go ahead
/// of their answers know which channels were closed at the hand-over, and
/// go no further ahead than the queue holds).
#[test]
fn a_put_on_a_closed_queue_fails_in_both_isolations() {
    for (label, isolation) in isolations() {
        let pool = pool(isolation, 1);
        let closed = Queue::<u64>::new(16);
        closed.close();
        let handle = submit(&pool, call("produce", 5).share("jobs", &closed));
        let outcome = handle.wait();
        assert_eq!(
            outcome.status,
            ExitStatus::Exited(1),
            "{label}: {outcome:?}"
        );
        assert!(
            outcome.message.as_deref().unwrap_or("").contains("closed"),
            "{label}: {outcome:?}"
        );

        // A producer waiting on a full queue when it is closed fails there.
        let jobs = Queue::<u64>::new(2);
        let producer = submit(&pool, call("produce", 100).share("jobs", &jobs));
        wait_for("the producer to fill the queue", || jobs.len() >= 2);
        std::thread::sleep(Duration::from_millis(100));
        jobs.close();
        let outcome = producer.wait();
        assert_eq!(
            outcome.status,
            ExitStatus::Exited(1),
            "{label}: {outcome:?}"
        );
        assert_eq!(
            jobs.len(),
            2,
            "{label}: what was put before the close stays"
        );
    }
}

#[test]
fn a_task_blocked_on_a_queue_is_timed_out_or_cancelled_and_loses_nothing() {
    for (label, isolation) in isolations() {
        let pool = pool(isolation, 2);
        let jobs = Queue::<u64>::new(4);
        let waiting = call("take_one", ()).share("jobs", &jobs);
        let timed = submit(&pool, waiting.clone().limits(timeout(200)));
        assert_eq!(timed.wait().status, ExitStatus::TimedOut, "{label}");

        // Cancelled once it runs (it says so), not while it waits for a worker.
        let started = Started::new();
        let cancelled = submit(&pool, started.grant(waiting.clone()));
        started.wait();
        cancelled.cancel();
        assert_eq!(cancelled.wait().status, ExitStatus::Cancelled, "{label}");

        // Neither took a value put afterwards: the next taker gets it.
        jobs.put(&7).unwrap();
        assert_eq!(
            submit(&pool, waiting).wait().decode::<u64>().unwrap(),
            7,
            "{label}"
        );

        let within = submit(&pool, call("take_within", 50).share("jobs", &jobs));
        assert_eq!(
            within.wait().decode::<Option<u64>>().unwrap(),
            None,
            "{label}"
        );
    }
}

#[test]
fn a_message_over_the_limit_is_refused_at_put() {
    for (label, isolation) in isolations() {
        let pool = pool(isolation, 1);
        let jobs = Queue::<String>::new(4).with_max_message(100);
        let outcome = submit(&pool, call("put_large", 200).share("jobs", &jobs)).into_outcome();
        let said = outcome.decode::<String>().unwrap();
        assert!(
            said.contains("over the channel's size limit"),
            "{label}: {said}"
        );
        assert!(jobs.is_empty(), "{label}");
        let error = jobs.put(&"z".repeat(200)).unwrap_err();
        assert!(
            error.message().contains("over the queue's limit"),
            "{error}"
        );
    }
}

#[test]
fn a_task_reaches_only_what_it_was_granted() {
    for (label, isolation) in isolations() {
        let pool = pool(isolation, 1);
        let jobs = Queue::<u64>::new(1);
        let outcome =
            submit(&pool, call("open_queue", "secret").share("jobs", &jobs)).into_outcome();
        let said = outcome.decode::<String>().unwrap();
        assert!(
            said.contains("no queue named `secret` was shared with this task"),
            "{label}: {said}"
        );
        let granted = submit(&pool, call("open_queue", "jobs").share("jobs", &jobs));
        assert_eq!(
            granted.wait().decode::<String>().unwrap(),
            "granted",
            "{label}"
        );
        // A region is not a queue, even under the asked name.
        let region = SharedRegion::new(8).unwrap();
        let outcome =
            submit(&pool, call("open_queue", "jobs").share("jobs", &region)).into_outcome();
        assert!(
            outcome
                .decode::<String>()
                .unwrap()
                .contains("no queue named `jobs`")
        );
    }
    let bad_name = share_tasks().run(&call("open_queue", "x").share("a b", &Queue::<u8>::new(1)));
    assert_eq!(bad_name.status, ExitStatus::BadInvocation);
    assert!(
        bad_name
            .message
            .unwrap()
            .contains("`a b` cannot name a shared object")
    );
}

#[test]
fn a_pipe_connects_the_submitter_and_its_task() {
    for (label, isolation) in isolations() {
        let pool = pool(isolation, 1);
        let (mine, theirs) = pipe();
        let task = submit(&pool, call("doubler", 5).pipe(theirs));
        for x in 1..=5u64 {
            mine.send(&x).unwrap();
            assert_eq!(mine.recv::<u64>().unwrap(), 2 * x, "{label}");
        }
        assert_eq!(task.wait().decode::<u64>().unwrap(), 5, "{label}");

        // Progress streams out of a task; the loop ends when the task does.
        let (mine, theirs) = pipe();
        let task = submit(&pool, call("progress", 20).pipe(theirs));
        let mut seen = Vec::new();
        while let Ok(step) = mine.recv::<u64>() {
            seen.push(step);
        }
        assert_eq!(seen, (1..=20).collect::<Vec<_>>(), "{label}");
        assert_eq!(task.wait().decode::<u64>().unwrap(), 20, "{label}");
        assert_eq!(mine.recv::<u64>().unwrap_err().kind(), &ErrorKind::Closed);
    }
}

#[test]
fn workers_count_atomically_in_a_shared_region() {
    for (label, isolation) in isolations() {
        let pool = pool(isolation, 2);
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

        let written = submit(
            &pool,
            call("write_read", (10, "hello")).share("counts", &counts),
        )
        .into_outcome();
        assert_eq!(written.decode::<String>().unwrap(), "hello", "{label}");
        let mut bytes = [0; 5];
        counts.read(10, &mut bytes).unwrap();
        assert_eq!(&bytes, b"hello", "{label}");
    }
}

#[test]
fn a_lock_excludes_across_workers_and_the_host() {
    for (label, isolation) in isolations() {
        let pool = pool(isolation, 2);
        let counts = SharedRegion::new(8).unwrap();
        let lock = Lock::new().unwrap();
        let task = || {
            call("locked_count", 2000)
                .share("counts", &counts)
                .share("lock", &lock)
        };
        let handles = [submit(&pool, task()), submit(&pool, task())];
        for _ in 0..500 {
            let _held = lock.lock().unwrap();
            let word = counts.u64_at(0).unwrap();
            word.store(word.load(Ordering::SeqCst) + 1, Ordering::SeqCst);
        }
        for handle in handles {
            assert_eq!(handle.wait().status, ExitStatus::Exited(0), "{label}");
        }
        assert_eq!(
            counts.u64_at(0).unwrap().load(Ordering::SeqCst),
            4500,
            "{label}"
        );
    }
}

#[test]
fn a_lock_held_by_a_task_that_dies_passes_on_with_word_of_the_death() {
    for (label, isolation) in isolations() {
        let pool = pool(isolation, 2);
        for (how, status) in [
            ("trap", ExitStatus::Trapped(TrapKind::Unreachable)),
            ("exit", ExitStatus::Exited(3)),
            ("spin", ExitStatus::TimedOut),
        ] {
            let lock = Lock::new().unwrap();
            let held = Event::new().unwrap();
            // A waiter is already asleep on the lock when its holder dies.
            let dying = call("die_holding", how)
                .share("lock", &lock)
                .share("held", &held)
                .limits(timeout(300));
            let dying = submit(&pool, dying);
            assert!(held.wait_timeout(Duration::from_secs(10)), "{label} {how}");
            let waiter = submit(&pool, call("take_lock", ()).share("lock", &lock));
            assert_eq!(dying.wait().status, status, "{label} {how}");
            assert_eq!(
                waiter.wait().decode::<String>().unwrap(),
                "owner died",
                "{label} {how}"
            );
            // The next holder is told nothing more: the lock is whole again.
            assert!(lock.lock().is_ok(), "{label} {how}");
        }
        // A task cancelled while holding the lock, with the host waiting.
        let lock = Lock::new().unwrap();
        let held = Event::new().unwrap();
        let dying = submit(
            &pool,
            call("die_holding", "spin")
                .share("lock", &lock)
                .share("held", &held),
        );
        assert!(held.wait_timeout(Duration::from_secs(10)), "{label}");
        assert!(lock.try_lock().is_none(), "{label}");
        dying.cancel();
        let taken = lock
            .lock_timeout(Duration::from_secs(10))
            .expect("the lock passes on");
        assert!(taken.is_err(), "{label}: the host is told the holder died");
        assert_eq!(dying.wait().status, ExitStatus::Cancelled, "{label}");
    }
}

#[test]
fn events_barriers_and_semaphores_coordinate_tasks() {
    for (label, isolation) in isolations() {
        let pool = pool(isolation, 3);
        let go = Event::new().unwrap();
        let started = Started::new();
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                submit(
                    &pool,
                    started.grant(call("wait_event", ()).share("go", &go)),
                )
            })
            .collect();
        // Both run, holding the event, before it is set.
        started.wait();
        started.wait();
        go.set();
        for waiter in waiters {
            assert!(waiter.wait().decode::<bool>().unwrap(), "{label}");
        }

        let meet = Barrier::new(3).unwrap();
        let parties: Vec<_> = (0..2)
            .map(|_| submit(&pool, call("meet", ()).share("meet", &meet)))
            .collect();
        let host_led = meet
            .wait_timeout(Duration::from_secs(10))
            .expect("all arrive");
        let task_leaders = parties
            .into_iter()
            .filter(|party| party.wait().decode::<bool>().unwrap())
            .count();
        assert_eq!(
            task_leaders + usize::from(host_led),
            1,
            "{label}: one leader"
        );

        let permits = Semaphore::new(1).unwrap();
        let counts = SharedRegion::new(16).unwrap();
        let tasks = (0..3).map(|_| {
            call("with_permit", 20)
                .share("permits", &permits)
                .share("counts", &counts)
        });
        let most: Vec<u64> = pool.map_tasks(tasks).map(|o| o.decode().unwrap()).collect();
        assert!(
            most.iter().all(|&m| m == 1),
            "{label}: one holder at a time: {most:?}"
        );
        assert_eq!(permits.available(), 1, "{label}");
    }
}

#[test]
fn a_wait_on_a_word_is_woken_by_the_host() {
    for (label, isolation) in isolations() {
        let pool = pool(isolation, 1);
        let counts = SharedRegion::new(8).unwrap();
        let started = Started::new();
        let waiter = submit(
            &pool,
            started.grant(call("wait_word", ()).share("counts", &counts)),
        );
        started.wait();
        // Asleep on the word: a wake with the word unchanged wakes it (it
        // sleeps again), so the host knows its notify reaches a sleeper.
        wait_for("the task to sleep on the word", || {
            counts.notify(0, 1).unwrap() == 1
        });
        counts.u32_at(0).unwrap().store(9, Ordering::SeqCst);
        counts.notify(0, 1).unwrap();
        assert_eq!(waiter.wait().decode::<u32>().unwrap(), 9, "{label}");
    }
}

#[test]
fn region_misuse_is_an_error_not_a_crash() {
    for (label, isolation) in isolations() {
        let pool = pool(isolation, 1);
        let counts = SharedRegion::new(16).unwrap();
        let said = submit(&pool, call("region_errors", ()).share("counts", &counts))
            .into_outcome()
            .decode::<Vec<String>>()
            .unwrap();
        assert!(
            said[0].contains("offset 16 + 8 bytes lies outside the region of 16 bytes"),
            "{label}: {said:?}"
        );
        assert!(
            said[1].contains("offset 4 is not aligned for a 64-bit word"),
            "{label}: {said:?}"
        );
        assert!(said[2].contains("offset 15 + 2 bytes"), "{label}: {said:?}");
    }
    let counts = SharedRegion::new(16).unwrap();
    assert!(
        counts
            .u64_at(12)
            .unwrap_err()
            .message()
            .contains("lies outside")
    );
    assert!(
        counts
            .u32_at(2)
            .unwrap_err()
            .message()
            .contains("not aligned")
    );
    assert!(counts.write(15, b"ab").is_err());
    assert!(SharedRegion::new(0).is_err());
}

#[test]
fn a_raw_import_out_of_bounds_traps_with_the_region_named() {
    const RAW: &str = r#"(module
      (import "wasmproc_v1" "region_open" (func $open (param i32 i32) (result i32)))
      (import "wasmproc_v1" "region_atomic64"
        (func $atomic (param i32 i32 i64 i64 i64) (result i64)))
      (memory (export "memory") 1)
      (data (i32.const 0) "counts")
      (func (export "wasmproc_task:poke") (result i32)
        (drop (call $atomic (call $open (i32.const 0) (i32.const 6))
          (i32.const 2) (i64.const 64) (i64.const 1) (i64.const 0)))
        (i32.const 0)))"#;
    let module = wasmproc_tests::runtime()
        .load_bytes("raw.wat", RAW.as_bytes())
        .unwrap();
    let counts = SharedRegion::new(64).unwrap();
    let outcome = module.run(&call("poke", ()).share("counts", &counts));
    assert_eq!(outcome.status, ExitStatus::Trapped(TrapKind::HostError));
    let message = outcome.message.unwrap();
    assert!(
        message.contains("shared region `counts`: offset 64 + 8 bytes lies outside"),
        "{message}"
    );
}

/// Opening a grant again gives the handle it gave the first time: a task
/// that opens in a loop holds one handle per grant, not one per call (a
/// million handles would be host memory outside every limit).
#[test]
fn a_grant_opened_again_gives_the_same_handle() {
    const REOPEN: &str = r#"(module
      (import "wasmproc_v1" "region_open" (func $region (param i32 i32) (result i32)))
      (import "wasmproc_v1" "queue_open" (func $queue (param i32 i32) (result i32)))
      (memory (export "memory") 1)
      (data (i32.const 0) "countsjobs")
      (func (export "wasmproc_task:reopen") (result i32)
        (local $i i32) (local $first_region i32) (local $first_queue i32)
        (local.set $first_region (call $region (i32.const 0) (i32.const 6)))
        (local.set $first_queue (call $queue (i32.const 6) (i32.const 4)))
        (if (i32.lt_s (local.get $first_region) (i32.const 0)) (then (return (i32.const 2))))
        (if (i32.lt_s (local.get $first_queue) (i32.const 0)) (then (return (i32.const 3))))
        (loop $again
          (if (i32.ne (call $region (i32.const 0) (i32.const 6)) (local.get $first_region))
            (then (return (i32.const 1))))
          (if (i32.ne (call $queue (i32.const 6) (i32.const 4)) (local.get $first_queue))
            (then (return (i32.const 1))))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $again (i32.lt_u (local.get $i) (i32.const 200000))))
        (i32.const 0)))"#;
    let module = wasmproc_tests::runtime()
        .load_bytes("reopen.wat", REOPEN.as_bytes())
        .unwrap();
    for (label, isolation) in isolations() {
        let pool = Pool::builder(&module).isolation(isolation).build().unwrap();
        let counts = SharedRegion::new(64).unwrap();
        let jobs = Queue::<u64>::new(4);
        let task = call("reopen", ())
            .share("counts", &counts)
            .share("jobs", &jobs);
        let outcome = submit(&pool, task).into_outcome();
        assert_eq!(
            outcome.status,
            ExitStatus::Exited(0),
            "{label}: {outcome:?}"
        );
    }
}

/// `region_notify`'s count is unsigned and its answer the count asked for
/// (capped at `i32::MAX`), the same in both isolations: -1 wakes every
/// waiter and answers `i32::MAX`, 3 answers 3.
#[test]
fn a_raw_notify_answers_the_same_in_both_isolations() {
    const NOTIFY: &str = r#"(module
      (import "wasmproc_v1" "region_open" (func $open (param i32 i32) (result i32)))
      (import "wasmproc_v1" "region_notify" (func $notify (param i32 i64 i32) (result i32)))
      (memory (export "memory") 1)
      (data (i32.const 0) "counts")
      (func (export "wasmproc_task:wake") (result i32)
        (local $region i32)
        (local.set $region (call $open (i32.const 0) (i32.const 6)))
        (if (i32.ne (call $notify (local.get $region) (i64.const 0) (i32.const -1))
                    (i32.const 2147483647))
          (then (return (i32.const 1))))
        (if (i32.ne (call $notify (local.get $region) (i64.const 0) (i32.const 3))
                    (i32.const 3))
          (then (return (i32.const 2))))
        (i32.const 0)))"#;
    let module = wasmproc_tests::runtime()
        .load_bytes("notify.wat", NOTIFY.as_bytes())
        .unwrap();
    for (label, isolation) in isolations() {
        let pool = Pool::builder(&module).isolation(isolation).build().unwrap();
        let counts = SharedRegion::new(64).unwrap();
        let task = call("wake", ()).share("counts", &counts);
        let outcome = submit(&pool, task).into_outcome();
        assert_eq!(
            outcome.status,
            ExitStatus::Exited(0),
            "{label}: {outcome:?}"
        );
    }
}

/// Worker processes killed from outside mid-operation.
#[cfg(unix)]
mod killed {
    use super::*;
    use wasmproc_tests::unix::kill;

    fn one_worker() -> Pool {
        let options = ProcessOptions::default().executable(pool_host()).retries(0);
        Pool::builder(share_tasks())
            .workers(1)
            .isolation(Isolation::Process(options))
            .build()
            .unwrap()
    }

    fn kill_workers(pool: &Pool) {
        for pid in pool.worker_pids() {
            kill(pid, "-9");
        }
    }

    #[test]
    fn a_lock_held_by_a_killed_worker_passes_on_with_word_of_the_death() {
        let pool = one_worker();
        let lock = Lock::new().unwrap();
        let held = Event::new().unwrap();
        let dying = submit(
            &pool,
            call("die_holding", "spin")
                .share("lock", &lock)
                .share("held", &held),
        );
        assert!(held.wait_timeout(Duration::from_secs(10)));
        kill_workers(&pool);
        let taken = lock
            .lock_timeout(Duration::from_secs(10))
            .expect("the lock passes on");
        assert!(taken.is_err(), "the host is told the holder died");
        assert_eq!(dying.wait().status, ExitStatus::WorkerLost);
    }

    #[test]
    fn a_worker_killed_mid_stream_gives_back_what_it_never_took() {
        let pool = one_worker();
        // Room for all in both: no put waits, so every message is in one
        // of the queues or was never taken (a put waiting for room when
        // its task dies is lost with it, as in a thread worker).
        let (jobs, done) = (Queue::<u64>::new(20_000), Queue::<u64>::new(20_000));
        for i in 0..20_000 {
            jobs.put(&i).unwrap();
        }
        let forward = submit(
            &pool,
            call("forward", ())
                .share("jobs", &jobs)
                .share("done", &done),
        );
        wait_for("the task to forward some", || done.len() >= 100);
        kill_workers(&pool);
        assert_eq!(forward.wait().status, ExitStatus::WorkerLost);
        // A message the guest got but never handed on goes back to `jobs`.
        wait_for("every message to be in a queue", || {
            jobs.len() + done.len() == 20_000
        });
        let drain = |queue: &Queue<u64>| {
            std::iter::from_fn(|| queue.get_timeout(Duration::ZERO).unwrap()).collect::<Vec<_>>()
        };
        let mut all = drain(&jobs);
        let moved = drain(&done);
        assert!(
            moved.len() >= 100 && moved.len() < 20_000,
            "{}",
            moved.len()
        );
        all.extend(moved);
        all.sort_unstable();
        assert!(all.iter().copied().eq(0..20_000), "each message once");
    }

    #[test]
    fn a_queue_loses_nothing_to_a_killed_taker() {
        let pool = one_worker();
        let jobs = Queue::<u64>::new(4);
        let started = Started::new();
        let taker = submit(
            &pool,
            started.grant(call("take_one", ()).share("jobs", &jobs)),
        );
        started.wait();
        kill_workers(&pool);
        assert_eq!(taker.wait().status, ExitStatus::WorkerLost);
        jobs.put(&5).unwrap();
        let next = submit(&pool, call("take_one", ()).share("jobs", &jobs));
        assert_eq!(next.wait().decode::<u64>().unwrap(), 5);
    }
}

#[test]
#[cfg_attr(
    no_c_guest,
    ignore = "clang and wasi-libc are not installed: apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32"
)]
fn a_c_guest_talks_and_shares_through_the_raw_imports() {
    let path = wasmproc_tests::guests::C_SHARE.expect("build.rs built the C guest");
    let module = wasmproc_tests::runtime().load(path).unwrap();
    for (label, isolation) in isolations() {
        let pool = Pool::builder(&module).isolation(isolation).build().unwrap();
        let (jobs, doubled) = (Queue::<u64>::new(8), Queue::<u64>::new(128));
        let counts = SharedRegion::new(16).unwrap();
        let task = Task::command()
            .share("jobs", &jobs)
            .share("doubled", &doubled)
            .share("counts", &counts);
        let handle = submit(&pool, task);
        for n in 1..=100 {
            jobs.put(&n).unwrap();
        }
        jobs.close();
        let outcome = handle.wait();
        assert_eq!(
            outcome.status,
            ExitStatus::Exited(0),
            "{label}: {outcome:?}"
        );
        assert_eq!(outcome.stdout.text(), "took 100\n", "{label}");
        let word = |at| counts.u64_at(at).unwrap().load(Ordering::SeqCst);
        assert_eq!((word(0), word(8)), (5050, 100), "{label}");
        let twice: Vec<u64> = (0..100).map(|_| doubled.get().unwrap()).collect();
        assert_eq!(
            twice,
            (1..=100).map(|n| 2 * n).collect::<Vec<_>>(),
            "{label}"
        );
    }
}

#[test]
fn a_task_out_of_time_in_a_full_queue_ends_timed_out_and_holds_up_no_other() {
    for (label, isolation) in isolations() {
        let pool = pool(isolation, 1);
        let full = Queue::<String>::new(1);
        let stuck = submit(
            &pool,
            call("flood", (10, 10))
                .share("jobs", &full)
                .limits(timeout(300)),
        );
        assert_eq!(stuck.wait().status, ExitStatus::TimedOut, "{label}");
        // The same worker serves the next task, on another queue.
        let other = Queue::<u64>::new(8);
        let next = submit(&pool, call("produce", 3).share("jobs", &other));
        assert_eq!(next.wait().decode::<u64>().unwrap(), 3, "{label}");
        // The stuck task's first message is there; the others never were.
        assert_eq!(
            full.try_get().unwrap().map(|m| m.len()),
            Some(10),
            "{label}"
        );
        // An absence can only be seen by waiting: a message sent late (after
        // the timeout) would have arrived within this.
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(full.try_get().unwrap(), None, "{label}");
    }
}

/// A send that waits for room holds up whatever the guest does after it:
/// at the time limit the task is timed out in both isolations (a worker
/// process must not report the exit it never reached), and only the
/// messages that found room are in the queue.
#[test]
fn a_put_that_never_finds_room_ends_timed_out_whatever_follows_it() {
    for (label, isolation) in isolations() {
        let pool = pool(isolation, 1);
        let full = Queue::<u64>::new(2);
        let task = call("put_then_exit", (3, 100))
            .share("jobs", &full)
            .limits(timeout(300));
        let outcome = submit(&pool, task).into_outcome();
        assert_eq!(outcome.status, ExitStatus::TimedOut, "{label}: {outcome:?}");
        assert_eq!(full.try_get().unwrap(), Some(0), "{label}");
        assert_eq!(full.try_get().unwrap(), Some(1), "{label}");
        assert_eq!(
            full.try_get().unwrap(),
            None,
            "{label}: the third never went in"
        );
    }
}

#[test]
fn a_pool_shares_with_every_task_so_that_map_can_share() {
    for (label, isolation) in isolations() {
        let counts = SharedRegion::new(8).unwrap();
        let (progress, theirs) = pipe();
        let pool = Pool::builder(share_tasks())
            .workers(2)
            .isolation(isolation)
            .share("counts", &counts)
            .pipe(theirs)
            .build()
            .unwrap();
        for outcome in pool.map("count", [10u64, 20, 30]) {
            assert_eq!(
                outcome.status,
                ExitStatus::Exited(0),
                "{label}: {outcome:?}"
            );
        }
        assert_eq!(
            counts.u64_at(0).unwrap().load(Ordering::SeqCst),
            60,
            "{label}"
        );
        let reported: u64 = pool
            .map("progress", [2u64, 3])
            .map(|o| o.decode::<u64>().unwrap())
            .sum();
        assert_eq!(reported, 5, "{label}");
        let mut steps: Vec<u64> = (0..5).map(|_| progress.recv().unwrap()).collect();
        steps.sort();
        assert_eq!(steps, [1, 1, 2, 2, 3], "{label}");
        // Once the pool (and its tasks) are gone, the host's end closes.
        drop(pool);
        assert_eq!(
            progress.recv::<u64>().unwrap_err().kind(),
            &ErrorKind::Closed,
            "{label}"
        );
    }
    let refused = Pool::builder(share_tasks())
        .share("no spaces", &SharedRegion::new(8).unwrap())
        .build();
    assert!(
        refused
            .unwrap_err()
            .message()
            .contains("`no spaces` cannot name a shared object")
    );
}
