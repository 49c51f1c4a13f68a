//! A component's entry called in its store: its `wasi:cli/run` command,
//! or an exported WIT function as a typed task (`crate::typed`).

use wasmtime::Store;
use wasmtime::component::Instance;

use super::ending::Phase;
use super::instantiate::instantiate_component;
use super::sdk_component::call_sdk_task;
use crate::error::{Error, ErrorKind};
use crate::module::{CommandEntry, ComponentPre, Resolved, task_signature};
use crate::store::{GuestFailure, HostState, ResultTooLarge};
use crate::typed::Returned;

/// Instantiates the component and calls what `resolved` names: its
/// `wasi:cli/run` (WASI 0.2's `run: func() -> result` or 0.3's `async`
/// one: `ok` is exit code 0, `err` 1; `wasi:cli/exit` ends it with its
/// code, as `proc_exit` does), or an exported WIT function as a typed task
/// with the task's JSON `input`, or an initializer. The instance it made
/// is left in `made` (an initializer's is snapshot after the call).
pub(super) async fn enter_component(
    store: &mut Store<HostState>,
    pre: &ComponentPre,
    resolved: &Resolved<'_>,
    input: &[u8],
    made: &mut Option<Instance>,
) -> Result<i32, (Phase, wasmtime::Error)> {
    let call_error = |error| (Phase::Call, error);
    match resolved {
        Resolved::Command => {
            let Some(entry) = &pre.command else {
                return Err(call_error(wasmtime::format_err!(
                    "the component exports no `wasi:cli/run`"
                )));
            };
            let instance = instantiate_component(&pre.pre, store)
                .await
                .map_err(|error| (Phase::Instantiate, error))?;
            *made = Some(instance);
            let ran = match entry {
                CommandEntry::P2(indices) => {
                    let command = indices
                        .load(&mut *store, &instance)
                        .map_err(|error| (Phase::Instantiate, error))?;
                    command.wasi_cli_run().call_run(&mut *store).await
                }
                CommandEntry::P3(indices) => {
                    let command = indices
                        .load(&mut *store, &instance)
                        .map_err(|error| (Phase::Instantiate, error))?;
                    // An async export runs in the store's event loop, which
                    // also drives the streams and futures it waits on.
                    store
                        .run_concurrent(async move |accessor| {
                            command.wasi_cli_run().call_run(accessor).await
                        })
                        .await
                        .and_then(|ran| ran)
                }
            };
            match ran {
                Ok(Ok(())) => Ok(0),
                Ok(Err(())) => Ok(1),
                Err(error) => Err(call_error(error)),
            }
        }
        Resolved::ComponentTask { name } => match pre.sdk {
            Some(dispatch) => call_sdk_task(store, pre, dispatch, name, false, made).await,
            None => call_component_task(store, pre, name, input, made).await,
        },
        Resolved::ComponentInit { name } => match pre.sdk {
            Some(dispatch) => call_sdk_task(store, pre, dispatch, name, true, made).await,
            None => call_component_task(store, pre, name, input, made).await,
        },
        Resolved::Task { .. } | Resolved::Export { .. } => Err(call_error(wasmtime::format_err!(
            "a component runs its command or its WIT functions only"
        ))),
    }
}

/// Runs the component's exported WIT function `name` (as
/// `Module::component_functions` names it) as a typed task: `input`, the
/// task's JSON argument, converted to the function's parameters, and its
/// result made the task's (`store.data_mut().sdk.output`, JSON). Returns
/// the exit code: 0 when the call returned, 1 when it returned the `err`
/// of a top-level `result` (the error's JSON is the task's message).
///
/// Arguments that do not fit end the task `BadInvocation` before any
/// instance exists.
pub(super) async fn call_component_task(
    store: &mut Store<HostState>,
    pre: &ComponentPre,
    name: &str,
    input: &[u8],
    made: &mut Option<Instance>,
) -> Result<i32, (Phase, wasmtime::Error)> {
    let refused =
        |kind, message: String| (Phase::Call, wasmtime::Error::new(Error::new(kind, message)));
    let Some(export) = pre.typed.iter().find(|export| export.name == name) else {
        return Err(refused(
            ErrorKind::CannotRun,
            format!("the component exports no function `{name}`"),
        ));
    };
    let example = || task_signature(export).example_argument();
    let params = export
        .arguments(input, example)
        .map_err(|message| refused(ErrorKind::BadInvocation, message))?;
    let instance = instantiate_component(&pre.pre, store)
        .await
        .map_err(|error| (Phase::Instantiate, error))?;
    *made = Some(instance);
    let Some(func) = instance.get_func(&mut *store, export.index) else {
        return Err(refused(
            ErrorKind::CannotRun,
            format!("the component's `{name}` is not a function"),
        ));
    };
    let mut results = export.result_slots();
    func.call_async(&mut *store, &params, &mut results)
        .await
        .map_err(|error| (Phase::Call, error))?;
    let returned = export
        .returned(&results)
        .map_err(|message| refused(ErrorKind::CannotRun, message))?;
    let sdk = &mut store.data_mut().sdk;
    match returned {
        Returned::Value(value) => {
            let json = value.to_string().into_bytes();
            if json.len() > sdk.max_result {
                let too_large = ResultTooLarge {
                    len: json.len(),
                    limit: sdk.max_result,
                };
                return Err((Phase::Call, wasmtime::Error::new(too_large)));
            }
            sdk.output = Some(json);
            Ok(0)
        }
        Returned::Error(error) => {
            let message = match error {
                serde_json::Value::String(text) => text,
                other => other.to_string(),
            };
            sdk.failure = Some(GuestFailure {
                kind: wasmproc_abi::failure::TASK_ERROR,
                message: format!("`{name}` returned an error: {message}"),
            });
            Ok(1)
        }
    }
}
