//! The host side of the guest SDK's contract (`wasmproc-abi`): the
//! argument goes in, the result and failures come out.

use std::sync::Arc;

use wasmproc_abi as abi;
use wasmtime::{Caller, Extern, Linker, Memory};

use super::HostState;
use crate::limits::human;

/// The longest failure message kept; a longer one is cut.
const MAX_MESSAGE: usize = 64 << 10;

/// What an SDK task exchanges with the host during one run.
#[derive(Default)]
pub(crate) struct SdkState {
    pub(crate) input: Arc<[u8]>,
    pub(crate) output: Option<Vec<u8>>,
    /// The largest result the host takes (`Limits::max_result`).
    pub(crate) max_result: usize,
    pub(crate) failure: Option<GuestFailure>,
}

/// The error a result over the task's limit ends the run with.
#[derive(Debug)]
pub(crate) struct ResultTooLarge {
    pub(crate) len: usize,
    pub(crate) limit: usize,
}

impl std::fmt::Display for ResultTooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the task's result is {}, over its limit of {} (raise it with Limits::max_result \
             or --max-result)",
            human(self.len as u64),
            human(self.limit as u64)
        )
    }
}

impl std::error::Error for ResultTooLarge {}

/// A failure the guest reported through the SDK.
pub(crate) struct GuestFailure {
    pub(crate) kind: i32,
    pub(crate) message: String,
}

/// A result of `len` bytes is within the task's limit, or ends the run.
pub(crate) fn check_result_len(sdk: &SdkState, len: usize) -> wasmtime::Result<()> {
    let limit = sdk.max_result;
    if len > limit {
        return Err(wasmtime::Error::new(ResultTooLarge { len, limit }));
    }
    Ok(())
}

/// Sets the task's result (`output_write`), within its limit.
pub(crate) fn set_output(sdk: &mut SdkState, bytes: Vec<u8>) -> wasmtime::Result<()> {
    check_result_len(sdk, bytes.len())?;
    sdk.output = Some(bytes);
    Ok(())
}

/// Records the guest's failure (`fail`): its kind and message, cut to
/// [`MAX_MESSAGE`] bytes.
pub(crate) fn report_failure(sdk: &mut SdkState, kind: i32, message: &[u8]) {
    let message = &message[..message.len().min(MAX_MESSAGE)];
    let message = String::from_utf8_lossy(message).into_owned();
    sdk.failure = Some(GuestFailure { kind, message });
}

/// The core module `wasmproc_v1`'s SDK imports: guest memory in and out
/// around the functions above.
pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    let module = abi::IMPORT_MODULE;
    linker.func_wrap(
        module,
        abi::INPUT_LEN,
        |caller: Caller<'_, HostState>| -> i32 {
            // The worker's input check keeps inputs below 2 GiB.
            i32::try_from(caller.data().sdk.input.len()).unwrap_or(i32::MAX)
        },
    )?;
    linker.func_wrap(
        module,
        abi::INPUT_READ,
        |mut caller: Caller<'_, HostState>, ptr: i32| -> wasmtime::Result<()> {
            let memory = guest_memory(&mut caller)?;
            let input = Arc::clone(&caller.data().sdk.input);
            memory.write(&mut caller, offset(ptr), &input).map_err(|_| {
                wasmtime::format_err!("input_read: the buffer lies outside guest memory")
            })
        },
    )?;
    linker.func_wrap(
        module,
        abi::OUTPUT_WRITE,
        |mut caller: Caller<'_, HostState>, ptr: i32, len: i32| -> wasmtime::Result<()> {
            // Checked before the copy: a result too large is not read.
            check_result_len(&caller.data().sdk, offset(len))?;
            let bytes = read_guest(&mut caller, ptr, len, usize::MAX)?;
            set_output(&mut caller.data_mut().sdk, bytes)
        },
    )?;
    linker.func_wrap(
        module,
        abi::FAIL,
        |mut caller: Caller<'_, HostState>,
         kind: i32,
         ptr: i32,
         len: i32|
         -> wasmtime::Result<()> {
            let bytes = read_guest(&mut caller, ptr, len, MAX_MESSAGE)?;
            report_failure(&mut caller.data_mut().sdk, kind, &bytes);
            Ok(())
        },
    )?;
    Ok(())
}

/// Guest pointers are unsigned 32-bit offsets passed as `i32`.
pub(super) fn offset(ptr: i32) -> usize {
    ptr as u32 as usize
}

pub(super) fn guest_memory(caller: &mut Caller<'_, HostState>) -> wasmtime::Result<Memory> {
    match caller.get_export("memory") {
        Some(Extern::Memory(memory)) => Ok(memory),
        _ => wasmtime::bail!("the SDK imports need the guest to export its memory as `memory`"),
    }
}

/// Copies `len` bytes at `ptr` out of guest memory, keeping at most `cap`.
pub(super) fn read_guest(
    caller: &mut Caller<'_, HostState>,
    ptr: i32,
    len: i32,
    cap: usize,
) -> wasmtime::Result<Vec<u8>> {
    let memory = guest_memory(caller)?;
    let start = offset(ptr);
    let len = offset(len);
    let data = memory.data(&caller);
    let Some(bytes) = start.checked_add(len).and_then(|end| data.get(start..end)) else {
        wasmtime::bail!("the guest passed a buffer outside its memory");
    };
    Ok(bytes[..len.min(cap)].to_vec())
}
