//! A host program that embeds a process pool, as a user writes one: the
//! body of the `pool-host` test binary (which calls
//! `run_worker_if_requested` first, as the docs ask).
//!
//! `pool-host MODULE TASK WORKERS [JSON_ARG ...]` runs the task on each
//! argument in a pool of WORKERS worker processes (this very executable)
//! and prints one line per outcome: the exit code, a space, the result.

use wasmproc::{Isolation, Pool, ProcessOptions, Runtime, Task};

/// Runs the program on this process's arguments; returns its exit code.
pub fn main() -> i32 {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [module, task, workers, inputs @ ..] = args.as_slice() else {
        eprintln!("usage: pool-host MODULE TASK WORKERS [JSON_ARG ...]");
        return 2;
    };
    let run = || -> Result<(), wasmproc::Error> {
        let module = Runtime::new()?.load(module)?;
        let pool = Pool::builder(&module)
            .workers(workers.parse().unwrap_or(1))
            .isolation(Isolation::Process(ProcessOptions::default()))
            .build()?;
        let tasks = inputs
            .iter()
            .map(|json| Task::call_json(task, json.as_bytes().to_vec()));
        for outcome in pool.map_tasks(tasks) {
            let result = outcome.result.as_deref().unwrap_or(b"null");
            println!(
                "{} {}",
                outcome.status.code(),
                String::from_utf8_lossy(result)
            );
        }
        Ok(())
    };
    match run() {
        Ok(()) => 0,
        Err(error) => {
            eprintln!("pool-host: {error}");
            i32::from(error.exit_status().code())
        }
    }
}
