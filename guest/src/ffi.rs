//! The raw imports of the wasmproc host: the only `unsafe` of the SDK.
//!
//! On targets other than wasm the host is absent, and these functions panic:
//! task functions stay plain Rust functions that native tests can call, but
//! only the host can feed them arguments through this file.

#[cfg(all(target_family = "wasm", not(target_env = "p2")))]
mod imports {
    #[link(wasm_import_module = "wasmproc_v1")]
    unsafe extern "C" {
        pub fn input_len() -> i32;
        pub fn input_read(ptr: *mut u8);
        pub fn output_write(ptr: *const u8, len: i32);
        pub fn fail(kind: i32, ptr: *const u8, len: i32);
    }
}

/// Reads the task's argument bytes from the host.
#[cfg(all(target_family = "wasm", not(target_env = "p2")))]
pub(crate) fn read_input() -> Vec<u8> {
    // SAFETY: `input_len` takes no pointers; the host only reports a length.
    let len = unsafe { imports::input_len() };
    let len = usize::try_from(len).unwrap_or(0);
    let mut buf = Vec::<u8>::with_capacity(len);
    if len > 0 {
        // SAFETY: the host writes exactly `len` bytes (the value it returned
        // from `input_len`) at `ptr`, and `buf` has capacity for `len` bytes.
        // After the write those bytes are initialized, so `set_len` is sound.
        unsafe {
            imports::input_read(buf.as_mut_ptr());
            buf.set_len(len);
        }
    }
    buf
}

/// Hands the task's result bytes to the host.
#[cfg(all(target_family = "wasm", not(target_env = "p2")))]
pub(crate) fn write_output(bytes: &[u8]) {
    let len = i32::try_from(bytes.len()).expect("a wasm32 slice is shorter than 2 GiB");
    // SAFETY: `bytes` is a live slice of `len` bytes; the host only reads it.
    unsafe { imports::output_write(bytes.as_ptr(), len) }
}

/// Reports a failure of `kind` (see `wasmproc_abi::failure`) with a message.
#[cfg(all(target_family = "wasm", not(target_env = "p2")))]
pub(crate) fn fail(kind: i32, message: &str) {
    let len = i32::try_from(message.len()).unwrap_or(i32::MAX);
    // SAFETY: `message` is a live UTF-8 slice of at least `len` bytes; the
    // host only reads it.
    unsafe { imports::fail(kind, message.as_ptr(), len) }
}

/// Makes wasi-libc forget the directories it was granted, so that a
/// snapshot taken now does not carry them: each task that starts from the
/// snapshot finds its own grants, which may differ from the initializer's.
#[cfg(all(target_family = "wasm", target_os = "wasi"))]
pub(crate) fn forget_preopens() {
    unsafe extern "C" {
        fn __wasilibc_reset_preopens();
    }
    // SAFETY: wasi-libc's own function, taking nothing and returning
    // nothing: it closes no descriptor, only clears libc's table of the
    // granted directories, which libc fills again on its next path lookup.
    // Nothing else runs in the instance while it does (one thread).
    unsafe { __wasilibc_reset_preopens() }
}

/// Off wasm there is no libc table of granted directories to clear.
#[cfg(not(all(target_family = "wasm", target_os = "wasi")))]
pub(crate) fn forget_preopens() {}

#[cfg(not(target_family = "wasm"))]
const NOT_IN_HOST: &str =
    "wasmproc-guest: task exports only run inside the wasmproc host (build for wasm32-wasip1)";

#[cfg(not(target_family = "wasm"))]
pub(crate) fn read_input() -> Vec<u8> {
    panic!("{NOT_IN_HOST}")
}

#[cfg(not(target_family = "wasm"))]
pub(crate) fn write_output(_bytes: &[u8]) {
    panic!("{NOT_IN_HOST}")
}

#[cfg(not(target_family = "wasm"))]
pub(crate) fn fail(_kind: i32, _message: &str) {
    panic!("{NOT_IN_HOST}")
}

/// Ends the task at once with exit code `code`, as a native program's
/// `exit` does.
#[cfg(not(all(target_family = "wasm", target_env = "p2")))]
pub(crate) fn exit(code: i32) -> ! {
    std::process::exit(code)
}

// On wasm32-wasip2 the same functions call the component's WIT imports.
#[cfg(all(target_family = "wasm", target_env = "p2"))]
pub(crate) use crate::component::ffi::{exit, fail, read_input, share, write_output};

/// The sharing imports (`wasmproc_abi::share`), one safe function each.
#[cfg(not(all(target_family = "wasm", target_env = "p2")))]
pub(crate) mod share {
    /// Declares the imports: linked from the host on wasm; elsewhere
    /// functions that panic, as there is no host to call.
    macro_rules! imports {
        ($(fn $name:ident($($arg:ident: $ty:ty),*) $(-> $ret:ty)?;)*) => {
            #[cfg(target_family = "wasm")]
            mod imports {
                #[link(wasm_import_module = "wasmproc_v1")]
                unsafe extern "C" {
                    $(pub fn $name($($arg: $ty),*) $(-> $ret)?;)*
                }
            }

            #[cfg(not(target_family = "wasm"))]
            #[allow(unused_variables, clippy::missing_safety_doc)]
            mod imports {
                $(pub unsafe fn $name($($arg: $ty),*) $(-> $ret)? {
                    panic!("{}", super::super::NOT_IN_HOST)
                })*
            }
        };
    }

