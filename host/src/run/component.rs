//! A component's entry called in its store: its `wasi:cli/run` command,
//! or (once built) an exported WIT function as a typed task.

use wasmtime::Store;

use super::ending::Phase;
use super::instantiate::instantiate_component;
use crate::error::{Error, ErrorKind};
use crate::module::{ComponentPre, Resolved};
use crate::store::HostState;

/// Instantiates the component and calls what `resolved` names: its
/// `wasi:cli/run` (`run: func() -> result`: `ok` is exit code 0, `err` 1;
/// `wasi:cli/exit` ends it with its code, as `proc_exit` does), or an
/// exported WIT function as a typed task with the task's JSON `input`.
pub(super) async fn enter_component(
    store: &mut Store<HostState>,
    pre: &ComponentPre,
    resolved: &Resolved<'_>,
    input: &[u8],
) -> Result<i32, (Phase, wasmtime::Error)> {
    let call_error = |error| (Phase::Call, error);
    match resolved {
        Resolved::Command => {
            let Some(indices) = &pre.command else {
                return Err(call_error(wasmtime::format_err!(
                    "the component exports no `wasi:cli/run`"
                )));
            };
            let instance = instantiate_component(&pre.pre, store)
                .await
                .map_err(|error| (Phase::Instantiate, error))?;
            let command = indices
                .load(&mut *store, &instance)
                .map_err(|error| (Phase::Instantiate, error))?;
            match command.wasi_cli_run().call_run(&mut *store).await {
                Ok(Ok(())) => Ok(0),
                Ok(Err(())) => Ok(1),
                Err(error) => Err(call_error(error)),
            }
        }
        Resolved::ComponentTask { name } => call_component_task(store, pre, name, input).await,
        Resolved::Task { .. } | Resolved::Export { .. } => Err(call_error(wasmtime::format_err!(
            "a component runs its command or its WIT functions only"
        ))),
    }
}

/// Runs the component's exported WIT function `name` (as
/// `Module::component_functions` names it) as a typed task: `input`, the
/// task's JSON argument, converted to the function's parameters, and its
/// results made the task's result (`store.data_mut().sdk.output`, JSON).
/// Returns the exit code: 0 when the call returned.
///
/// Not built yet: the task ends `CannotRun` (126), saying so. Typed WIT
/// exports (`host/src/component/typed/`) replace this body.
pub(super) async fn call_component_task(
    _store: &mut Store<HostState>,
    _pre: &ComponentPre,
    name: &str,
    _input: &[u8],
) -> Result<i32, (Phase, wasmtime::Error)> {
    let refused = Error::new(
        ErrorKind::CannotRun,
        format!(
            "`--task {name}`: a component's exported WIT functions do not run as tasks yet; \
             a component runs as a WASI command (`wasi:cli/run`, no --task)"
        ),
    );
    Err((Phase::Call, wasmtime::Error::new(refused)))
}
