//! The library's integration suite: real guests compiled to wasm32-wasip1
//! by `build.rs`, run through the real wasmproc library. (The binary's
//! tests are in `tests/cli`.)

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
// The one interface over back ends, through a pool in both isolations.
mod executor;
// The fuzz entry points over seeds and their mutations: no panic.
mod fuzzed;
// The library's layers point one way (read from its source).
mod layers;
// Thread and process isolation agree; process workers are supervised.
mod isolation;
// Queues, pipes, shared regions and locks between the host and tasks.
mod share;
// Initializers as snapshots: state built once, tasks isolated, the cache.
mod init;
// Serving connections: a fresh worker per connection, real sockets.
mod serve;
// Reactors and custom entry points (`Task::invoke`); unknown imports stubbed.
mod invoke;
// WASI 0.2 command components (wasm32-wasip2) run like preview-1 commands.
mod components;
mod typed_components;
// SDK guests built for wasm32-wasip2: components through the SDK's WIT contract.
mod sdk_components;
// Initializers of components, snapshot with wizer.
mod component_init;
// Proposals past the MVP, modules past the pool's old limits, and the
// error of an unsupported proposal.
mod wasm_features;

/// The host program the suite's process pools start as their workers
/// (`tests/bin/pool_host.rs`; cargo builds it for this test).
fn pool_host() -> &'static std::path::Path {
    std::path::Path::new(env!("CARGO_BIN_EXE_pool-host"))
}

/// A pool of one worker over `module` in each isolation, with its name.
fn one_worker_pools(module: &wasmproc::Module) -> Vec<(&'static str, wasmproc::Pool)> {
    let process = wasmproc::ProcessOptions::default().executable(pool_host());
    vec![
        (
            "thread",
            wasmproc::Pool::builder(module).workers(1).build().unwrap(),
        ),
        (
            "process",
            wasmproc::Pool::builder(module)
                .workers(1)
                .isolation(wasmproc::Isolation::Process(process))
                .build()
                .unwrap(),
        ),
    ]
}
