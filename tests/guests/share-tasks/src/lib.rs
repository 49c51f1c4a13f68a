//! Tasks that talk and share: each uses the queues, pipe, regions and locks
//! the host granted it, by name.

use std::time::Duration;

use wasmproc_guest::sync::{Barrier, Event, Lock, Semaphore};
use wasmproc_guest::{ShareError, pipe, queue, region, task};

/// Puts `0..n` on the queue `jobs`.
#[task]
fn produce(n: u64) -> Result<u64, ShareError> {
    let jobs = queue::<u64>("jobs")?;
    for i in 0..n {
        jobs.put(&i)?;
    }
    Ok(n)
}

/// Puts `from..from + n` on the queue `jobs`.
#[task]
fn produce_from(from: u64, n: u64) -> Result<u64, ShareError> {
    let jobs = queue::<u64>("jobs")?;
    for i in from..from + n {
        jobs.put(&i)?;
    }
    Ok(n)
}

/// Moves values one at a time from `jobs` to `done` until `jobs` is
/// closed and drained; returns how many it moved.
#[task]
fn forward() -> Result<u64, ShareError> {
    let (jobs, done) = (queue::<u64>("jobs")?, queue::<u64>("done")?);
    let mut moved = 0;
    loop {
        match jobs.get() {
            Ok(job) => done.put(&job)?,
            Err(ShareError::Closed) => return Ok(moved),
            Err(error) => return Err(error),
        }
        moved += 1;
    }
}

/// Takes from `jobs` until it is closed and drained; returns the sum and
/// how many it took.
#[task]
fn consume() -> Result<(u64, u64), ShareError> {
    let jobs = queue::<u64>("jobs")?;
    let (mut sum, mut taken) = (0, 0);
    loop {
        match jobs.get() {
            Ok(job) => {
                sum += job;
                taken += 1;
            }
            Err(ShareError::Closed) => return Ok((sum, taken)),
            Err(error) => return Err(error),
        }
    }
}

/// Tells the host this task runs, when it granted the queue `started`: a
/// test waits for that instead of sleeping and hoping the task has reached
/// the wait it means to test.
fn announce() -> Result<(), ShareError> {
    match queue::<u64>("started") {
        Ok(started) => started.put(&0),
        Err(ShareError::NotGranted { .. }) => Ok(()),
        Err(error) => Err(error),
    }
}

/// Takes one value from `jobs`, waiting as long as it takes (announced).
#[task]
fn take_one() -> Result<u64, ShareError> {
    let jobs = queue::<u64>("jobs")?;
    announce()?;
    jobs.get()
}

/// Takes one value from `jobs`, waiting at most `ms`: `null` if none came.
#[task]
fn take_within(ms: u64) -> Result<Option<u64>, ShareError> {
    queue::<u64>("jobs")?.get_timeout(Duration::from_millis(ms))
}

/// Puts `count` strings of `len` bytes on `jobs`; returns how many went in.
#[task]
fn flood(count: u64, len: usize) -> Result<u64, ShareError> {
    let jobs = queue::<String>("jobs")?;
    let text = "x".repeat(len);
    for _ in 0..count {
        jobs.put(&text)?;
    }
    Ok(count)
}

/// Puts `0..count` on `jobs`, waiting as long as each put takes, then
/// exits with `code`: a put that never finds room must hold the exit back.
#[task]
fn put_then_exit(count: u64, code: i32) -> Result<(), ShareError> {
    let jobs = queue::<u64>("jobs")?;
    for i in 0..count {
        jobs.put(&i)?;
    }
    std::process::exit(code)
}

/// Tries to put a string of `len` bytes: the error, if any, as text.
#[task]
fn put_large(len: usize) -> String {
    match queue::<String>("jobs").and_then(|jobs| jobs.put(&"y".repeat(len))) {
        Ok(()) => "sent".into(),
        Err(error) => error.to_string(),
    }
}

/// Opens a queue by `name`: the error, if any, as text.
#[task]
fn open_queue(name: String) -> String {
    match queue::<u64>(&name) {
        Ok(_) => "granted".into(),
        Err(error) => error.to_string(),
    }
}

/// Answers each number on the pipe with its double, `n` times.
#[task]
fn doubler(n: u64) -> Result<u64, ShareError> {
    let pipe = pipe()?;
    for _ in 0..n {
        let x: u64 = pipe.recv()?;
        pipe.send(&(x * 2))?;
    }
    Ok(n)
}

/// Reports progress `1..=n` on the pipe, then returns `n`.
#[task]
fn progress(n: u64) -> Result<u64, ShareError> {
    let pipe = pipe()?;
    for step in 1..=n {
        pipe.send(&step)?;
    }
    Ok(n)
}

