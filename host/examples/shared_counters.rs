//! `multiprocessing.Value` and `Array`: many workers update counters in one
//! shared region (OS shared memory, mapped into every worker process too),
//! with atomic adds, no lock needed.
//!
//! `cargo run --example shared_counters` (add `-- --processes` for process
//! isolation).

mod common;

use std::sync::atomic::Ordering;

use wasmproc::{Pool, SharedRegion, Task};

fn main() -> Result<(), wasmproc::Error> {
    wasmproc::run_worker_if_requested();
    let isolation = common::isolation_from_args();
    let module = common::classics();
    let pool = Pool::builder(&module)
        .workers(4)
        .isolation(isolation)
        .build()?;
    // A u64 counter, then an array of 10 u64 slots.
    let counters = SharedRegion::new(8 + 8 * 10)?;
    let tasks = (0..100u64).map(|i| {
        Task::call("tally", &(i % 10))
            .expect("a number serializes")
            .share("counters", &counters)
    });
    for outcome in pool.map_tasks(tasks) {
        assert!(outcome.status.success(), "{outcome:?}");
    }
    let value = counters.u64_at(0)?.load(Ordering::SeqCst);
    let array: Vec<u64> = (0..10)
        .map(|i| counters.u64_at(8 + 8 * i).map(|w| w.load(Ordering::SeqCst)))
        .collect::<Result<_, _>>()?;
    println!("value = {value}");
    println!("array = {array:?}");
    assert_eq!(value, 100);
    Ok(())
}
