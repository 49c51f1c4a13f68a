//! An SDK component's task called in its store: the dispatcher's
//! `run-task` with the task's name (`module::SdkDispatch`). The argument,
//! the result and failures travel through the WIT imports
//! (`store::component_imports`) into the same `SdkState` a core SDK
//! module's do, so the task ends by the same rules.

use wasmtime::Store;
use wasmtime::component::Instance;

use super::ending::Phase;
use super::instantiate::instantiate_component;
use crate::error::{Error, ErrorKind};
use crate::module::{ComponentPre, SdkDispatch};
use crate::store::HostState;

/// Instantiates the component (left in `made`) and runs its task `name`
/// (its initializer, with `init`): the exit code the guest returned.
pub(super) async fn call_sdk_task(
    store: &mut Store<HostState>,
    pre: &ComponentPre,
    dispatch: SdkDispatch,
    name: &str,
    init: bool,
    made: &mut Option<Instance>,
) -> Result<i32, (Phase, wasmtime::Error)> {
    let instance = instantiate_component(&pre.pre, store)
        .await
        .map_err(|error| (Phase::Instantiate, error))?;
    *made = Some(instance);
    let index = if init {
        dispatch.run_init
    } else {
        dispatch.run_task
    };
    let run = instance
        .get_typed_func::<(&str,), (i32,)>(&mut *store, index)
        .map_err(|error| (Phase::Instantiate, error))?;
    let (code,) = run
        .call_async(&mut *store, (name,))
        .await
        .map_err(|error| (Phase::Call, error))?;
    if code == wasmproc_abi::WIT_NO_SUCH_NAME {
        let what = if init { "initializer" } else { "task" };
        let message = format!(
            "the component's dispatcher has no {what} `{name}`, though its records list one: \
             rebuild it with this version of wasmproc-guest"
        );
        return Err((
            Phase::Call,
            wasmtime::Error::new(Error::new(ErrorKind::CannotRun, message)),
        ));
    }
    Ok(code)
}
