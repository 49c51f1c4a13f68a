//! `multiprocessing.Queue`: the host produces jobs, sandboxed consumers
//! square them into a results queue until the host closes the jobs queue.
//! Each consumer is a long-running task, as a `multiprocessing.Process`
//! looping on a queue is: its handle joins it and gives its exit status.
//!
//! `cargo run --example producer_consumer` (add `-- --processes` for
//! process isolation).

mod common;

use wasmproc::{Pool, Queue, Task};

fn main() -> Result<(), wasmproc::Error> {
    wasmproc::run_worker_if_requested();
    let isolation = common::isolation_from_args();
    let module = common::classics();
    let pool = Pool::builder(&module)
        .workers(3)
        .isolation(isolation)
        .build()?;
    let jobs = Queue::<u64>::new(16);
    let results = Queue::<(u64, u64)>::new(16);
    let consumers: Vec<_> = (0..3)
        .map(|_| {
            let task = Task::call("square_jobs", &())?
                .share("jobs", &jobs)
                .share("results", &results);
            pool.submit(task)
        })
        .collect::<Result<_, _>>()?;
    // Produce and collect at once: both queues are bounded.
    let producer = {
        let jobs = jobs.clone();
        std::thread::spawn(move || {
            for n in 1..=1000 {
                jobs.put(&n).expect("the queue is open");
            }
            jobs.close();
        })
    };
    let mut sum = 0u64;
    for _ in 1..=1000 {
        let (_, square) = results.get()?;
        sum += square;
    }
    producer.join().expect("the producer ends");
    for (i, consumer) in consumers.iter().enumerate() {
        let outcome = consumer.wait();
        println!(
            "consumer {i}: {} after {} jobs",
            outcome.status,
            outcome.decode::<u32>()?
        );
    }
    println!("sum of squares of 1..=1000 = {sum}");
    assert_eq!(sum, (1..=1000u64).map(|n| n * n).sum::<u64>());
    Ok(())
}
