//! Runs one task (or a chunk of typed tasks) and turns however each ended
//! into exactly one [`Outcome`]: `Module::run` and the pools' task runner.
//!
//! - `plan`: checks a task and resolves its entry before any instance
//!   exists.
//! - `instance`: a live store and instance, and the calls made into it.
//! - `driver`: the async runtime each thread drives guests on, and the race
//!   against the deadline and the cancel signal.
//! - `instantiate`: instantiation that waits for the pool's slots when they
//!   are momentarily all taken.
//! - `component`: a component's entry: its `wasi:cli/run` command, or an
//!   exported WIT function as a typed task.
//! - `ending`: maps how a call ended (return, `proc_exit`, trap, limit,
//!   cancellation) to the status table.
//! - `initialize`: `Module::initialize`, an initializer run once and its
//!   instance snapshot into a new module.

mod component;
mod driver;
mod ending;
mod initialize;
mod instance;
mod instantiate;
mod plan;
mod sdk_component;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use crate::cancel::CancelToken;
use crate::error::Error;
use crate::module::{Module, Resolved};
use crate::outcome::Outcome;
use crate::status::ExitStatus;
use crate::task::Task;

pub(crate) use driver::take_abandoned_host_call;
use initialize::remake;
use instance::Live;
use plan::plan;

impl Module {
    /// Runs one task in a fresh instance and reports how it ended. Every
    /// failure, whatever the guest did, is an [`Outcome`] with its status:
    /// this never panics and never returns early.
    pub fn run(&self, task: &Task) -> Outcome {
        run_one(self, task, &CancelToken::never())
    }

    /// Runs one task as [`run`](Module::run) does, ending it with
    /// `Cancelled` when `token` is cancelled.
    pub fn run_with(&self, task: &Task, token: &CancelToken) -> Outcome {
        run_one(self, task, token)
    }

    /// Prepares the module for runs with a fuel limit now (compiled for the
    /// fuel-metering engine, or read from the cache), so that the first
    /// such run does not compile. Runs without a fuel limit need nothing
    /// more than [`Runtime::load`](crate::Runtime::load).
    pub fn prepare_for_fuel(&self) -> Result<(), Error> {
        self.prepared(true, remake).map(drop)
    }
}

fn run_one(module: &Module, task: &Task, cancel: &CancelToken) -> Outcome {
    let mut outcomes = run_chunk(module, std::slice::from_ref(task), cancel);
    task.hang_up();
    outcomes.pop().expect("one outcome per task")
}

/// Runs `tasks` in order and returns exactly one outcome per task.
///
/// Consecutive typed tasks that share an export, capabilities and limits
/// run as calls into one instance (the trade-off of chunking: state left by
/// one call is seen by the next). After a call that did not return normally
/// (a trap, `proc_exit`, a limit) the instance is dropped and the next task
/// gets a fresh one. Commands always get a fresh instance each.
pub(crate) fn run_chunk(module: &Module, tasks: &[Task], cancel: &CancelToken) -> Vec<Outcome> {
    let mut outcomes = Vec::with_capacity(tasks.len());
    while outcomes.len() < tasks.len() {
        let done = outcomes.len();
        // When the task running now started: kept by `run_guarded`, which
        // reads the clock for each task anyway, so that a panic's outcome
        // has its duration without another clock read per task.
        let mut started = None;
        let attempt = catch_unwind(AssertUnwindSafe(|| {
            run_guarded(module, &tasks[done..], cancel, &mut outcomes, &mut started)
        }));
        if let Err(payload) = attempt {
            // The panic hit the task after the last recorded outcome; the
            // ones after it run on.
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            let mut lost = Outcome::failed(
                ExitStatus::WorkerLost,
                format!(
                    "the host panicked while serving the guest ({what}); \
                     the task was abandoned and the host goes on"
                ),
            );
            lost.duration = started.map_or(Duration::ZERO, |started: Instant| started.elapsed());
            outcomes.push(lost);
        }
    }
    outcomes
}

/// Runs `tasks`, pushing one outcome per task to `outcomes` as each ends;
/// `current` is when the task running now started.
fn run_guarded(
    module: &Module,
    tasks: &[Task],
    cancel: &CancelToken,
    outcomes: &mut Vec<Outcome>,
    current: &mut Option<Instant>,
) {
    // The instance shared by consecutive compatible typed tasks, with the
    // place it holds in the instance pool.
    let mut live: Option<Live<'_>> = None;
    for task in tasks {
        let started = Instant::now();
        *current = Some(started);
        let refused = |error| {
            let mut outcome = Outcome::from(error);
            outcome.duration = started.elapsed();
            outcome
        };
        let plan = match plan(module, task, cancel) {
            Ok(plan) => plan,
            Err(error) => {
                outcomes.push(refused(error));
                continue;
            }
        };
        if !live.as_ref().is_some_and(|l| l.can_serve(&plan, task)) {
            // Give the old instance's place back before taking another.
            live = None;
            match Live::start(module, &plan, task, cancel) {
                Ok(fresh) => live = Some(fresh),
                Err(error) => {
                    outcomes.push(refused(error));
                    continue;
                }
            }
        }
        let current = live.as_mut().expect("started above");
        let (mut outcome, keep) = current.invoke(module, &plan, task);
        outcome.duration = started.elapsed();
        outcomes.push(outcome);
        // Only typed tasks share an instance (`Live::can_serve`).
        if !keep || !matches!(plan.resolved, Resolved::Task { .. }) {
            live = None;
        }
    }
}
