//! The integration suite: real guests compiled to wasm32-wasip1 by
//! `build.rs`, run through the real wasmproc library and binary.

// Every row of the exit-status table, through the library.
mod statuses;
// Typed SDK tasks: rich serde types, several arguments, errors, panics.
mod sdk;
// argv, env, stdin, preopened dirs, and what is denied without a grant.
mod capabilities;
// Captured, truncated, passed-through and written output; host panics.
mod output;
// Timeouts (busy and blocked in host calls), fuel, memory, stack.
mod limits;
// The compiled-module cache: hits, corrupt and stale entries.
mod cache;
// Non-Rust guests: WebAssembly text and C.
mod foreign;
// Pools: submit, handles, map, chunks, shutdown; the no-task-lost stress test.
mod pool;
// Thread and process isolation agree; process workers are supervised.
mod isolation;
// The `wasmproc` binary: run, inspect, compile, flags and exit codes.
mod cli;
// `wasmproc map`: NDJSON in and out, per-line statuses, the run's exit code.
mod cli_map;
