//! One live instance: its store (with the task's WASI context, limits and
//! cancel signal), its place in the instance pool, and the calls made into
//! it. A chunk of compatible typed tasks shares one; every other task gets
//! a fresh one.

use std::sync::Arc;
use std::time::Instant;

use wasmtime::{Instance, Store, UpdateDeadline, Val};

use super::component::enter_component;
use super::driver::{block_on, instance_permit, race};
use super::ending::{Context, Interrupted, Phase, Raced, outcome_of};
use super::instantiate::instantiate;
use super::plan::{Plan, not_started};
use crate::cancel::CancelToken;
use crate::engine::InstancePermit;
use crate::error::Error;
use crate::module::{Module, Resolved, Returns, Runnable, show};
use crate::outcome::Outcome;
use crate::status::ExitStatus;
use crate::store::{Capture, HostState, SdkState, ShareState, Streams, wasi_context, write_stdout};
use crate::task::{Output, Stdin, Task};

/// A store, its instance once made, and the captures of its output.
pub(super) struct Live<'m> {
    store: Store<HostState>,
    instance: Option<Instance>,
    /// A component's instance, once a call made one.
    component: Option<wasmtime::component::Instance>,
    streams: Streams,
    /// The task this store was made for: later tasks must match it.
    shape: &'m Task,
    /// The entry of that first task: it decides `_initialize`.
    resolved: Resolved<'m>,
    fuel: bool,
    // Dropped after the store (fields drop in order), so the instance is
    // back in the pool when the place is given back.
    _permit: InstancePermit,
}

impl<'m> Live<'m> {
    /// A store for `task`, once a place in the instance pool is free.
    pub(super) fn start(
        module: &Module,
        plan: &Plan<'m>,
        task: &'m Task,
        cancel: &CancelToken,
    ) -> Result<Self, Error> {
        super::driver::ensure_runtime()?;
        let (wasi, streams) = wasi_context(module.name(), task, &plan.limits)?;
        let permit = instance_permit(&plan.engine.permits, cancel).ok_or_else(not_started)?;
        let mut state = HostState::new(wasi, plan.limits.max_memory, cancel.clone());
        if !task.grants.is_empty() {
            state.share = ShareState::new(task.grants.clone());
        }
        let mut store = Store::new(&plan.engine.engine, state);
        store.limiter(|state| &mut state.memory);
        store.epoch_deadline_callback(|context| {
            let state = context.data();
            if state.cancel.is_cancelled() {
                return Err(wasmtime::Error::new(Interrupted::Cancelled));
            }
            if state
                .deadline
                .is_some_and(|deadline| Instant::now() >= deadline)
            {
                return Err(wasmtime::Error::new(Interrupted::TimedOut));
            }
            Ok(UpdateDeadline::Continue(1))
        });
        store.set_epoch_deadline(1);
        Ok(Live {
            store,
            instance: None,
            component: None,
            streams,
            shape: task,
            resolved: plan.resolved,
            fuel: plan.limits.fuel.is_some(),
            _permit: permit,
        })
    }

    /// Whether `task` may run in this instance after the previous one.
    pub(super) fn can_serve(&self, plan: &Plan<'_>, task: &Task) -> bool {
        let shape = self.shape;
        matches!(plan.resolved, Resolved::Task { .. })
            && matches!(self.resolved, Resolved::Task { .. })
            && plan.limits.fuel.is_some() == self.fuel
            && shape.caps == task.caps
            && shape.grants == task.grants
            && shape.argv == task.argv
            && shape.limits.as_ref().map(|limits| limits.max_memory)
                == task.limits.as_ref().map(|limits| limits.max_memory)
            && matches!((&shape.stdin, &task.stdin), (Stdin::Empty, Stdin::Empty))
            && matches!(
                (&shape.stdout, &task.stdout, &shape.stderr, &task.stderr),
                (
                    Output::Capture,
                    Output::Capture,
                    Output::Capture,
                    Output::Capture
                )
            )
    }

