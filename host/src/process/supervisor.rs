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

    /// Replaces the worker (dropping the old one kills and reaps it) and
    /// publishes the new pid.
    fn set_worker(&mut self, worker: Option<Worker>) {
        let pid = worker.as_ref().map(|w| w.pid);
        self.worker = worker;
        self.pids.lock().unwrap_or_else(|p| p.into_inner())[self.slot] = pid;
    }

    /// Runs one task in the worker process and returns its one outcome,
    /// replacing the process (and retrying the task, per the options) when
    /// it dies under it.
    pub(crate) fn run(&mut self, task: &Task, cancel: &CancelToken) -> Outcome {
        let started = Instant::now();
        let wire = match WireTask::from_task(task) {
            Ok(wire) => wire,
            Err(message) => return Outcome::failed(ExitStatus::BadInvocation, message),
        };
        let timeout = task.limits.as_ref().and_then(|l| l.get_timeout());
        let mut wire = Some(wire);
        let mut attempt = 0;
        loop {
            if cancel.is_cancelled() {
                return Outcome::failed(
                    ExitStatus::Cancelled,
                    "the task was cancelled before it started",
                );
            }
            let lost = match self.attempt(&mut wire, task, timeout, cancel) {
                Ok(outcome) => return outcome,
                Err(lost) => lost,
            };
            self.set_worker(None);
            let now = Instant::now();
            self.deaths.push_back(now);
            while self
                .deaths
                .front()
                .is_some_and(|t| now - *t > self.options.restart_window)
            {
                self.deaths.pop_front();
            }
            let mut outcome = if self.deaths.len() > self.options.max_restarts as usize {
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
            } else if attempt < self.options.retries {
                attempt += 1;
                continue;
            } else {
                Outcome::failed(ExitStatus::WorkerLost, lost.0)
            };
            outcome.duration = started.elapsed();
            // Keep the pool at its size: the next task finds a worker ready.
            self.warm_up();
            return outcome;
        }
    }

    fn attempt(
        &mut self,
        wire: &mut Option<WireTask>,
        task: &Task,
        timeout: Option<Duration>,
        cancel: &CancelToken,
    ) -> Result<Outcome, Lost> {
        // A worker that died while idle is replaced before the task is
        // handed over: the task never saw it, so it costs no attempt.
        if self.worker.as_mut().is_some_and(|w| !w.alive()) {
            self.set_worker(None);
        }
        if self.worker.is_none() {
            let worker = self.spawn()?;
            self.set_worker(Some(worker));
        }
        let worker = self.worker.as_mut().expect("spawned above");
        self.next_id += 1;
        let id = self.next_id;
        // The task is sent as is on the first attempt; a retry rebuilds it.
        let message = match wire.take() {
            Some(wire) => wire,
            None => WireTask::from_task(task).map_err(Lost)?,
        };
        write_frame(&mut worker.to_child, &ToChild::Run { id, task: message })
            .map_err(|e| Lost(format!("the worker process stopped taking tasks ({e})")))?;

        // The worker enforces the task's own limits; the supervisor only
        // steps in when the worker fails to answer in time.
        let grace = self.options.grace;
        let mut deadline = timeout.and_then(|t| Instant::now().checked_add(t + grace));
        let mut cancel_sent = false;
        loop {
            if cancel.is_cancelled() && !cancel_sent {
                cancel_sent = true;
                let _ = write_frame(&mut worker.to_child, &ToChild::Cancel { id });
                let by = Instant::now() + grace;
                deadline = Some(deadline.map_or(by, |d| d.min(by)));
            }
            let wait = match deadline {
                Some(deadline) => deadline
                    .saturating_duration_since(Instant::now())
                    .min(CANCEL_POLL),
                None => CANCEL_POLL,
            };
            match worker.from_child.recv_timeout(wait) {
                Ok(Ok(ToParent::Done { id: done, outcome })) if done == id => return Ok(outcome),
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
    }

    fn spawn(&self) -> Result<Worker, Lost> {
        let executable = self.options.worker_executable().map_err(Lost)?;
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
