//! The WASI functions whose behaviour wasmproc sets itself, defined over
//! wasmtime-wasi's own in the linker:
//!
//! - `proc_exit` with a code outside 0–125 ends the task with an error that
//!   names the code (the guest owns 0–125; `run::ending` makes it a
//!   `host_error` trap, as for every out-of-range guest code).
//! - `path_symlink` is refused with `EPERM`: a guest could otherwise leave a
//!   link in a granted directory pointing outside it (`../secret`). The
//!   guest cannot follow such a link, but the host's own tools would.

use wasmproc_abi::MAX_GUEST_EXIT_CODE;
use wasmtime::{Caller, Linker};
use wasmtime_wasi::I32Exit;

use super::HostState;

/// The WASI preview 1 import module.
const WASI_P1: &str = "wasi_snapshot_preview1";

/// WASI preview 1's `errno::perm`: the operation is not permitted.
const ERRNO_PERM: i32 = 63;

/// The error a guest's out-of-range exit code ends its run with.
#[derive(Debug)]
pub(crate) struct ExitCodeOutOfRange(pub(crate) i64);

impl std::fmt::Display for ExitCodeOutOfRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the guest exited with code {}; a guest owns codes 0–{MAX_GUEST_EXIT_CODE} \
             (126–255 belong to the host)",
            self.0
        )
    }
}

impl std::error::Error for ExitCodeOutOfRange {}

/// Defines wasmproc's versions of the functions above; call after linking
/// WASI.
pub(super) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    linker.func_wrap(
        WASI_P1,
        "proc_exit",
        |_: Caller<'_, HostState>, code: i32| -> wasmtime::Result<()> {
            // WASI's exit code is unsigned.
            let code = code as u32;
            if code <= u32::from(MAX_GUEST_EXIT_CODE) {
                Err(I32Exit(code as i32).into())
            } else {
                Err(wasmtime::Error::new(ExitCodeOutOfRange(code.into())))
            }
        },
    )?;
    linker.func_wrap(
        WASI_P1,
        "path_symlink",
        |_: Caller<'_, HostState>, _old: i32, _old_len: i32, _fd: i32, _new: i32, _new_len: i32| {
            ERRNO_PERM
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}
