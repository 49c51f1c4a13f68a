//! The pool's side of a worker process: start it, hand it tasks, watch it,
//! and replace it when it dies or stops answering.
//!
//! The supervisor never polls: it blocks on the worker's frames, the
//! cancel signals of the tasks it serves, and the nearest deadline, all in
//! one select.
//!
//! - `spawn`: starting a worker process (the handshake, the module's load)
//!   and the handle of a live one.
//! - `tasks`: handing tasks over and collecting their answers, relaying the
//!   running task's output, cancels and deadlines (the per-batch loop).
//! - `stdin`: relaying the running task's streamed stdin, flow-controlled.
//! - `breaker`: the crash-loop breaker.

mod breaker;
mod spawn;
mod stdin;
mod tasks;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, select};

use super::{Batched, ProcessOptions, WorkerPids};
use crate::cancel::CancelToken;
use crate::error::{Error, ErrorKind};
use crate::module::Module;
use crate::outcome::Outcome;
use crate::pool::queue::Job;
use crate::share::soon_within;
use crate::status::ExitStatus;
use crate::task::DirectSocket;
use breaker::Breaker;
use spawn::Worker;

/// An error for a task whose worker process was lost.
fn lost(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::WorkerLost, message)
}

/// What [`Supervisor::next_job`] brought.
pub(super) enum Next {
    Job(Job),
    /// The queue is closed, and empty.
    Closed,
    /// Nothing came in the time given: the worker may stop.
    Idle,
}

/// Why `run_tasks` stopped before every task was answered.
enum Ended {
    /// The worker died, broke the protocol or overran a deadline.
    Lost(Error),
    /// No worker could be started.
    NoStart(Error),
    /// The worker retired after a task, as it said in its `Done`.
    Retired,
}

impl From<Error> for Ended {
    fn from(error: Error) -> Self {
        Ended::Lost(error)
    }
}

fn gone(message: impl Into<String>) -> Ended {
    Ended::Lost(lost(message))
}

/// A message already there or arriving within a moment, taken without
/// sleeping (see `share::soon_within`); `None` if none came.
fn soon<T>(channel: &Receiver<T>) -> Option<Result<T, crossbeam_channel::RecvError>> {
    soon_within(Duration::ZERO, || match channel.try_recv() {
        Ok(message) => Some(Ok(message)),
        Err(crossbeam_channel::TryRecvError::Disconnected) => {
            Some(Err(crossbeam_channel::RecvError))
        }
        Err(crossbeam_channel::TryRecvError::Empty) => None,
    })
}

/// Supervises the process of one pool worker.
pub(super) struct Supervisor {
    module: Module,
    options: ProcessOptions,
    worker: Option<Worker>,
    pids: WorkerPids,
    index: usize,
    /// This worker's recent deaths and failed starts.
    breaker: Breaker,
    next_id: u64,
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.set_worker(None);
    }
}

impl Supervisor {
    pub(super) fn new(
        module: Module,
        options: ProcessOptions,
        pids: WorkerPids,
        index: usize,
    ) -> Self {
        Supervisor {
            module,
            worker: None,
            pids,
            index,
            breaker: Breaker::new(options.max_restarts, options.restart_window),
            options,
            next_id: 0,
        }
    }

    /// Starts the worker process now rather than at the first task.
    /// A worker that cannot start counts as a death: a program that is no
    /// worker trips the breaker instead of being started in a loop.
    pub(super) fn warm_up(&mut self) {
        if self.worker.is_none() && !self.breaker.starts_failing() {
            match Worker::spawn(&self.module, &self.options) {
                Ok(worker) => self.set_worker(Some(worker)),
                Err(error) => {
                    self.breaker.record_failed_start(error.to_string());
                }
            }
        }
    }

    /// Waits for the next job, until `until` at the latest.
    ///
    /// While it waits, a worker process that dies (its frame channel
    /// disconnects) or speaks out of turn is replaced at once, so that the
    /// pool keeps its size and the next task does not meet a dead worker.
    /// Idle deaths count towards the crash-loop breaker: a worker that dies
    /// as soon as it starts is not restarted in a loop.
    pub(super) fn next_job(&mut self, queue: &Receiver<Job>, until: Option<Instant>) -> Next {
        let timer = until.map_or_else(crossbeam_channel::never, crossbeam_channel::at);
        let got = |job: Result<Job, crossbeam_channel::RecvError>| {
            job.map_or(Next::Closed, |job| Next::Job(job.taken()))
        };
        loop {
            let Some(worker) = &self.worker else {
                select! {
                    recv(queue) -> job => return got(job),
                    recv(timer) -> _ => return Next::Idle,
                }
            };
            if let Some(job) = soon(queue) {
                return got(job);
            }
            select! {
                recv(queue) -> job => return got(job),
                recv(worker.from_child) -> _ => {
                    self.set_worker(None);
                    self.breaker.record_death("the worker process died while idle".into());
                    self.warm_up();
                }
                recv(timer) -> _ => return Next::Idle,
            }
        }
    }

    /// Replaces the worker (dropping the old one kills and reaps it) and
    /// publishes the new pid.
    fn set_worker(&mut self, worker: Option<Worker>) {
        self.pids.set(self.index, worker.as_ref().map(|w| w.pid));
        self.worker = worker;
    }

