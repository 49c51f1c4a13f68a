//! SDK components: a guest built with `wasmproc-guest` for wasm32-wasip2
//! is a component that exports the dispatcher `wasmproc:guest/tasks`
//! (`guest/wit/wasmproc.wit`). Its tasks, initializers and handlers are
//! what the SDK recorded in the `wasmproc_signatures` custom section of its
//! core module, as for a core SDK module; they run through `run-task`.

use wasmproc_abi::{WIT_RUN_INIT, WIT_RUN_TASK, WIT_TASKS_INTERFACE};
use wasmtime::component::{Component, ComponentExportIndex};

use super::describe::ExportInfo;
use super::signature::{self, TaskSignature};
use super::{Module, Resolved};
use crate::error::{Error, ErrorKind};
use crate::task::Entry;

/// Where an SDK component's dispatcher functions are, in one compiled
/// component (an index is only good for the component it came from).
#[derive(Clone, Copy)]
pub(crate) struct SdkDispatch {
    /// `run-task: func(name: string) -> s32`.
    pub(crate) run_task: ComponentExportIndex,
    /// `run-init: func(name: string) -> s32`.
    pub(crate) run_init: ComponentExportIndex,
}

/// What an SDK component's records say: its tasks and handlers, its
/// initializers, and every signature.
pub(super) struct SdkTasks {
    pub(super) tasks: Vec<String>,
    pub(super) initializers: Vec<String>,
    pub(super) signatures: Vec<TaskSignature>,
}

/// An SDK component's tasks, read from the SDK's records in `wasm` (the
/// custom section of its core module, which the component embeds); `None`
/// for a component that does not export the dispatcher.
pub(super) fn sdk_tasks(exports: &[ExportInfo], wasm: &[u8]) -> Option<SdkTasks> {
    if !exports.iter().any(|e| e.name == WIT_TASKS_INTERFACE) {
        return None;
    }
    let signatures = signature::read(wasm);
    let named = |init: bool| {
        signatures
            .iter()
            .filter(|s| (s.kind == "init") == init)
            .map(|s| s.name.clone())
            .collect::<Vec<_>>()
    };
    Some(SdkTasks {
        tasks: named(false),
        initializers: named(true),
        signatures,
    })
}

/// Finds the dispatcher's functions in `component`: `None` for a
/// component that does not export the dispatcher.
///
/// # Errors
///
/// [`ErrorKind::CannotRun`] when it exports the interface without them.
pub(super) fn find_dispatch(
    name: &str,
    component: &Component,
) -> Result<Option<SdkDispatch>, Error> {
    let Some((_, interface)) = component.get_export(None, WIT_TASKS_INTERFACE) else {
        return Ok(None);
    };
    let function = |wanted: &str| {
        component
            .get_export_index(Some(&interface), wanted)
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::CannotRun,
                    format!(
                        "`{name}` exports `{WIT_TASKS_INTERFACE}` without `{wanted}`: build \
                         it with a wasmproc-guest of this version"
                    ),
                )
            })
    };
    Ok(Some(SdkDispatch {
        run_task: function(WIT_RUN_TASK)?,
        run_init: function(WIT_RUN_INIT)?,
    }))
}

impl Module {
    /// Whether this is a component built with the guest SDK for
    /// wasm32-wasip2 (it exports the SDK's dispatcher,
    /// `wasmproc:guest/tasks`): its [`tasks`](Module::tasks),
    /// [`initializers`](Module::initializers) and
    /// [`signatures`](Module::signatures) are the SDK's, as for a core
    /// module built with it.
    pub fn is_sdk_component(&self) -> bool {
        self.inner.component.as_ref().is_some_and(|c| c.sdk)
    }

    /// [`Module::resolve_export`] for an SDK component: its command, or
    /// one of the tasks its records list, run through the dispatcher.
    pub(super) fn resolve_sdk_component(&self, entry: &Entry) -> Result<Resolved<'_>, Error> {
        let name = self.name();
        let tasks = self.tasks();
        let task_list = || {
            if tasks.is_empty() {
                "it records no wasmproc tasks".to_owned()
            } else {
                format!("its tasks: {}", tasks.join(", "))
            }
        };
        let cannot_run = |message: String| Err(Error::new(ErrorKind::CannotRun, message));
        match entry {
            Entry::Command | Entry::Auto if self.is_command() => Ok(Resolved::Command),
            Entry::Auto if tasks.len() == 1 => Ok(Resolved::ComponentTask { name: &tasks[0] }),
            Entry::Command => cannot_run(format!(
                "`{name}` is not a WASI command: it exports no `wasi:cli/run`; pick a task \
                 instead ({})",
                task_list()
            )),
            Entry::Auto if tasks.is_empty() => cannot_run(format!(
                "`{name}` exports no `wasi:cli/run` and records no wasmproc tasks"
            )),
            Entry::Auto => cannot_run(format!(
                "`{name}` exports several tasks ({}): choose one (`--task NAME`)",
                tasks.join(", ")
            )),
            Entry::Task(wanted) => match tasks.iter().find(|task| *task == wanted) {
                Some(task) => Ok(Resolved::ComponentTask { name: task }),
                None if self.initializers().iter().any(|i| i == wanted) => cannot_run(format!(
                    "`{wanted}` is an initializer of `{name}`, not a task; {}",
                    task_list()
                )),
                None => cannot_run(format!("`{name}` has no task `{wanted}`; {}", task_list())),
            },
            Entry::Export(wanted) => cannot_run(format!(
                "`{name}` is a component: `--invoke {wanted}` (Task::invoke) calls a core \
                 module's exported function; run its tasks with `--task NAME`; {}",
                task_list()
            )),
        }
    }
}
