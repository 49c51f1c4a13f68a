//! The store layer: what each task's wasmtime store holds ([`HostState`]),
//! and the host functions a guest can call through it: WASI preview 1 and
//! the SDK's `wasmproc_v1` imports.

mod capture;
mod memory;
mod overrides;
mod pump;
mod sdk;
mod share_imports;
mod socket;
mod wasi;

use std::time::Instant;

use wasmtime::{Engine, Linker};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::p1::WasiP1Ctx;

use crate::cancel::CancelToken;
use crate::error::{Error, ErrorKind};

pub(crate) use capture::Capture;
pub(crate) use memory::MemoryGuard;
pub(crate) use overrides::ExitCodeOutOfRange;
pub(crate) use pump::{CHUNK, Chunk, Pump, Reply};
pub(crate) use sdk::{GuestFailure, ResultTooLarge, SdkState};
pub(crate) use share_imports::ShareState;
pub(crate) use wasi::{Streams, wasi_context};

/// The data of every task's store.
pub(crate) struct HostState {
    pub(crate) wasi: WasiP1Ctx,
    pub(crate) sdk: SdkState,
    /// The task's handles to what it was granted.
    pub(crate) share: ShareState,
    pub(crate) memory: MemoryGuard,
    /// When the current call must end; read by the epoch callback.
    pub(crate) deadline: Option<Instant>,
    pub(crate) cancel: CancelToken,
}

impl HostState {
    /// The state of a task's store: its WASI context, a memory limit of
    /// `max_memory` bytes, and the task's cancel signal.
    pub(crate) fn new(wasi: WasiP1Ctx, max_memory: u64, cancel: CancelToken) -> Self {
        HostState {
            wasi,
            sdk: SdkState::default(),
            share: ShareState::default(),
            memory: MemoryGuard::new(max_memory),
            deadline: None,
            cancel,
        }
    }

    /// A state with nothing granted, for stores that never run a guest.
    pub(crate) fn scratch() -> Self {
        HostState::new(
            WasiCtxBuilder::new().build_p1(),
            u64::MAX,
            CancelToken::never(),
        )
    }
}

/// A linker with every import wasmproc provides: WASI preview 1 (async, so
/// that a timeout also ends a guest blocked in a host call, with a few
/// functions of wasmproc's own: `overrides`) and the SDK's.
pub(crate) fn new_linker(engine: &Engine) -> Result<Linker<HostState>, Error> {
    let setup = |what: &str, error: wasmtime::Error| {
        Error::new(ErrorKind::Setup, format!("cannot link {what}: {error:#}"))
    };
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p1::add_to_linker_async(&mut linker, |state: &mut HostState| &mut state.wasi)
        .map_err(|error| setup("WASI", error))?;
    overrides::add_to_linker(&mut linker).map_err(|error| setup("wasmproc's WASI rules", error))?;
    sdk::add_to_linker(&mut linker).map_err(|error| setup("the SDK imports", error))?;
    share_imports::add_to_linker(&mut linker)
        .map_err(|error| setup("the sharing imports", error))?;
    Ok(linker)
}
