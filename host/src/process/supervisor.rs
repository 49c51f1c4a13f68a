//! The pool's side of a worker process: start it, hand it tasks, watch it,
//! and replace it when it dies or stops answering.

use std::collections::VecDeque;
use std::io::{BufReader, BufWriter};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};

use super::protocol::{ToChild, ToParent, VERSION, WireTask, read_frame, write_frame};
use super::{ProcessOptions, WORKER_ENV};
use crate::cancel::CancelToken;
use crate::module::Module;
use crate::outcome::{ExitStatus, Outcome};
use crate::task::Task;

/// How long a worker process may take to start and load its module.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// How often a waiting supervisor looks at the task's cancel signal.
const CANCEL_POLL: Duration = Duration::from_millis(5);

/// One live worker process.
struct Worker {
    process: Child,
    to_child: BufWriter<ChildStdin>,
    from_child: Receiver<std::io::Result<ToParent>>,
    pid: u32,
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.set_worker(None);
    }
}

impl Worker {
    /// Whether the process still runs and its pipe is open.
    fn alive(&mut self) -> bool {
        let exited = self
            .process
            .try_wait()
            .map_or(true, |status| status.is_some());
        // An idle worker has nothing to say: a message now is out of turn.
        let quiet = matches!(
            self.from_child.try_recv(),
            Err(crossbeam_channel::TryRecvError::Empty)
        );
        !exited && quiet
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

/// Why a task got no outcome from its worker.
struct Lost(String);

/// The pids of a pool's worker processes, one place per slot.
pub(crate) type Pids = std::sync::Arc<std::sync::Mutex<Vec<Option<u32>>>>;

/// Supervises the worker process of one pool slot.
pub(crate) struct Supervisor {
    module: Module,
    options: ProcessOptions,
    worker: Option<Worker>,
    pids: Pids,
    slot: usize,
    /// When this slot's recent workers died, for the crash-loop breaker.
    deaths: VecDeque<Instant>,
    next_id: u64,
}

impl Supervisor {
    pub(crate) fn new(module: Module, options: ProcessOptions, pids: Pids, slot: usize) -> Self {
        Supervisor {
            module,
            options,
            worker: None,
            pids,
            slot,
            deaths: VecDeque::new(),
            next_id: 0,
        }
    }

    /// Starts the worker process now rather than at the first task.
    pub(crate) fn warm_up(&mut self) {
        if self.worker.is_none() {
            let worker = self.spawn().ok();
            self.set_worker(worker);
        }
    }

    /// Replaces a worker process that died while idle.
    pub(crate) fn replace_if_dead(&mut self) {
        if self.worker.as_mut().is_some_and(|w| !w.alive()) {
            self.set_worker(None);
            self.warm_up();
        }
    }

    /// Replaces the worker (dropping the old one kills and reaps it) and
    /// publishes the new pid.
    fn set_worker(&mut self, worker: Option<Worker>) {
        let pid = worker.as_ref().map(|w| w.pid);
        self.worker = worker;
        self.pids.lock().unwrap_or_else(|p| p.into_inner())[self.slot] = pid;
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
    pub(crate) fn run_batch(
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
                Err(message) => deliver(index, Outcome::failed(ExitStatus::BadInvocation, message)),
            }
        }
        while !pending.is_empty() {
            let lost = match self.serve(tasks, &mut pending, &mut deliver) {
                Ok(()) => return,
                Err(lost) => lost,
            };
            self.set_worker(None);
            let Some(&index) = pending.front() else {
                return;
            };
            let now = Instant::now();
            self.deaths.push_back(now);
            while self
                .deaths
                .front()
                .is_some_and(|t| now - *t > self.options.restart_window)
            {
                self.deaths.pop_front();
            }
            let outcome = if self.deaths.len() > self.options.max_restarts as usize {
                Outcome::failed(
                    ExitStatus::WorkerLost,
                    format!(
                        "{}; the worker process died {} times within {}: the task fails for good \
                         (it may be poison to its worker)",
                        lost.0,
                        self.deaths.len(),
                        humantime::format_duration(self.options.restart_window)
                    ),
                )
            } else if attempts[index] < self.options.retries {
                attempts[index] += 1;
                continue;
            } else {
                Outcome::failed(ExitStatus::WorkerLost, lost.0)
            };
            pending.pop_front();
            let mut outcome = outcome;
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
        deliver: &mut impl FnMut(usize, Outcome),
    ) -> Result<(), Lost> {
        // A worker that died while idle is replaced before tasks are handed
        // over: they never saw it, so it costs them no attempt.
        if self.worker.as_mut().is_some_and(|w| !w.alive()) {
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
            let wire = WireTask::from_task(tasks[index].0).map_err(Lost)?;
            write_frame(&mut worker.to_child, &ToChild::Run { id, task: wire })
                .map_err(|e| Lost(format!("the worker process stopped taking tasks ({e})")))?;
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
            let wait = match deadline {
                Some(deadline) => deadline
                    .saturating_duration_since(Instant::now())
                    .min(CANCEL_POLL),
                None => CANCEL_POLL,
            };
            match worker.from_child.recv_timeout(wait) {
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
                Ok(Ok(_)) => return Err(Lost("the worker process answered out of turn".into())),
                Ok(Err(error)) => {
                    return Err(Lost(format!(
                        "the worker process sent a malformed frame ({error})"
                    )));
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = worker
                        .process
                        .wait()
                        .map(|s| s.to_string())
                        .unwrap_or_default();
                    return Err(Lost(format!(
                        "the worker process died under the task ({status})"
                    )));
                }
                Err(RecvTimeoutError::Timeout) => {
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        return Err(Lost(format!(
                            "the worker process did not answer within the task's limit plus {} of \
                             grace, and was killed",
                            humantime::format_duration(grace)
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    fn spawn(&self) -> Result<Worker, Lost> {
        let executable = self.options.worker_executable().map_err(Lost)?;
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
                Lost(format!(
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
                    let frame = read_frame::<ToParent>(&mut stdout);
                    let end = !matches!(frame, Ok(Some(_)));
                    match frame {
                        Ok(Some(message)) => {
                            if frames.send(Ok(message)).is_err() {
                                break;
                            }
                        }
                        Ok(None) => break,
                        Err(error) => {
                            let _ = frames.send(Err(error));
                        }
                    }
                    if end {
                        break;
                    }
                }
            })
            .map_err(|e| Lost(format!("cannot start a supervisor thread: {e}")))?;
        let pid = process.id();
        let mut worker = Worker {
            process,
            to_child: BufWriter::new(stdin),
            from_child,
            pid,
        };
        let inner = &self.module.inner;
        let hello = ToChild::Hello {
            version: VERSION,
            module_name: inner.name.clone(),
            module: inner.wasm().to_vec(),
            cache_dir: inner.runtime.cache_dir().map(|dir| dir.to_path_buf()),
        };
        write_frame(&mut worker.to_child, &hello).map_err(|e| {
            Lost(format!(
                "cannot talk to the worker process `{}`: {e}",
                executable.display()
            ))
        })?;
        match worker.from_child.recv_timeout(START_TIMEOUT) {
            Ok(Ok(ToParent::Ready { version, .. })) if version == VERSION => Ok(worker),
            Ok(Ok(ToParent::Refused { message })) => {
                Err(Lost(format!("the worker process refused: {message}")))
            }
            _ => Err(Lost(format!(
                "`{}` did not start as a wasmproc worker: it must be the wasmproc binary, or a \
                 program that calls wasmproc::process::run_worker_if_requested() first thing in main",
                executable.display()
            ))),
        }
    }
}
