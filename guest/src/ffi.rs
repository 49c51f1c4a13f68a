//! The raw imports of the wasmproc host: the only `unsafe` of the SDK.
//!
//! On targets other than wasm the host is absent, and these functions panic:
//! task functions stay plain Rust functions that native tests can call, but
//! only the host can feed them arguments through this file.

#[cfg(target_family = "wasm")]
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
#[cfg(target_family = "wasm")]
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
#[cfg(target_family = "wasm")]
pub(crate) fn write_output(bytes: &[u8]) {
    let len = i32::try_from(bytes.len()).expect("a wasm32 slice is shorter than 2 GiB");
    // SAFETY: `bytes` is a live slice of `len` bytes; the host only reads it.
    unsafe { imports::output_write(bytes.as_ptr(), len) }
}

/// Reports a failure of `kind` (see `wasmproc_abi::failure`) with a message.
#[cfg(target_family = "wasm")]
pub(crate) fn fail(kind: i32, message: &str) {
    let len = i32::try_from(message.len()).unwrap_or(i32::MAX);
    // SAFETY: `message` is a live UTF-8 slice of at least `len` bytes; the
    // host only reads it.
    unsafe { imports::fail(kind, message.as_ptr(), len) }
}

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
