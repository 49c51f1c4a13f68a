//! A reactor: a library module (no `_start`, an `_initialize` instead)
//! whose plain exported functions `wasmproc run --invoke` calls, as
//! `wasmtime run --invoke` does. It uses no SDK: any language's reactor
//! works the same way.
//!
//! ```sh
//! cargo build --release -p wasmproc-guest --examples --target wasm32-wasip1
//! wasmproc run --invoke add target/wasm32-wasip1/release/examples/reactor.wasm 2 40   # prints 42
//! ```

/// `() -> i32`: its result is the task's exit status (0: success).
#[unsafe(no_mangle)]
pub extern "C" fn run() -> i32 {
    0
}

/// `(i32, i64) -> i64`: the result is printed.
#[unsafe(no_mangle)]
pub extern "C" fn add(a: i32, b: i64) -> i64 {
    i64::from(a) + b
}
