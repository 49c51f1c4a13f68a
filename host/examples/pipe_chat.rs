//! `multiprocessing.Pipe`: a parent and a child talking. The child is a
//! sandboxed task; `submit` returns its handle, which the parent joins
//! (`wait`) for the exit status, as with `Process.join()` and `exitcode`.
//!
//! `cargo run --example pipe_chat` (add `-- --processes` for process
//! isolation).

mod common;

use wasmproc::{Pool, Task, pipe};

fn main() -> Result<(), wasmproc::Error> {
    wasmproc::run_worker_if_requested();
    let module = common::classics();
    let pool = Pool::builder(&module)
        .workers(1)
        .isolation(common::isolation_from_args())
        .build()?;
    let (parent, child) = pipe();
    let process = pool.submit(Task::call("chat", &())?.pipe(child))?;
    println!("child says: {}", parent.recv::<String>()?);
    for question in ["sandbox", "WebAssembly", "multiprocessing"] {
        parent.send(&question)?;
        println!("{question}? {}", parent.recv::<String>()?);
    }
    parent.send(&"bye")?;
    // join(): the exit status and the result.
    let outcome = process.wait();
    println!(
        "child: {}, after {} answers",
        outcome.status,
        outcome.decode::<u32>()?
    );
    Ok(())
}
