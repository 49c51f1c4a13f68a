//! `multiprocessing`'s lock example: workers print under one shared lock,
//! so lines never interleave. Each worker is a sandboxed task; the lock is
//! granted to each by name.
//!
//! `cargo run --example print_lock` (add `-- --processes` for process
//! isolation).

mod common;

use wasmproc::{Lock, Output, Pool, Task};

fn main() -> Result<(), wasmproc::Error> {
    // In process isolation this very program is each worker process.
    wasmproc::run_worker_if_requested();
    let isolation = common::isolation_from_args();
    let module = common::classics();
    let pool = Pool::builder(&module)
        .workers(4)
        .isolation(isolation)
        .build()?;
    let print = Lock::new()?;
    let names = ["Ada", "Grace", "Edsger", "Barbara", "Ken", "Margaret"];
    let tasks = names.iter().map(|name| {
        Task::call("greet", name)
            .expect("a string serializes")
            .share("print", &print)
            .stdout(Output::Inherit)
    });
    for outcome in pool.map_tasks(tasks) {
        assert!(outcome.status.success(), "{outcome:?}");
    }
    Ok(())
}
