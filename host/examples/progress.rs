//! A pool that reports progress through a pipe: every task of the pool
//! shares one end (`PoolBuilder::pipe`), and the host prints what comes
//! while `map` runs, then the results in order.
//!
//! `cargo run --example progress` (add `-- --processes` for process
//! isolation).

mod common;

use wasmproc::{Pool, pipe};

fn main() -> Result<(), wasmproc::Error> {
    wasmproc::run_worker_if_requested();
    let isolation = common::isolation_from_args();
    let module = common::classics();
    let (progress, theirs) = pipe();
    let pool = Pool::builder(&module)
        .workers(2)
        .isolation(isolation)
        .pipe(theirs)
        .build()?;
    let printer = std::thread::spawn(move || {
        // Ends when the pool and its tasks are gone: the pipe closes.
        while let Ok((job, step)) = progress.recv::<(u32, u32)>() {
            println!("job {job}: step {step}/5");
        }
    });
    let jobs = (0..4u32).map(|job| (job, 5u32));
    for (job, outcome) in pool.map("long_work", jobs).enumerate() {
        println!(
            "job {job}: {} -> {}",
            outcome.status,
            outcome.decode::<u64>()?
        );
    }
    drop(pool);
    printer.join().expect("the printer ends");
    Ok(())
}
