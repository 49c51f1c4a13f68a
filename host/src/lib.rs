//! Python's `multiprocessing`, rebuilt on WebAssembly.
//!
//! A worker is a Wasm module instance: its own linear memory, no ambient
//! authority, hard limits. Arguments go in serialized, an exit status and a
//! result come out, and behaviour is the same on every OS.
//!
//! # A tour
//!
//! Load a module once (the compiled code is cached on disk, so the next
//! program that loads it reads and verifies the cached code instead of
//! compiling), then run tasks, each
//! in a fresh instance. Modules usually come from files
//! ([`Runtime::load`]); this one is WebAssembly text written by hand, so
//! that the example runs as it is:
//!
//! ```
//! use std::time::Duration;
//! use wasmproc::{ExitStatus, Limits, Pool, Runtime, Task};
//!
//! // A typed task, `echo`, following the SDK's contract by hand: it answers
//! // with its own argument. (Rust guests write `#[wasmproc_guest::task]`.)
//! const ECHO: &str = r#"(module
//!   (import "wasmproc_v1" "input_len" (func $len (result i32)))
//!   (import "wasmproc_v1" "input_read" (func $read (param i32)))
//!   (import "wasmproc_v1" "output_write" (func $write (param i32 i32)))
//!   (memory (export "memory") 1)
//!   (func (export "wasmproc_task:echo") (result i32)
//!     (call $read (i32.const 0))
//!     (call $write (i32.const 0) (call $len))
//!     (i32.const 0))
//!   (func (export "wasmproc_task:spin") (result i32)
//!     (loop br 0)
//!     (i32.const 0)))"#;
//!
//! let runtime = Runtime::builder().no_cache().build()?;
//! let module = runtime.load_bytes("echo.wat", ECHO.as_bytes())?;
//! assert_eq!(module.tasks(), ["echo", "spin"]);
//!
//! // Serde values in, serde values out.
//! let outcome = module.run(&Task::call("echo", &vec!["a", "b"])?);
//! assert_eq!(outcome.decode::<Vec<String>>()?, ["a", "b"]);
//!
//! // Limits are enforced and always end the task, with their own status.
//! let limits = Limits::default().timeout(Duration::from_millis(50));
//! let outcome = module.run(&Task::call("spin", &())?.limits(limits));
//! assert_eq!(outcome.status, ExitStatus::TimedOut);
//! assert_eq!(outcome.status.code(), 142);
//!
//! // A pool runs many, streaming results in input order.
//! let pool = Pool::builder(&module).workers(2).build()?;
//! let echoed: Vec<u32> = pool.map("echo", 0..100u32).map(|o| o.decode().unwrap()).collect();
//! assert_eq!(echoed, (0..100).collect::<Vec<_>>());
//! # Ok::<(), wasmproc::Error>(())
//! ```
//!
//! Any WASI command module, from any language, runs as a [`Task::command`]:
//! argv, env and stdin in; stdout, stderr and the exit code out. Nothing is
//! granted unless asked for: no files, no environment, no network.
//!
//! # Talking and sharing
//!
//! Tasks talk to the host and to each other through what the host shares
//! with them by name ([`Task::share`], [`Task::pipe`]), and nothing else:
//! [`Queue`] (`multiprocessing.Queue`), [`pipe`] (`Pipe`), [`SharedRegion`]
//! (`shared_memory`, `Value`, `Array`: OS shared memory, mapped into worker
//! processes too) and, over regions, [`Lock`], [`Event`], [`Semaphore`] and
//! [`Barrier`]. Guests use them with `wasmproc_guest::{queue, pipe, region,
//! sync}`. Waits in a guest end at its time limit or cancellation; locks
//! are robust ([`OwnerDied`]); the same programs give the same results in
//! thread and process isolation.
//!
//! A task looping on a queue is `multiprocessing.Process`: [`Pool::submit`]
//! returns its [`TaskHandle`], to join ([`TaskHandle::wait`]), terminate
//! ([`TaskHandle::cancel`]) and read the exit status of
//! ([`Outcome::status`]).
//!
//! ```
//! use wasmproc::{Queue, SharedRegion, Task, pipe};
//!
//! let jobs = Queue::<u64>::new(64);
//! let counts = SharedRegion::new(64)?;
//! let (progress, theirs) = pipe();
//! let worker = Task::call("worker", &())?
//!     .share("jobs", &jobs)
//!     .share("counts", &counts)
//!     .pipe(theirs);
//! assert_eq!(worker.shared_names().collect::<Vec<_>>(), ["counts", "jobs"]);
//! # drop(progress);
//! # Ok::<(), wasmproc::Error>(())
//! ```
//!
//! # State built once
//!
//! An initializer (`#[wasmproc_guest::init]` in the guest) builds state
//! once; [`Module::initialize`] runs it and returns a module whose every
//! task starts from a snapshot of that state, in a fresh instance,
//! copy-on-write ("fork without fork", on every OS). The snapshot is cached
//! (the next program maps it instead of initializing), worker processes map
//! it from the cache, and [`PoolBuilder::initializer`] is the
//! `Pool(initializer=…)` spelling. An initializer's failure is an [`Error`]
//! with the status a task would get.
//!
//! ```no_run
//! use wasmproc::{Initializer, Limits, Pool, Runtime, Task};
//! use std::time::Duration;
//!
//! let module = Runtime::new()?.load("primes.wasm")?;
//! let sieve = Initializer::call("sieve", &50_000_000u32)?
//!     .limits(Limits::default().timeout(Duration::from_secs(30)));
//! let primes = module.initialize_with(&sieve)?;
//! let pool = Pool::builder(&primes).build()?;
//! let answers: Vec<bool> = pool
//!     .map("is_prime", [7u64, 49_999_991, 50_000_000])
//!     .map(|outcome| outcome.decode())
//!     .collect::<Result<_, _>>()?;
//! assert_eq!(answers, [true, true, false]);
//! # Ok::<(), wasmproc::Error>(())
//! ```
//!
//! # Serving connections
//!
//! [`serve::Server`] accepts connections and gives each one a fresh worker
//! whose stdin and stdout are the connection (the inetd convention; a
//! `#[wasmproc_guest::handler]` gets it as a `Read + Write` stream), in
//! either isolation, with one [`serve::ConnectionRecord`] per connection and
//! a graceful stop. A program that accepts connections itself hands one to
//! a task with [`Task::connection`].
//!
//! # Exit statuses
//!
//! Every run ends in exactly one [`ExitStatus`]; its table is on that type.
//! Library calls that cannot produce an outcome (loading a module) return an
//! [`Error`] whose [`exit_status`](Error::exit_status) follows the same
//! table.

