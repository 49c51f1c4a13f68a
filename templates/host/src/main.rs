//! A host program embedding wasmproc: loads a module of typed tasks and
//! squares a number on a pool of sandboxed workers.
//!
//! ```sh
//! cargo build --release -p wasmproc-guest --examples --target wasm32-wasip1
//! cargo run -p wasmproc-host-template -- target/wasm32-wasip1/release/examples/squares.wasm 7
//! ```
//!
//! It is a member of the wasmproc workspace, so it builds in seconds on top
//! of the clone's build of wasmtime. Copy it beside this one (and add the
//! copy to the workspace's `members`) to start a program of your own.

use std::process::ExitCode;

use wasmproc::{Pool, Runtime, Task};

fn main() -> ExitCode {
    // A pool with process isolation starts workers from this executable:
    // they must take this path before anything else.
    wasmproc::run_worker_if_requested();
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("wasmproc-host-template: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(path), Some(number)) = (args.next(), args.next()) else {
        return Err("usage: wasmproc-host-template MODULE.wasm NUMBER (a module with a `square` task, e.g. guest/examples/squares.rs)".into());
    };
    let number: u64 = number
        .parse()
        .map_err(|error| format!("NUMBER {number:?}: {error}"))?;
    let runtime = Runtime::new()?;
    let module = runtime.load(&path)?;
    let pool = Pool::builder(&module).workers(2).build()?;
    let handle = pool.submit(Task::call("square", &number)?)?;
    let outcome = handle.wait();
    let square: u64 = outcome.decode()?;
    println!("{square}");
    Ok(())
}
