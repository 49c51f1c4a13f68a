//! What a task needs, checked before any instance is made: its limits, its
//! resolved entry, its argument, and the engine and prepared module it runs
//! on. A task that fails here never touches an instance.

use wasmtime::Val;

use super::remake;
use crate::cancel::CancelToken;
use crate::error::{Error, ErrorKind};
use crate::limits::Limits;
use crate::module::{Module, Resolved, Runnable};
use crate::runtime::LinkedEngine;
use crate::task::Task;

/// A task, checked and resolved.
pub(super) struct Plan<'m> {
    pub(super) resolved: Resolved<'m>,
    pub(super) limits: Limits,
    pub(super) engine: &'m LinkedEngine,
    pub(super) pre: Runnable<'m>,
    /// An invoked function's arguments, parsed from the task's argv.
    pub(super) args: Vec<Val>,
}

pub(super) fn plan<'m>(
    module: &'m Module,
    task: &Task,
    cancel: &CancelToken,
) -> Result<Plan<'m>, Error> {
    let limits = checked_limits(task, cancel)?;
    let resolved = module.resolve_export(&task.entry)?;
    let mut args = Vec::new();
    match resolved {
        Resolved::Task { .. } | Resolved::ComponentTask { .. } | Resolved::ComponentInit { .. } => {
            validate_json(task)?
        }
        Resolved::Export { export, .. } => args = module.invocation_args(export, &task.argv)?,
        Resolved::Command => {}
    }
    let fuel = limits.fuel.is_some();
    let pre = module.prepared(fuel, remake)?.runnable()?;
    let engine = module.runtime().engine(fuel)?;
    Ok(Plan {
        resolved,
        limits,
        engine,
        pre,
        args,
    })
}

/// The task's limits, checked, and the task checked against them; refused
/// when the task was cancelled before it started.
pub(super) fn checked_limits(task: &Task, cancel: &CancelToken) -> Result<Limits, Error> {
    let limits = task.limits.clone().unwrap_or_default();
    limits.validate()?;
    task.check(&limits)?;
    if cancel.is_cancelled() {
        return Err(not_started());
    }
    Ok(limits)
}

/// The error of a task cancelled before its guest started.
pub(super) fn not_started() -> Error {
    Error::new(
        ErrorKind::Cancelled,
        "the task was cancelled before it started",
    )
}

/// A typed task's argument must be JSON (its size is checked with the rest
/// of the task's inputs).
fn validate_json(task: &Task) -> Result<(), Error> {
    serde_json::from_slice::<serde::de::IgnoredAny>(&task.input)
        .map(|_| ())
        .map_err(|error| {
            Error::new(
                ErrorKind::BadInvocation,
                format!("the task's argument is not valid JSON: {error}"),
            )
            .caused_by(error)
        })
}
