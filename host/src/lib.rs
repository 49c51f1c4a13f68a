//! Python's `multiprocessing`, rebuilt on WebAssembly.
//!
//! A worker is a Wasm module instance: its own linear memory, no ambient
//! authority, hard limits. Arguments go in serialized, an exit status and a
//! result come out, and behaviour is the same on every OS.
//!
//! # A tour
//!
//! Load a module once (the compiled code is cached on disk, so the next
//! program that loads it maps it instead of compiling), then run tasks, each
//! in a fresh instance:
//!
//! ```no_run
//! use std::time::Duration;
//! use wasmproc::{ExitStatus, Limits, Runtime, Task};
//!
//! let runtime = Runtime::new()?;
//! let module = runtime.load("text_stats.wasm")?;
//!
//! // A typed task written with `wasmproc-guest`: serde values in and out.
//! let outcome = module.run(&Task::call("stats", "two words\n")?);
//! let stats: serde_json::Value = outcome.decode()?;
//! assert_eq!(stats["words"], 2);
//!
//! // Limits are enforced and always end the task, with their own status.
//! let limits = Limits::default().timeout(Duration::from_millis(100)).max_memory(16 << 20);
//! let outcome = module.run(&Task::call("stats", "x")?.limits(limits));
//! assert!(outcome.success() || outcome.status == ExitStatus::TimedOut);
//! # Ok::<(), wasmproc::Error>(())
//! ```
//!
//! Any WASI command module, from any language, runs as a [`Task::command`]:
//! argv, env and stdin in; stdout, stderr and the exit code out. Nothing is
//! granted unless asked for: no files, no environment, no network.
//!
//! # Exit statuses
//!
//! Every run ends in exactly one [`ExitStatus`]; its table is on that type.
//! Library calls that cannot produce an outcome (loading a module) return an
//! [`Error`] whose [`exit_status`](Error::exit_status) follows the same
//! table.

mod cache;
mod cancel;
mod capture;
mod ending;
mod engine;
mod error;
pub mod limits;
mod module;
mod outcome;
pub mod pool;
mod sdk_imports;
mod task;
mod worker;

pub use cache::CacheStatus;
pub use cancel::CancelToken;
pub use engine::{
    CACHE_DIR_ENV, DEFAULT_MAX_INSTANCES, Runtime, RuntimeBuilder, bench_engine_config,
};
pub use error::{Error, ErrorKind};
pub use limits::Limits;
pub use module::{ExportInfo, ImportInfo, Module};
pub use outcome::{Captured, ExitStatus, Outcome, TrapKind};
pub use pool::{Isolation, Pool, PoolBuilder, Shutdown, TaskHandle};
pub use task::{Capabilities, DirGrant, Entry, Output, Stdin, Task};