/// Adds 1 to the u64 at offset 0 of `counts`, `n` times, atomically.
#[task]
fn count(n: u64) -> Result<u64, ShareError> {
    let counts = region("counts")?;
    for _ in 0..n {
        counts.fetch_add_u64(0, 1)?;
    }
    counts.load_u64(0)
}

/// Adds 1 to the u64 at offset 0 of `counts`, `n` times, as a read and a
/// write under the lock `lock`: correct only if the lock excludes.
#[task]
fn locked_count(n: u64) -> Result<u64, ShareError> {
    let counts = region("counts")?;
    let lock = Lock::open("lock")?;
    for _ in 0..n {
        let _held = lock.lock().unwrap_or_else(|died| died.into_guard());
        let value = counts.load_u64(0)?;
        counts.store_u64(0, value + 1)?;
    }
    Ok(n)
}

/// Takes `lock`, sets the event `held`, then ends as `how` says while
/// holding it: "trap", "exit", "spin" (until a limit or a cancel).
#[task]
fn die_holding(how: String) -> Result<(), ShareError> {
    let lock = Lock::open("lock")?;
    let _held = lock.lock().unwrap_or_else(|died| died.into_guard());
    Event::open("held")?.set();
    match how.as_str() {
        "trap" => std::process::abort(),
        "exit" => std::process::exit(3),
        _ => loop {
            std::hint::spin_loop();
        },
    }
}

/// Takes `lock`: "owner died" when its last holder ended holding it.
#[task]
fn take_lock() -> Result<String, ShareError> {
    let lock = Lock::open("lock")?;
    Ok(match lock.lock() {
        Ok(_held) => "acquired".into(),
        Err(_died) => "owner died".into(),
    })
}

/// Waits for the event `go`, then returns true (announced).
#[task]
fn wait_event() -> Result<bool, ShareError> {
    let go = Event::open("go")?;
    announce()?;
    go.wait();
    Ok(true)
}

/// Meets the others at the barrier `meet`; true for the last to arrive.
#[task]
fn meet() -> Result<bool, ShareError> {
    Ok(Barrier::open("meet")?.wait())
}

/// Takes a permit of `permits`, holds it `ms`, and gives it back; returns
/// the most holders seen at once (counted at offset 0 of `counts`).
#[task]
fn with_permit(ms: u64) -> Result<u64, ShareError> {
    let permits = Semaphore::open("permits")?;
    let counts = region("counts")?;
    permits.acquire();
    let now = counts.fetch_add_u64(0, 1)? + 1;
    counts.fetch_add_u64(8, 0)?;
    let mut most = counts.load_u64(8)?;
    while now > most {
        match counts.compare_exchange_u64(8, most, now)? {
            Ok(_) => break,
            Err(seen) => most = seen,
        }
    }
    std::thread::sleep(Duration::from_millis(ms));
    counts.fetch_sub_u64(0, 1)?;
    permits.release();
    counts.load_u64(8)
}

/// Region misuse through the SDK: the errors it returns, as text.
#[task]
fn region_errors() -> Result<Vec<String>, ShareError> {
    let counts = region("counts")?;
    let size = counts.len();
    Ok(vec![
        counts.load_u64(size).unwrap_err().to_string(),
        counts.load_u64(4).unwrap_err().to_string(),
        counts.write(size - 1, b"ab").unwrap_err().to_string(),
    ])
}

/// Writes `text` at `offset` of `counts`, then reads it back.
#[task]
fn write_read(offset: u64, text: String) -> Result<String, ShareError> {
    let counts = region("counts")?;
    counts.write(offset, text.as_bytes())?;
    let mut back = vec![0; text.len()];
    counts.read(offset, &mut back)?;
    Ok(String::from_utf8_lossy(&back).into_owned())
}

/// Sleeps on the word at offset 0 of `counts` while it holds 0; returns
/// its value once woken (announced).
#[task]
fn wait_word() -> Result<u32, ShareError> {
    let counts = region("counts")?;
    announce()?;
    while counts.load_u32(0)? == 0 {
        counts.wait_u32(0, 0, None)?;
    }
    counts.load_u32(0)
}

/// `n` atomic adds on `counts`, for the benchmark.
#[task]
fn bench_fetch_add(n: u64) -> Result<u64, ShareError> {
    let counts = region("counts")?;
    for _ in 0..n {
        counts.fetch_add_u64(0, 1)?;
    }
    Ok(n)
}

/// Puts `n` small messages on `jobs`, for the benchmark.
#[task]
fn bench_produce(n: u32) -> Result<u32, ShareError> {
    let jobs = queue::<u32>("jobs")?;
    for i in 0..n {
        jobs.put(&i)?;
    }
    Ok(n)
}
