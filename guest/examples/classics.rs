//! The guest of the host's `multiprocessing` examples (`host/examples`):
//! the classic programs' workers, sandboxed, talking through what the host
//! shares with them.
//!
//! ```sh
//! cargo build --release -p wasmproc-guest --example classics --target wasm32-wasip1
//! ```
//!
//! (The host examples build it themselves.)

use std::time::Duration;

use wasmproc_guest::sync::Lock;
use wasmproc_guest::{ShareError, pipe, queue, region, task};

/// `multiprocessing`'s first example: print under a shared lock, so that
/// lines never interleave.
#[task]
fn greet(name: String) -> Result<(), ShareError> {
    let print = Lock::open("print")?;
    let _held = print.lock().unwrap_or_else(|died| died.into_guard());
    println!("hello, {name}");
    Ok(())
}

/// A child talking with its parent over a pipe: it answers each question
/// until the parent says "bye".
#[task]
fn chat() -> Result<u32, ShareError> {
    let parent = pipe()?;
    parent.send(&"ready")?;
    let mut answered = 0;
    loop {
        let question: String = parent.recv()?;
        if question == "bye" {
            return Ok(answered);
        }
        parent.send(&format!("{} letters", question.chars().count()))?;
        answered += 1;
    }
}

/// `Value` and `Array`: adds 1 to the shared counter (a u64 at offset 0 of
/// `counters`) and `i` to slot `i` of the array after it.
#[task]
fn tally(i: u64) -> Result<(), ShareError> {
    let counters = region("counters")?;
    counters.fetch_add_u64(0, 1)?;
    counters.fetch_add_u64(8 + 8 * i, i)?;
    Ok(())
}

/// A consumer: squares the numbers from `jobs` into `results` until the
/// host closes `jobs`.
#[task]
fn square_jobs() -> Result<u32, ShareError> {
    let jobs = queue::<u64>("jobs")?;
    let results = queue::<(u64, u64)>("results")?;
    let mut done = 0;
    while let Ok(n) = jobs.get() {
        results.put(&(n, n * n))?;
        done += 1;
    }
    Ok(done)
}

/// Long work (job number `job`) that reports its progress through the
/// pipe as `(job, step)`.
#[task]
fn long_work(job: u32, steps: u32) -> Result<u64, ShareError> {
    let progress = pipe()?;
    let mut acc = 0u64;
    for step in 1..=steps {
        for i in 0..200_000u64 {
            acc = acc.wrapping_mul(6364136223846793005).wrapping_add(i);
        }
        std::thread::sleep(Duration::from_millis(20));
        progress.send(&(job, step))?;
    }
    Ok(acc)
}

fn main() {
    eprintln!(
        "classics: a module of tasks for the host examples; run them with `cargo run --example`"
    );
}
