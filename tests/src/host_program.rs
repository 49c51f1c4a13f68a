//! A host program that embeds a process pool, as a user writes one: the
//! body of the test binaries `pool-host` (which calls
//! `run_worker_if_requested` first, as the docs ask) and `forgetful-host`
//! (which forgets to).
//!
//! What to run comes from the environment, which worker processes inherit,
//! as they inherit a real program's configuration: `POOL_HOST_MODULE`,
//! `POOL_HOST_TASK` and `POOL_HOST_WORKERS`. Each argument is one task's
//! JSON argument; the program prints one line per outcome (the exit code,
//! a space, the result or the message) and exits 0, or prints its error
//! and exits with its status.

use wasmproc::{Isolation, Pool, ProcessOptions, Runtime, Task};

/// Runs the program on this process's arguments; returns its exit code.
pub fn main() -> i32 {
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    let (module, task) = (var("POOL_HOST_MODULE"), var("POOL_HOST_TASK"));
    let workers = var("POOL_HOST_WORKERS").parse().unwrap_or(1);
    let inputs: Vec<String> = std::env::args().skip(1).collect();
    let run = || -> Result<(), wasmproc::Error> {
        let module = Runtime::new()?.load(&module)?;
        let pool = Pool::builder(&module)
            .workers(workers)
            .isolation(Isolation::Process(ProcessOptions::default()))
            .build()?;
        let tasks = inputs
            .iter()
            .map(|json| Task::call_json(&task, json.as_bytes().to_vec()));
        for outcome in pool.map_tasks(tasks) {
            let said = match &outcome.result {
                Some(result) => String::from_utf8_lossy(result).into_owned(),
                None => outcome.message.clone().unwrap_or_default(),
            };
            println!("{} {said}", outcome.status.code());
        }
        Ok(())
    };
    match run() {
        Ok(()) => 0,
        Err(error) => {
            eprintln!("host program: {error}");
            i32::from(error.exit_status().code())
        }
    }
}
