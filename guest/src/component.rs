//! The SDK on wasm32-wasip2, where a guest is a component: the contract's
//! imports come from the WIT interface `wasmproc:guest/host` (`guest/wit`),
//! and the tasks are reached through one exported dispatcher,
//! `wasmproc:guest/tasks`, since a component exports WIT functions only.
//!
//! Each `#[task]`, `#[init]` and `#[handler]` registers its function here
//! from a static constructor (`.init_array`), which wasm-ld runs through
//! `__wasm_call_ctors` before the first export runs (wit-bindgen's exports
//! call it once).

use std::sync::Mutex;

wit_bindgen::generate!({
    path: "wit",
    world: "sdk",
    default_bindings_module: "crate::component",
});

pub(crate) use wasmproc::guest::host;

/// A registered task or initializer: its core export name
/// (`wasmproc_task:NAME` or `wasmproc_init:NAME`) and its wrapper.
type Entry = (&'static str, extern "C" fn() -> i32);

/// Every task and initializer of the guest, filled by the constructors.
static REGISTRY: Mutex<Vec<Entry>> = Mutex::new(Vec::new());

/// Registers the wrapper of a task or initializer under its export name;
/// the attributes' constructors call this. Registering a name again
/// replaces it, so constructors that run twice do no harm.
pub fn register(export: &'static str, wrapper: extern "C" fn() -> i32) {
    let mut registry = REGISTRY.lock().unwrap_or_else(|poison| poison.into_inner());
    match registry.iter_mut().find(|(name, _)| *name == export) {
        Some(entry) => entry.1 = wrapper,
        None => registry.push((export, wrapper)),
    }
}

/// Runs the registered function `prefix` + `name`: its exit code, or -1
/// when there is none.
fn dispatch(prefix: &str, name: &str) -> i32 {
    let found = {
        let registry = REGISTRY.lock().unwrap_or_else(|poison| poison.into_inner());
        registry
            .iter()
            .find(|(export, _)| export.strip_prefix(prefix) == Some(name))
            .map(|(_, wrapper)| *wrapper)
    };
    // The lock is released before the call: a task may take a long time.
    found.map_or(wasmproc_abi::WIT_NO_SUCH_NAME, |wrapper| wrapper())
}

struct Dispatcher;

impl exports::wasmproc::guest::tasks::Guest for Dispatcher {
    fn run_task(name: String) -> i32 {
        dispatch(wasmproc_abi::TASK_EXPORT_PREFIX, &name)
    }

    fn run_init(name: String) -> i32 {
        dispatch(wasmproc_abi::INIT_EXPORT_PREFIX, &name)
    }
}

export!(Dispatcher);

/// The safe functions of `crate::ffi` over the WIT imports.
pub(crate) mod ffi {
    use super::host;

    /// Reads the task's argument bytes from the host.
    pub(crate) fn read_input() -> Vec<u8> {
        host::input()
    }

    /// Hands the task's result bytes to the host.
    pub(crate) fn write_output(bytes: &[u8]) {
        host::output(bytes)
    }

    /// Ends the task at once with exit code `code`. Not WASI's `exit`,
    /// whose stable form only tells success from failure: the host's,
    /// which keeps the code. Standard output is flushed first, as
    /// `std::process::exit` does.
    pub(crate) fn exit(code: i32) -> ! {
        let _ = std::io::Write::flush(&mut std::io::stdout());
        host::exit(code as u32);
        // The host ends the task in `exit`; this is never reached.
        std::process::abort()
    }

    /// Reports a failure of `kind` (see `wasmproc_abi::failure`).
    pub(crate) fn fail(kind: i32, message: &str) {
        host::fail(kind, message)
    }

    /// The sharing imports, with the signatures of the core module's.
    pub(crate) mod share {
        use super::host;

        pub(crate) fn queue_open(name: &str) -> i32 {
            host::queue_open(name)
        }

        pub(crate) fn pipe_open() -> i32 {
            host::pipe_open()
        }

        pub(crate) fn channel_send(handle: i32, message: &[u8], timeout_ns: i64) -> i32 {
            host::channel_send(handle, message, timeout_ns)
        }

        /// Receives a message: `Ok(bytes)` or `Err(code)`.
        pub(crate) fn channel_recv(handle: i32, timeout_ns: i64) -> Result<Vec<u8>, i32> {
            host::channel_recv(handle, timeout_ns)
        }

        pub(crate) fn channel_close(handle: i32) -> i32 {
            host::channel_close(handle)
        }

        pub(crate) fn region_open(name: &str) -> i32 {
            host::region_open(name)
        }

        pub(crate) fn region_size(handle: i32) -> i64 {
            host::region_size(handle)
        }

        pub(crate) fn region_read(handle: i32, offset: u64, buf: &mut [u8]) {
            let len = u32::try_from(buf.len()).expect("a wasm32 slice is shorter than 4 GiB");
            let bytes = host::region_read(handle, offset as i64, len);
            buf.copy_from_slice(&bytes);
        }

        pub(crate) fn region_write(handle: i32, offset: u64, bytes: &[u8]) {
            host::region_write(handle, offset as i64, bytes)
        }

        pub(crate) fn atomic32(handle: i32, op: i32, offset: u64, a: u32, b: u32) -> u32 {
            host::region_atomic32(handle, op, offset as i64, a as i32, b as i32) as u32
        }

        pub(crate) fn atomic64(handle: i32, op: i32, offset: u64, a: u64, b: u64) -> u64 {
            host::region_atomic64(handle, op, offset as i64, a as i64, b as i64) as u64
        }

        pub(crate) fn region_wait(handle: i32, offset: u64, expected: u32, timeout_ns: i64) -> i32 {
            host::region_wait(handle, offset as i64, expected as i32, timeout_ns)
        }

        pub(crate) fn region_lock_wait(
            handle: i32,
            offset: u64,
            expected: u32,
            timeout_ns: i64,
        ) -> i32 {
            host::region_lock_wait(handle, offset as i64, expected as i32, timeout_ns)
        }

        pub(crate) fn region_notify(handle: i32, offset: u64, count: u32) -> u32 {
            host::region_notify(handle, offset as i64, count as i32) as u32
        }

        pub(crate) fn holder_id() -> u32 {
            host::holder_id() as u32
        }
    }
}
