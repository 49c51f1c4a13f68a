//! The host's own lines written to a task's stdout (an invoked function's
//! results): through WASI's `fd_write`, as the guest's own writes go, so
//! that they reach wherever the task's stdout goes (captured, inherited, a
//! writer, relayed from a worker process, a connection) in order with them.

use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p1::wasi_snapshot_preview1::{self as wasi_p1, WasiSnapshotPreview1};

/// Where the one iovec lies in the scratch memory, where `fd_write` puts
/// the count it wrote, and where the bytes start.
const IOVEC: u32 = 0;
const WRITTEN: u32 = 8;
const DATA: u32 = 16;

/// Writes `bytes` to the task's stdout (fd 1), all of them.
///
/// # Errors
///
/// When WASI reports an error (its errno, in words).
pub(crate) async fn write_stdout(wasi: &mut WasiP1Ctx, bytes: &[u8]) -> wasmtime::Result<()> {
    let mut rest = bytes;
    while !rest.is_empty() {
        // A scratch memory laid out as a guest's would be: one iovec over
        // the bytes, then room for the count.
        let mut memory = vec![0u8; DATA as usize + rest.len()];
        memory[IOVEC as usize..][..4].copy_from_slice(&DATA.to_le_bytes());
        memory[IOVEC as usize + 4..][..4].copy_from_slice(&(rest.len() as u32).to_le_bytes());
        memory[DATA as usize..].copy_from_slice(rest);
        // The bytes WASI may copy out of "guest" memory in this call (the
        // linker's glue sets it from the store before each guest call).
        wasi.set_hostcall_fuel(memory.len());
        let mut guest = wiggle::GuestMemory::Unshared(&mut memory);
        let errno = wasi_p1::fd_write(wasi, &mut guest, 1, IOVEC as i32, 1, WRITTEN as i32).await?;
        if errno != 0 {
            wasmtime::bail!("cannot write the results to the task's stdout (WASI errno {errno})");
        }
        let written = u32::from_le_bytes(memory[WRITTEN as usize..][..4].try_into()?) as usize;
        if written == 0 {
            wasmtime::bail!("cannot write the results to the task's stdout: it takes no bytes");
        }
        rest = &rest[written.min(rest.len())..];
    }
    Ok(())
}
