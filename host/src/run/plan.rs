//! What a task needs, checked before any instance is made: its limits, its
//! resolved entry, its argument, and the engine and prepared module it runs
//! on. A task that fails here never touches an instance.

use wasmtime::InstancePre;

use crate::cancel::CancelToken;
use crate::error::{Error, ErrorKind};
use crate::limits::Limits;
use crate::module::{Module, Resolved};
use crate::runtime::LinkedEngine;
use crate::store::HostState;
use crate::task::Task;

/// A task, checked and resolved.
pub(super) struct Plan<'m> {
    pub(super) resolved: Resolved<'m>,
    pub(super) limits: Limits,
    pub(super) engine: &'m LinkedEngine,
    pub(super) pre: &'m InstancePre<HostState>,
}

pub(super) fn plan<'m>(
    module: &'m Module,
    task: &Task,
    cancel: &CancelToken,
) -> Result<Plan<'m>, Error> {
    if let Some(message) = &task.rejected {
        return Err(Error::new(ErrorKind::BadInvocation, message.clone()));
    }
    let limits = task.limits.clone().unwrap_or_default();
    limits.validate()?;
    if cancel.is_cancelled() {
        return Err(not_started());
    }
    let resolved = module.resolve_export(&task.entry)?;
    if let Resolved::Task { .. } = resolved {
        validate_input(task, &limits)?;
    }
    let fuel = limits.get_fuel().is_some();
    let pre = module.prepared(fuel)?.instance_pre()?;
    let engine = module.runtime().engine(fuel)?;
    Ok(Plan {
        resolved,
        limits,
        engine,
        pre,
    })
}

/// The error of a task cancelled before its guest started.
pub(super) fn not_started() -> Error {
    Error::new(
        ErrorKind::Cancelled,
        "the task was cancelled before it started",
    )
}

fn validate_input(task: &Task, limits: &Limits) -> Result<(), Error> {
    let bad = |message: String| Err(Error::new(ErrorKind::BadInvocation, message));
    let input = &task.input;
    let max = limits.get_max_args().min(i32::MAX as usize);
    if input.len() > max {
        return bad(format!(
            "the task's argument is {} bytes, over the limit of {max} bytes",
            input.len()
        ));
    }
    match serde_json::from_slice::<serde::de::IgnoredAny>(input) {
        Ok(_) => Ok(()),
        Err(error) => bad(format!("the task's argument is not valid JSON: {error}")),
    }
}
