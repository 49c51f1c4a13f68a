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
//! - `libc_reset`: wasi-libc's reset of its handles, made callable in a
//!   component about to be snapshot.

mod component;
mod driver;
mod ending;
mod initialize;
mod instance;
mod instantiate;
mod libc_reset;
mod plan;
mod sdk_component;

use std::ops::ControlFlow;
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
    run_chunk_each(module, tasks, cancel, |outcome| {
        outcomes.push(outcome);
        ControlFlow::Continue(())
    });
    outcomes
}

/// Runs `tasks` as [`run_chunk`] does, handing each outcome to `each` as
/// its task ends (a worker process reports it then, and its pool starts
/// the next task's clock). When `each` breaks, the tasks after it are not
/// run: their outcomes never come.
pub(crate) fn run_chunk_each(
    module: &Module,
    tasks: &[Task],
    cancel: &CancelToken,
    mut each: impl FnMut(Outcome) -> ControlFlow<()>,
) {
    // How many tasks have ended, and whether `each` said to stop.
    let mut done = 0;
    let mut stop = false;
    let mut ended = |outcome, done: &mut usize, stop: &mut bool| {
        *done += 1;
        *stop = each(outcome).is_break();
        !*stop
    };
    while done < tasks.len() && !stop {
        let start = done;
        // When the task running now started: kept by `run_guarded`, which
        // reads the clock for each task anyway, so that a panic's outcome
        // has its duration without another clock read per task.
        let mut started = None;
        let attempt = catch_unwind(AssertUnwindSafe(|| {
            let mut report = |outcome| ended(outcome, &mut done, &mut stop);
            run_guarded(module, &tasks[start..], cancel, &mut report, &mut started)
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
            ended(lost, &mut done, &mut stop);
        }
    }
}

/// Runs `tasks`, handing one outcome per task to `ended` as each ends,
/// until `ended` says to stop; `current` is when the task running now
/// started.
fn run_guarded(
    module: &Module,
    tasks: &[Task],
    cancel: &CancelToken,
    ended: &mut impl FnMut(Outcome) -> bool,
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
                if ended(refused(error)) {
                    continue;
                }
                return;
            }
        };
        if !live.as_ref().is_some_and(|l| l.can_serve(&plan, task)) {
            // Give the old instance's place back before taking another.
            live = None;
            match Live::start(module, &plan, task, cancel) {
                Ok(fresh) => live = Some(fresh),
                Err(error) => {
                    if ended(refused(error)) {
                        continue;
                    }
                    return;
                }
            }
        }
        let current = live.as_mut().expect("started above");
        let (mut outcome, keep) = current.invoke(module, &plan, task);
        outcome.duration = started.elapsed();
        if !ended(outcome) {
            return;
        }
        // Only typed tasks share an instance (`Live::can_serve`).
        if !keep || !matches!(plan.resolved, Resolved::Task { .. }) {
            live = None;
        }
    }
}
