//! Write wasmproc tasks in Rust.
//!
//! A task is a plain function with serde types in and out. The
//! [`task`] attribute exports it from a wasm32-wasip1 module so that the
//! wasmproc host can run it, each call in a fresh sandboxed instance:
//!
//! ```
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Deserialize)]
//! pub struct Doc {
//!     text: String,
//!     top: usize,
//! }
//!
//! #[derive(Serialize)]
//! pub struct Count {
//!     word: String,
//!     n: usize,
//! }
//!
//! /// `wasmproc run stats.wasm --task top_words --args '{"text":"a b a","top":1}'`
//! /// prints `[{"word":"a","n":2}]`.
//! #[wasmproc_guest::task]
//! fn top_words(doc: Doc) -> Vec<Count> {
//!     let mut counts = std::collections::BTreeMap::<&str, usize>::new();
//!     for word in doc.text.split_whitespace() {
//!         *counts.entry(word).or_default() += 1;
//!     }
//!     let mut counts: Vec<Count> =
//!         counts.into_iter().map(|(w, n)| Count { word: w.to_owned(), n }).collect();
//!     counts.sort_by(|a, b| b.n.cmp(&a.n));
//!     counts.truncate(doc.top);
//!     counts
//! }
//!
//! // The function stays a normal function, callable from native tests.
//! let top = top_words(Doc { text: "a b a".into(), top: 1 });
//! assert_eq!((top[0].word.as_str(), top[0].n), ("a", 2));
//! ```
//!
//! Build the module as a `cdylib` for `wasm32-wasip1` (or as a binary, whose
//! `main` then also makes it a WASI command):
//!
//! ```toml
//! [lib]
//! crate-type = ["cdylib"]
//! ```
//!
//! # The contract
//!
//! - Arguments and results travel as JSON, a self-describing format: the
//!   host binary takes a person's JSON without knowing the Rust types. A task
//!   with no parameter takes `null`; with several, a JSON array of them.
//! - `-> R` succeeds with exit code 0. `-> Result<R, E>` fails with exit code 1
//!   and `E`'s message for any `E: Display`, or with the code of a
//!   [`Failure`].
//! - An argument that does not decode into the parameter type is reported to
//!   the host as a bad invocation (exit status 128), not as a task failure.
//! - A panic prints its message on stderr, hands it to the host and exits with
//!   code 101, as a native Rust program does.
//! - Each task's signature is recorded in the module, with the JSON shape of
//!   its parameters and result. Derive [`Describe`](macro@Describe) beside
//!   serde's derives on your structs and enums: `wasmproc inspect` then
//!   shows their fields, and a mistaken argument is answered with a
//!   complete example (`--args '{"x": 0.0, "y": 0.0}'`). Without it a type
//!   shows by its name only, and works the same.
//!
//! # Talking and sharing
//!
//! A task reaches what the host shared with it, by name and nothing else:
//! queues ([`queue`]), its pipe to whoever submitted it ([`pipe`]), shared
//! regions ([`region`]), and the locks, events, semaphores and barriers of
//! [`sync`]. Waits end when the task's time limit passes.
//!
//! # State built once
//!
//! An [`init`] function builds state (into statics: `OnceLock`, `Mutex`)
//! that the host snapshots once; every task then starts from it, in a
//! fresh instance. See [`init`].

#[cfg(all(target_family = "wasm", target_env = "p2"))]
mod component;
mod connection;
mod describe;
mod failure;
mod ffi;
mod runner;
mod share;
pub mod sync;

