//! A pool whose tasks report progress through pipes while they run; the
//! host prints it as it comes, then each task's result.
//!
//! `cargo run --example progress`

mod common;

use wasmproc::{Pool, Task, pipe};

fn main() -> Result<(), wasmproc::Error> {
    wasmproc::process::run_worker_if_requested();
    let module = common::classics();
    let pool = Pool::builder(&module).workers(2).build()?;
    let mut running = Vec::new();
    for job in 0..3 {
        let (mine, theirs) = pipe();
        let handle = pool.submit(Task::call("long_work", &5u32)?.pipe(theirs))?;
        running.push((job, mine, handle));
    }
    for (job, progress, handle) in running {
        // Ends when the task does: its pipe end closes with it.
        while let Ok(step) = progress.recv::<u32>() {
            println!("job {job}: step {step}/5");
        }
        println!(
            "job {job}: {} -> {}",
            handle.wait().status,
            handle.wait().decode::<u64>()?
        );
    }
    Ok(())
}