    imports! {
        fn queue_open(ptr: *const u8, len: i32) -> i32;
        fn pipe_open() -> i32;
        fn channel_send(handle: i32, ptr: *const u8, len: i32, timeout_ns: i64) -> i32;
        fn channel_recv(handle: i32, timeout_ns: i64) -> i64;
        fn message_read(ptr: *mut u8);
        fn channel_close(handle: i32) -> i32;
        fn region_open(ptr: *const u8, len: i32) -> i32;
        fn region_size(handle: i32) -> i64;
        fn region_read(handle: i32, offset: i64, ptr: *mut u8, len: i32);
        fn region_write(handle: i32, offset: i64, ptr: *const u8, len: i32);
        fn region_atomic32(handle: i32, op: i32, offset: i64, a: i32, b: i32) -> i64;
        fn region_atomic64(handle: i32, op: i32, offset: i64, a: i64, b: i64) -> i64;
        fn region_wait(handle: i32, offset: i64, expected: i32, timeout_ns: i64) -> i32;
        fn region_notify(handle: i32, offset: i64, count: i32) -> i32;
        fn region_lock_wait(handle: i32, offset: i64, expected: i32, timeout_ns: i64) -> i32;
        fn holder_id() -> i32;
    }

    fn len_of(bytes: &[u8]) -> i32 {
        i32::try_from(bytes.len()).expect("a wasm32 slice is shorter than 2 GiB")
    }

    pub(crate) fn queue_open(name: &str) -> i32 {
        // SAFETY: the host reads `name`, a live slice of that length.
        unsafe { imports::queue_open(name.as_ptr(), len_of(name.as_bytes())) }
    }

    pub(crate) fn pipe_open() -> i32 {
        // SAFETY: no pointers.
        unsafe { imports::pipe_open() }
    }

    pub(crate) fn channel_send(handle: i32, message: &[u8], timeout_ns: i64) -> i32 {
        // SAFETY: the host reads `message`, a live slice of that length.
        unsafe { imports::channel_send(handle, message.as_ptr(), len_of(message), timeout_ns) }
    }

    /// Receives a message: `Ok(bytes)` or `Err(code)`.
    pub(crate) fn channel_recv(handle: i32, timeout_ns: i64) -> Result<Vec<u8>, i32> {
        // SAFETY: no pointers.
        let len = unsafe { imports::channel_recv(handle, timeout_ns) };
        let len = usize::try_from(len).map_err(|_| len as i32)?;
        let mut buf = Vec::<u8>::with_capacity(len);
        // SAFETY: the host writes exactly `len` bytes (the length it
        // returned) at `ptr`, within `buf`'s capacity; they are then
        // initialized, so `set_len` is sound.
        unsafe {
            imports::message_read(buf.as_mut_ptr());
            buf.set_len(len);
        }
        Ok(buf)
    }

    pub(crate) fn channel_close(handle: i32) -> i32 {
        // SAFETY: no pointers.
        unsafe { imports::channel_close(handle) }
    }

    pub(crate) fn region_open(name: &str) -> i32 {
        // SAFETY: the host reads `name`, a live slice of that length.
        unsafe { imports::region_open(name.as_ptr(), len_of(name.as_bytes())) }
    }

    pub(crate) fn region_size(handle: i32) -> i64 {
        // SAFETY: no pointers.
        unsafe { imports::region_size(handle) }
    }

    pub(crate) fn region_read(handle: i32, offset: u64, buf: &mut [u8]) {
        // SAFETY: the host writes at most `buf.len()` bytes into `buf`.
        unsafe { imports::region_read(handle, offset as i64, buf.as_mut_ptr(), len_of(buf)) }
    }

    pub(crate) fn region_write(handle: i32, offset: u64, bytes: &[u8]) {
        // SAFETY: the host reads `bytes`, a live slice of that length.
        unsafe { imports::region_write(handle, offset as i64, bytes.as_ptr(), len_of(bytes)) }
    }

    pub(crate) fn atomic32(handle: i32, op: i32, offset: u64, a: u32, b: u32) -> u32 {
        // SAFETY: no pointers.
        unsafe { imports::region_atomic32(handle, op, offset as i64, a as i32, b as i32) as u32 }
    }

    pub(crate) fn atomic64(handle: i32, op: i32, offset: u64, a: u64, b: u64) -> u64 {
        // SAFETY: no pointers.
        unsafe { imports::region_atomic64(handle, op, offset as i64, a as i64, b as i64) as u64 }
    }

    pub(crate) fn region_wait(handle: i32, offset: u64, expected: u32, timeout_ns: i64) -> i32 {
        // SAFETY: no pointers.
        unsafe { imports::region_wait(handle, offset as i64, expected as i32, timeout_ns) }
    }

    pub(crate) fn region_lock_wait(
        handle: i32,
        offset: u64,
        expected: u32,
        timeout_ns: i64,
    ) -> i32 {
        // SAFETY: no pointers.
        unsafe { imports::region_lock_wait(handle, offset as i64, expected as i32, timeout_ns) }
    }

    pub(crate) fn region_notify(handle: i32, offset: u64, count: u32) -> u32 {
        // SAFETY: no pointers.
        unsafe { imports::region_notify(handle, offset as i64, count as i32) as u32 }
    }

    pub(crate) fn holder_id() -> u32 {
        // SAFETY: no pointers.
        unsafe { imports::holder_id() as u32 }
    }
}