pub use connection::Connection;
pub use describe::{Describe, Field, Shape, Variant};
pub use failure::Failure;
pub use runner::exit_with;
pub use share::{Pipe, Queue, Region, ShareError, pipe, queue, region};
/// Derives [`Describe`](trait@Describe): the type's JSON shape, for
/// `wasmproc inspect` and for complete examples in messages about a
/// mistaken argument. See the trait.
pub use wasmproc_guest_macros::Describe;
/// Exports a function as a wasmproc task.
///
/// ```
/// #[wasmproc_guest::task]
/// fn square(x: u64) -> u64 {
///     x * x
/// }
///
/// #[wasmproc_guest::task(name = "add")]
/// fn add_numbers(a: i64, b: i64) -> i64 {
///     a + b
/// }
///
/// #[wasmproc_guest::task]
/// fn parse(text: String) -> Result<u32, std::num::ParseIntError> {
///     text.parse()
/// }
/// # assert_eq!(square(3), 9);
/// ```
///
/// Parameters and the result must implement serde's `Deserialize` and
/// `Serialize`. The task's name is the function's name unless
/// `name = "..."` says otherwise; names are identifiers. The attribute
/// rejects, with an error at the offending code: `async`, generic and `self`
/// functions, `impl Trait` in arguments, and unknown options.
pub use wasmproc_guest_macros::task;

/// Exports a function as a wasmproc initializer: state built once, which
/// every task then starts from.
///
/// ```
/// use std::sync::OnceLock;
///
/// static PRIMES: OnceLock<Vec<u32>> = OnceLock::new();
///
/// #[wasmproc_guest::init]
/// fn sieve(limit: u32) {
///     PRIMES.get_or_init(|| (2..limit).filter(|n| (2..*n).all(|d| n % d != 0)).collect());
/// }
///
/// #[wasmproc_guest::task]
/// fn nth_prime(n: usize) -> Option<u32> {
///     PRIMES.get()?.get(n).copied()
/// }
/// # sieve(30);
/// # assert_eq!(nth_prime(3), Some(7));
/// ```
///
/// The host runs the initializer once (`Module::initialize`, or
/// `wasmproc run --init sieve --init-args 1000000`), snapshots the
/// instance's memory and globals into a new module, and starts every task
/// from that snapshot in a fresh instance: tasks read the state as plain
/// statics, and what one task changes, the next does not see.
///
/// Parameters follow [`task`]'s rules; the function returns `()` or
/// `Result<(), E>` with `E` into [`Failure`], and an error, a panic or a
/// limit fails the initialization (nothing is snapshot). A module may have
/// several initializers; the host runs the one named.
///
/// A snapshot holds memory, not the host's handles: files the initializer
/// opened must be closed (read what is needed into memory) before it
/// returns, or the host refuses the snapshot. Queues, pipes and regions are
/// not granted to initializers.
pub use wasmproc_guest_macros::init;

/// Exports a function as a connection handler: the host (`wasmproc serve
/// handler.wasm`) calls it once per accepted connection, each in a fresh
/// sandboxed instance, with the connection as a `Read + Write` stream.
///
/// ```
/// use std::io::{Read, Write};
/// use wasmproc_guest::Connection;
///
/// /// Answers each connection with what it sent, upper-cased.
/// #[wasmproc_guest::handler]
/// fn shout(connection: &mut Connection) -> std::io::Result<()> {
///     let mut text = String::new();
///     connection.read_to_string(&mut text)?;
///     connection.write_all(text.to_uppercase().as_bytes())
/// }
/// # let _ = shout;
/// ```
///
/// The function takes `&mut Connection` and returns `()` or `Result<(), E>`
/// (an error's message reaches the host's log, with exit code 1, or a
/// [`Failure`]'s code). It is exported as a task of that name, which takes
/// no argument, so `wasmproc inspect` lists it and `serve --task NAME`
/// picks it; `serve` uses a module's only task by default. The host hangs
/// the connection up when the function returns.
pub use wasmproc_guest_macros::handler;

/// What the `#[task]` and `#[init]` expansions refer to; not a public API.
#[doc(hidden)]
pub mod __private {
    #[cfg(all(target_family = "wasm", target_env = "p2"))]
    pub use crate::component::register;
    pub use crate::describe::{Piece, Probe, Undescribed, record_bytes, record_len};
    pub use crate::runner::{run_init, run_task};
    pub use serde;
}