// The layers, from the bottom up: a module uses only those declared before
// it (ARCHITECTURE.md has the map; the `layers` test reads this order and
// fails on a use that points up). Blank lines keep rustfmt from sorting.

mod mutex;

// How a task ended: the one table.
mod status;

// Cancelling from any thread.
mod cancel;

// The one error type.
mod error;

// What a run produced.
mod outcome;

// Per-task limits.
mod limits;

// Queues, pipes, shared regions and locks granted to tasks.
mod share;

// What to run.
mod task;

// Compiled modules on disk.
mod cache;

// wasmtime engines, the epoch ticker, instance permits.
mod engine;

// A task's store data and host functions.
mod store;

// Engines with linkers, the cache and the ticker.
mod runtime;

// A component's exported functions as typed tasks: JSON in and out.
mod typed;

// A loaded, described module; resolving entries.
mod module;

// Running one task or a chunk.
mod run;

// Pools of thread or process workers.
mod pool;

// One interface over pools and other back ends.
mod executor;

// Servers: a fresh worker per accepted connection.
pub mod serve;

// Entry points for fuzzing (not an API).
#[doc(hidden)]
pub mod fuzzing;

pub use cache::{CACHE_MAX_ENV, CacheEntry, CacheStatus, DEFAULT_CACHE_MAX, EntryKind};
pub use cancel::CancelToken;
pub use error::{Cause, Error, ErrorKind};
pub use executor::{Executor, MapOptions, Results, Transform};
pub use limits::{
    DEFAULT_MAX_ARGS, DEFAULT_MAX_MEMORY, DEFAULT_MAX_OUTPUT, DEFAULT_MAX_RESULT,
    DEFAULT_MAX_WASM_STACK, Limits, MAX_SIZE_LIMIT,
};
pub use module::{
    ExportInfo, ImportInfo, Module, Param, Shape, ShapeField, ShapeVariant, TaskSignature,
};
pub use outcome::{Captured, FailedRun, Outcome};
pub use pool::process::{ProcessOptions, WORKER_ENV, run_worker_if_requested};
pub use pool::{
    Completion, Isolation, MAX_CHUNKSIZE, MapResults, Pool, PoolBuilder, Shutdown, TaskHandle,
    TaskSender, TaskSource, TaskStream, UnorderedResults,
};
pub use runtime::{
    CACHE_DIR_ENV, DEFAULT_MAX_INSTANCES, DEFAULT_MAX_MODULE_FUNCTIONS, DEFAULT_MAX_MODULE_SIZE,
    Runtime, RuntimeBuilder,
};
pub use share::{
    Barrier, Event, Lock, LockGuard, LockResult, OwnerDied, PipeEnd, Queue, Semaphore, Shared,
    SharedRegion, pipe,
};
pub use status::{ExitStatus, TrapKind};
pub use task::{
    Capabilities, Connection, DirGrant, Entry, Initializer, Output, Stdin, Task, TaskSpec,
};
