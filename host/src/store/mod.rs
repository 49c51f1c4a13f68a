//! The store layer: what each task's wasmtime store holds ([`HostState`]),
//! and the host functions a guest can call through it: WASI preview 1 and
//! the SDK's `wasmproc_v1` imports.

mod capture;
mod component_imports;
mod memory;
mod overrides;
mod pump;
mod sdk;
mod share_imports;
mod socket;
mod stdout;
mod wasi;

use std::time::Instant;

use wasmtime::{Engine, ExternType, InstancePre, Linker, Store};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::{WasiCtxBuilder, WasiCtxView, WasiView};

use crate::cancel::CancelToken;
use crate::error::{Error, ErrorKind};

pub(crate) use capture::Capture;
pub(crate) use memory::MemoryGuard;
pub(crate) use overrides::ExitCodeOutOfRange;
pub(crate) use pump::{CHUNK, Chunk, Pump, Reply};
pub(crate) use sdk::{GuestFailure, ResultTooLarge, SdkState};
pub(crate) use share_imports::ShareState;
pub(crate) use socket::{forget_socket_wait, waits_on_a_socket};
pub(crate) use stdout::write_stdout;
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

/// WASI 0.2 for components: the same context that serves a module's
/// preview-1 calls (wasmtime-wasi's preview-1 context holds a preview-2
/// context and its resource table), so one `HostState` fits both kinds and
/// nothing a guest does can find the other kind's state missing.
impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        self.wasi.ctx()
    }
}

/// A component linker with every interface wasmproc provides to
/// components: WASI 0.2 (`wasi:cli`, `wasi:clocks`, `wasi:filesystem`,
/// `wasi:io`, `wasi:random`, and `wasi:sockets`, whose every address is
/// denied: the WASI context grants no network), async like the modules',
/// and WASI 0.3 (wasmtime-wasi's `p3`, the same packages but `wasi:io`, over
/// the same context: the same grants, output capture and denials).
/// `wasi:cli/exit` ends the guest with wasmtime-wasi's `I32Exit`, as
/// `proc_exit` does (the run layer applies the same 0–125 rule).
pub(crate) fn new_component_linker(
    engine: &Engine,
) -> Result<wasmtime::component::Linker<HostState>, Error> {
    let mut linker = wasmtime::component::Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(|error| {
        Error::new(
            ErrorKind::Setup,
            format!("cannot link WASI 0.2 for components: {error:#}"),
        )
    })?;
    wasmtime_wasi::p3::add_to_linker(&mut linker).map_err(|error| {
        Error::new(
            ErrorKind::Setup,
            format!("cannot link WASI 0.3 for components: {error:#}"),
        )
    })?;
    component_imports::add_to_linker(&mut linker).map_err(|error| {
        Error::new(
            ErrorKind::Setup,
            format!("cannot link the SDK's WIT imports for components: {error:#}"),
        )
    })?;
    Ok(linker)
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

/// Prepares `module`'s instantiation with `linker`. With `stub_unknown`,
/// every function import the linker does not provide is first defined (in
/// a copy of the linker, for this module only) as one that traps when
/// called, naming itself ([`StubbedImportCalled`]); other unknown imports
/// (globals, memories, tables, tags) stay unsatisfied.
///
/// # Errors
///
/// wasmtime's, naming the first import that is not provided.
pub(crate) fn instantiate_pre(
    linker: &Linker<HostState>,
    module: &wasmtime::Module,
    stub_unknown: bool,
) -> wasmtime::Result<InstancePre<HostState>> {
    match linker.instantiate_pre(module) {
        Err(_) if stub_unknown => {
            let mut stubbed = linker.clone();
            stub_unknown_functions(&mut stubbed, module)?;
            stubbed.instantiate_pre(module)
        }
        prepared => prepared,
    }
}

/// Defines each function import of `module` that `linker` lacks as a trap.
fn stub_unknown_functions(
    linker: &mut Linker<HostState>,
    module: &wasmtime::Module,
) -> wasmtime::Result<()> {
    for import in unknown(linker, module) {
        let ExternType::Func(ty) = import.ty() else {
            continue;
        };
        let called = StubbedImportCalled {
            module: import.module().to_owned(),
            name: import.name().to_owned(),
        };
        linker.func_new(import.module(), import.name(), ty, move |_, _, _| {
            Err(wasmtime::Error::new(called.clone()))
        })?;
    }
    Ok(())
}

/// Every import of `module` that `linker` does not define, as
/// `module::name`, for an error that names them all (wasmtime's names the
/// first); with `stubbed`, only those no stub can stand for (globals,
/// memories, tables).
pub(crate) fn unknown_imports(
    linker: &Linker<HostState>,
    module: &wasmtime::Module,
    stubbed: bool,
) -> Vec<String> {
    unknown(linker, module)
        .into_iter()
        .filter(|import| !(stubbed && matches!(import.ty(), ExternType::Func(_))))
        .map(|import| format!("`{}::{}`", import.module(), import.name()))
        .collect()
}

/// The imports of `module` that `linker` does not define.
fn unknown<'m>(
    linker: &Linker<HostState>,
    module: &'m wasmtime::Module,
) -> Vec<wasmtime::ImportType<'m>> {
    // `get_by_import` wants a store; this one never runs a guest.
    let mut scratch = Store::new(module.engine(), HostState::scratch());
    module
        .imports()
        .filter(|import| linker.get_by_import(&mut scratch, import).is_none())
        .collect()
}

/// The error a stubbed import ends its task with when the guest calls it
/// (the run layer makes it a `host_error` trap).
#[derive(Debug, Clone)]
pub(crate) struct StubbedImportCalled {
    module: String,
    name: String,
}

impl std::fmt::Display for StubbedImportCalled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the guest called `{}::{}`, an import wasmproc does not provide: it was stubbed \
             to trap when called (--stub-imports)",
            self.module, self.name
        )
    }
}

impl std::error::Error for StubbedImportCalled {}