    /// Runs a batch of tasks on the worker process (starting one if
    /// needed). `outcomes` gets each task's one outcome as soon as it is
    /// known, with the task's index.
    ///
    /// When the worker dies under a task, that task is retried in a new
    /// worker per the options (or ends `WorkerLost`), and the tasks queued
    /// behind it are sent again: they never started, so it costs them
    /// nothing. When the crash-loop breaker has tripped (more deaths within
    /// the window than the options allow), the task at hand fails for good.
    pub(super) fn run_batch(&mut self, tasks: &[Batched<'_>], outcomes: &mut impl Outcomes) {
        let started = Instant::now();
        let mut attempts = vec![0u32; tasks.len()];
        // Tasks not yet answered, in order.
        let mut pending: VecDeque<usize> = VecDeque::new();
        for (index, Batched { task, .. }) in tasks.iter().enumerate() {
            // The checks a thread worker makes first, made before sending:
            // the same status and message in both isolations, and no
            // oversized message on the pipe.
            let limits = task.limits.clone().unwrap_or_default();
            match limits.validate().and_then(|()| task.check(&limits)) {
                Ok(()) => pending.push_back(index),
                Err(error) => outcomes.deliver(index, Outcome::from(error)),
            }
        }
        // Any cancellation among the tasks wakes the wait for answers.
        let (wake, woken) = crossbeam_channel::bounded(1);
        // The tasks of a batch mostly share one token (a map's): watch each
        // token once, since every watch locks the token's whole chain.
        let mut watched: Vec<&CancelToken> = Vec::new();
        for Batched { cancel: token, .. } in tasks {
            if !watched.iter().any(|seen| seen.same_as(token)) {
                watched.push(token);
            }
        }
        let _watches: Vec<_> = watched.iter().filter_map(|t| t.watch(&wake)).collect();
        let fail = |index: usize, error: Error, outcomes: &mut dyn Outcomes| {
            let mut outcome = Outcome::from(error);
            outcome.duration = started.elapsed();
            outcomes.deliver(index, outcome);
        };
        while let Some(&front) = pending.front() {
            // Nothing is held while a worker starts.
            outcomes.flush();
            if self.breaker.starts_failing() {
                pending.pop_front();
                let error = self.breaker.no_start();
                fail(front, error, outcomes);
                continue;
            }
            let ran = self.run_tasks(tasks, &mut pending, &woken, outcomes);
            outcomes.flush();
            let error = match ran {
                Ok(()) => break,
                Err(Ended::Retired) => {
                    // The worker left on purpose after its task: the tasks
                    // behind it never started and go to a new one.
                    self.set_worker(None);
                    continue;
                }
                Err(Ended::NoStart(error)) => {
                    self.breaker.record_failed_start(error.to_string());
                    let Some(&index) = pending.front() else {
                        break;
                    };
                    if attempts[index] < self.options.retries && !self.breaker.starts_failing() {
                        attempts[index] += 1;
                    } else {
                        pending.pop_front();
                        fail(index, error, outcomes);
                    }
                    continue;
                }
                Err(Ended::Lost(error)) => error,
            };
            self.set_worker(None);
            let open = self.breaker.record_death(error.to_string());
            let Some(&index) = pending.front() else {
                break;
            };
            // A task cancelled while it ran, whose worker did not stop in
            // time and was killed, ends cancelled: it is not run again.
            if tasks[index].cancel.is_cancelled() {
                pending.pop_front();
                let mut outcome = Outcome::failed(
                    ExitStatus::Cancelled,
                    format!("the task was cancelled while it ran: {}", error.message()),
                );
                outcome.duration = started.elapsed();
                outcomes.deliver(index, outcome);
                outcomes.flush();
                self.warm_up();
                continue;
            }
            let error = if open {
                self.breaker.poison()
            } else if attempts[index] < self.options.retries
                && tasks[index].task.can_rerun()
                // A connection whose socket went to the dead worker is not
                // run again: its bytes read there are gone. One whose
                // hand-over failed still has it.
                && tasks[index].task.direct.as_ref().is_none_or(DirectSocket::is_unused)
            {
                attempts[index] += 1;
                tracing::info!(
                    target: "wasmproc::pool",
                    "retrying a task on a new worker process (attempt {}): {}",
                    attempts[index] + 1,
                    self.breaker.last_death()
                );
                continue;
            } else {
                error
            };
            pending.pop_front();
            fail(index, error, outcomes);
            outcomes.flush();
            // Keep the pool at its size: the next task finds a worker ready.
            self.warm_up();
        }
        outcomes.flush();
    }
}

/// Where a batch's outcomes go, as the supervisor learns them.
pub(super) trait Outcomes {
    /// Task `index`'s one outcome. It may be held back, to be delivered
    /// with the ones that follow at once, until the next [`flush`](Outcomes::flush).
    fn deliver(&mut self, index: usize, outcome: Outcome);

    /// Delivers what is held. The supervisor calls it before it sleeps
    /// (waiting for the worker, or starting one) and when the batch ends:
    /// an outcome is never held while nothing else is on its way.
    fn flush(&mut self);
}