    /// Runs one task in this store; returns its outcome and whether the
    /// instance is still fit for another call.
    pub(super) fn invoke(
        &mut self,
        module: &Module,
        plan: &Plan<'_>,
        task: &Task,
    ) -> (Outcome, bool) {
        let cancel = self.store.data().cancel.clone();
        let state = self.store.data_mut();
        state.sdk = SdkState {
            input: Arc::clone(&task.input),
            max_result: plan.limits.max_result,
            ..SdkState::default()
        };
        // A timeout too long to represent is no timeout at all.
        let deadline = plan
            .limits
            .timeout
            .and_then(|timeout| Instant::now().checked_add(timeout));
        state.deadline = deadline;
        if let Some(fuel) = plan.limits.fuel
            && let Err(error) = self.store.set_fuel(fuel)
        {
            let message = format!("cannot meter fuel: {error:#}");
            return (Outcome::failed(ExitStatus::CannotRun, message), false);
        }

        let raced = {
            let _ticking = module.runtime().ticker().task_running(deadline, &cancel);
            block_on(race(
                self.enter(plan.pre, &plan.resolved, &plan.args, &task.input),
                deadline,
                &cancel,
            ))
        };
        let keep = matches!(raced, Raced::Returned(_));
        let state = self.store.data_mut();
        let context = Context {
            sdk: &mut state.sdk,
            memory_refused: state.memory.refused,
            memory_limit: state.memory.limit,
            timeout: plan.limits.timeout,
        };
        let mut outcome = outcome_of(raced, context);
        outcome.peak_memory_bytes = state.memory.peak;
        if let Some(fuel) = plan.limits.fuel {
            outcome.fuel_used = Some(fuel.saturating_sub(self.store.get_fuel().unwrap_or(0)));
        }
        let take =
            |capture: &Option<Capture>| capture.as_ref().map(Capture::take).unwrap_or_default();
        outcome.stdout = take(&self.streams.stdout);
        outcome.stderr = take(&self.streams.stderr);
        (outcome, keep)
    }

    /// The store and its instance, once a call made one.
    pub(super) fn parts(&mut self) -> Option<(&mut Store<HostState>, Instance)> {
        Some((&mut self.store, self.instance?))
    }

    /// The store and its component instance, once a call made one.
    pub(super) fn component_parts(
        &mut self,
    ) -> Option<(&mut Store<HostState>, wasmtime::component::Instance)> {
        Some((&mut self.store, self.component?))
    }

    /// Instantiates on first use, then calls the entry (a component's
    /// store serves one call: `component::enter_component`).
    async fn enter(
        &mut self,
        pre: Runnable<'_>,
        resolved: &Resolved<'_>,
        args: &[Val],
        input: &[u8],
    ) -> Result<i32, (Phase, wasmtime::Error)> {
        let call_error = |error| (Phase::Call, error);
        let store = &mut self.store;
        let pre = match pre {
            Runnable::Core(pre) => pre,
            Runnable::Component(pre) => {
                return enter_component(store, pre, resolved, input, &mut self.component).await;
            }
        };
        let instance = match self.instance {
            Some(instance) => instance,
            None => {
                let instance = instantiate(pre, store)
                    .await
                    .map_err(|error| (Phase::Instantiate, error))?;
                if let Resolved::Task {
                    initialize: true, ..
                }
                | Resolved::Export {
                    initialize: true, ..
                } = self.resolved
                {
                    let init = instance
                        .get_typed_func::<(), ()>(&mut *store, "_initialize")
                        .map_err(call_error)?;
                    init.call_async(&mut *store, ()).await.map_err(call_error)?;
                }
                self.instance = Some(instance);
                instance
            }
        };
        match resolved {
            Resolved::Command => {
                let start = instance
                    .get_typed_func::<(), ()>(&mut *store, "_start")
                    .map_err(call_error)?;
                start
                    .call_async(&mut *store, ())
                    .await
                    .map_err(call_error)?;
                Ok(0)
            }
            Resolved::Task { export, .. } => {
                let func = instance
                    .get_typed_func::<(), i32>(&mut *store, export)
                    .map_err(call_error)?;
                func.call_async(&mut *store, ()).await.map_err(call_error)
            }
            Resolved::Export {
                export, returns, ..
            } => invoke(store, instance, export, *returns, args)
                .await
                .map_err(call_error),
            Resolved::ComponentTask { .. } | Resolved::ComponentInit { .. } => Err(call_error(
                wasmtime::format_err!("a core module has no component functions"),
            )),
        }
    }
}

/// Calls the exported function `export` with `args` (as `wasmtime run
/// --invoke` does) and makes its results the task's: the exit code of a
/// `() -> i32`; otherwise 0, with the results written to the task's stdout,
/// one per line, and kept as its result, a JSON array.
async fn invoke(
    store: &mut Store<HostState>,
    instance: Instance,
    export: &str,
    returns: Returns,
    args: &[Val],
) -> wasmtime::Result<i32> {
    let func = instance
        .get_func(&mut *store, export)
        .ok_or_else(|| wasmtime::format_err!("`{export}` is not an exported function"))?;
    let mut results: Vec<Val> = func
        .ty(&*store)
        .results()
        .map(|ty| Val::default_for_ty(&ty).unwrap_or(Val::I32(0)))
        .collect();
    func.call_async(&mut *store, args, &mut results).await?;
    match returns {
        Returns::Nothing => Ok(0),
        Returns::ExitCode => Ok(results[0].unwrap_i32()),
        Returns::Values => {
            let (lines, values): (Vec<String>, Vec<serde_json::Value>) =
                results.iter().map(show).unzip();
            let mut text = lines.join("\n");
            text.push('\n');
            let state = store.data_mut();
            write_stdout(&mut state.wasi, text.as_bytes()).await?;
            state.sdk.output = Some(serde_json::Value::Array(values).to_string().into_bytes());
            Ok(0)
        }
    }
}
