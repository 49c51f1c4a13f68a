//! The pool's side of a worker process: start it, hand it tasks, watch it,
//! and replace it when it dies or stops answering.
//!
//! The supervisor never polls: it blocks on the worker's frames, the
//! cancel signals of the tasks it serves, and the nearest deadline, all in
//! one select.

use std::collections::VecDeque;
use std::io::{BufReader, BufWriter};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, select};

use super::protocol::{ToChild, ToParent, VERSION, WireTask, read_frame, write_frame};
use super::{ProcessOptions, WORKER_ENV, WorkerPids};
use crate::cancel::CancelToken;
use crate::error::{Error, ErrorKind};
use crate::module::Module;
use crate::outcome::Outcome;
use crate::pool::job::Job;
use crate::status::ExitStatus;
use crate::task::Task;

/// How long a worker process may take to start and load its module.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// One live worker process.
struct Worker {
    process: Child,
    to_child: BufWriter<ChildStdin>,
    /// Its frames, read by a thread of their own; disconnected once the
    /// process has closed its stdout (it exited or died).
    from_child: Receiver<std::io::Result<ToParent>>,
    pid: u32,
}

impl Worker {
    /// Whether an idle worker is still there: its frame channel is open
    /// and quiet (an idle worker has nothing to say; a frame now is out of
    /// turn, and the worker is replaced anyway).
    fn idle_and_alive(&self) -> bool {
        matches!(
            self.from_child.try_recv(),
            Err(crossbeam_channel::TryRecvError::Empty)
        )
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // Closing stdin asks it to exit; the kill makes sure, and the wait
        // reaps it so that no zombie is left.
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// An error for a task whose worker process was lost.
fn lost(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::WorkerLost, message)
}

/// Supervises the process of one pool worker.
pub(super) struct Supervisor {
    module: Module,
    options: ProcessOptions,
    worker: Option<Worker>,
    pids: WorkerPids,
    index: usize,
    /// When this worker's recent processes died, for the crash-loop breaker.
    deaths: VecDeque<Instant>,
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
            options,
            worker: None,
            pids,
            index,
            deaths: VecDeque::new(),
            next_id: 0,
        }
    }

    /// Starts the worker process now rather than at the first task.
    pub(super) fn warm_up(&mut self) {
        if self.worker.is_none() {
            let worker = self.spawn().ok();
            self.set_worker(worker);
        }
    }

    /// Waits for the next job; `None` once the queue is closed and empty.
    ///
    /// While it waits, a worker process that dies (its frame channel
    /// disconnects) or speaks out of turn is replaced at once, so that the
    /// pool keeps its size and the next task does not meet a dead worker.
    /// Idle deaths count towards the crash-loop breaker: a worker that dies
    /// as soon as it starts is not restarted in a loop.
    pub(super) fn next_job(&mut self, queue: &Receiver<Job>) -> Option<Job> {
        loop {
            let Some(worker) = &self.worker else {
                return queue.recv().ok();
            };
            select! {
                recv(queue) -> job => return job.ok(),
                recv(worker.from_child) -> _ => {
                    self.set_worker(None);
                    if !self.record_death() {
                        self.warm_up();
                    }
                }
            }
        }
    }

    /// Replaces the worker (dropping the old one kills and reaps it) and
    /// publishes the new pid.
    fn set_worker(&mut self, worker: Option<Worker>) {
        self.pids.set(self.index, worker.as_ref().map(|w| w.pid));
        self.worker = worker;
    }

    /// Records a death; whether the crash-loop breaker has tripped (more
    /// deaths within the window than the options allow).
    fn record_death(&mut self) -> bool {
        let now = Instant::now();
        self.deaths.push_back(now);
        while self
            .deaths
            .front()
            .is_some_and(|t| now - *t > self.options.restart_window)
        {
            self.deaths.pop_front();
        }
        self.deaths.len() > self.options.max_restarts as usize
    }

    /// Runs `tasks` in the worker process, pipelined: all are sent at once
    /// and the worker runs them in order, so no round trip is waited for
    /// between two tasks. `deliver` gets each task's one outcome as soon as
    /// it is known, with the task's index.
    ///
    /// When the worker dies under a task, that task is retried in a new
    /// worker per the options (or ends `WorkerLost`), and the tasks queued
    /// behind it are sent again: they never started, so it costs them
    /// nothing.
    pub(super) fn run_batch(
        &mut self,
        tasks: &[(&Task, &CancelToken)],
        mut deliver: impl FnMut(usize, Outcome),
    ) {
        let started = Instant::now();
        let mut attempts = vec![0u32; tasks.len()];
        // Tasks not yet answered, in order.
        let mut pending: VecDeque<usize> = VecDeque::new();
        for (index, (task, _)) in tasks.iter().enumerate() {
            match WireTask::from_task(task) {
                Ok(_) => pending.push_back(index),
                Err(error) => deliver(index, Outcome::from(error)),
            }
        }
        // Any cancellation among the tasks wakes the wait for answers.
        let (wake, woken) = crossbeam_channel::bounded(1);
        let _watches: Vec<_> = tasks
            .iter()
            .filter_map(|(_, token)| token.watch(&wake))
            .collect();
        while !pending.is_empty() {
            let error = match self.serve(tasks, &mut pending, &woken, &mut deliver) {
                Ok(()) => return,
                Err(error) => error,
            };
            self.set_worker(None);
            let Some(&index) = pending.front() else {
                return;
            };
            let error = if self.record_death() {
                lost(format!(
                    "{error}; the worker process died {} times within {}: the task fails for good \
                     (it may be poison to its worker)",
                    self.deaths.len(),
                    humantime::format_duration(self.options.restart_window)
                ))
            } else if attempts[index] < self.options.retries {
                attempts[index] += 1;
                continue;
            } else {
                error
            };
            pending.pop_front();
            let mut outcome = Outcome::from(error);
            outcome.duration = started.elapsed();
            deliver(index, outcome);
            // Keep the pool at its size: the next task finds a worker ready.
            self.warm_up();
        }
    }

    /// Sends every pending task to the worker and collects answers until
    /// all are in, or the worker is lost (the unanswered stay pending).
    fn serve(
        &mut self,
        tasks: &[(&Task, &CancelToken)],
        pending: &mut VecDeque<usize>,
        woken: &Receiver<()>,
        deliver: &mut impl FnMut(usize, Outcome),
    ) -> Result<(), Error> {
        // A worker that died while idle is replaced before tasks are handed
        // over: they never saw it, so it costs them no attempt.
        if self.worker.as_ref().is_some_and(|w| !w.idle_and_alive()) {
            self.set_worker(None);
        }
        if self.worker.is_none() {
            let worker = self.spawn()?;
            self.set_worker(Some(worker));
        }
        let worker = self.worker.as_mut().expect("spawned above");

        // Cancelled before they were sent: they never start.
        pending.retain(|&index| {
            let cancelled = tasks[index].1.is_cancelled();
            if cancelled {
                deliver(
                    index,
                    Outcome::failed(
                        ExitStatus::Cancelled,
                        "the task was cancelled before it started",
                    ),
                );
            }
            !cancelled
        });
        let mut in_flight: VecDeque<(usize, u64, bool)> = VecDeque::new();
        for &index in pending.iter() {
            self.next_id += 1;
            let id = self.next_id;
            let wire = WireTask::from_task(tasks[index].0)?;
            write_frame(&mut worker.to_child, &ToChild::Run { id, task: wire })
                .map_err(|e| lost(format!("the worker process stopped taking tasks ({e})")))?;
            in_flight.push_back((index, id, false));
        }

        // The worker enforces each task's own limits; the supervisor steps
        // in only when it fails to answer in time. The task at the front is
        // the one running: its clock starts when the one before it ends.
        let grace = self.options.grace;
        let limit = |index: usize| tasks[index].0.limits.as_ref().and_then(|l| l.get_timeout());
        let mut front_since = Instant::now();
        let mut cancel_by: Option<Instant> = None;
        while let Some(&(front, front_id, _)) = in_flight.front() {
            for (index, id, cancel_sent) in in_flight.iter_mut() {
                if !*cancel_sent && tasks[*index].1.is_cancelled() {
                    *cancel_sent = true;
                    let _ = write_frame(&mut worker.to_child, &ToChild::Cancel { id: *id });
                    if *id == front_id {
                        cancel_by = Some(Instant::now() + grace);
                    }
                }
            }
            let deadline = [
                limit(front).and_then(|t| front_since.checked_add(t + grace)),
                cancel_by,
            ]
            .into_iter()
            .flatten()
            .min();
            let timer = match deadline {
                Some(deadline) => crossbeam_channel::at(deadline),
                None => crossbeam_channel::never(),
            };
            select! {
                recv(worker.from_child) -> frame => match frame {
                    Ok(Ok(ToParent::Done { id, outcome })) if id == front_id => {
                        in_flight.pop_front();
                        pending.pop_front();
                        deliver(front, outcome);
                        front_since = Instant::now();
                        cancel_by = in_flight
                            .front()
                            .filter(|(_, _, cancel_sent)| *cancel_sent)
                            .map(|_| front_since + grace);
                    }
                    Ok(Ok(_)) => return Err(lost("the worker process answered out of turn")),
                    Ok(Err(error)) => {
                        return Err(lost(format!(
                            "the worker process sent a malformed frame ({error})"
                        )));
                    }
                    Err(_) => {
                        let status = worker
                            .process
                            .wait()
                            .map(|s| s.to_string())
                            .unwrap_or_default();
                        return Err(lost(format!(
                            "the worker process died under the task ({status})"
                        )));
                    }
                },
                // A task was cancelled: the loop's top sends the `Cancel`.
                recv(woken) -> _ => {}
                recv(timer) -> _ => {
                    return Err(lost(format!(
                        "the worker process did not answer within the task's limit plus {} of \
                         grace, and was killed",
                        humantime::format_duration(grace)
                    )));
                }
            }
        }
        Ok(())
    }

    fn spawn(&self) -> Result<Worker, Error> {
        let executable = self
            .options
            .worker_executable()
            .map_err(|message| Error::new(ErrorKind::Setup, message))?;
        // One spawn at a time: on Windows a child inherits every inheritable
        // handle that exists while it is created, so two workers started at
        // once could each hold the other's pipe open, and neither would see
        // its pool go away.
        static SPAWNING: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let spawning = SPAWNING.lock().unwrap_or_else(|p| p.into_inner());
        let mut process = Command::new(&executable)
            .env(WORKER_ENV, "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| {
                lost(format!(
                    "cannot start the worker process `{}`: {e}",
                    executable.display()
                ))
            })?;
        drop(spawning);
        let stdin = process.stdin.take().expect("piped");
        let stdout = process.stdout.take().expect("piped");
        let (frames, from_child) = crossbeam_channel::unbounded();
        std::thread::Builder::new()
            .name("wasmproc-supervisor-reader".into())
            .spawn(move || {
                let mut stdout = BufReader::new(stdout);
                loop {
                    match read_frame::<ToParent>(&mut stdout) {
                        Ok(Some(message)) => {
                            if frames.send(Ok(message)).is_err() {
                                break;
                            }
                        }
                        Ok(None) => break,
                        Err(error) => {
                            let _ = frames.send(Err(error));
                            break;
                        }
                    }
                }
            })
            .map_err(|e| lost(format!("cannot start a supervisor thread: {e}")))?;
        let pid = process.id();
        let mut worker = Worker {
            process,
            to_child: BufWriter::new(stdin),
            from_child,
            pid,
        };
        let hello = ToChild::Hello {
            version: VERSION,
            module_name: self.module.name().to_owned(),
            module: self.module.wasm().to_vec(),
            settings: self.module.runtime().settings().clone(),
        };
        write_frame(&mut worker.to_child, &hello).map_err(|e| {
            lost(format!(
                "cannot talk to the worker process `{}`: {e}",
                executable.display()
            ))
        })?;
        match worker.from_child.recv_timeout(START_TIMEOUT) {
            Ok(Ok(ToParent::Ready { version, .. })) if version == VERSION => Ok(worker),
            Ok(Ok(ToParent::Refused { message })) => {
                Err(lost(format!("the worker process refused: {message}")))
            }
            _ => Err(lost(format!(
                "`{}` did not start as a wasmproc worker: it must be the wasmproc binary, or a \
                 program that calls wasmproc::process::run_worker_if_requested() first thing in main",
                executable.display()
            ))),
        }
    }
}
