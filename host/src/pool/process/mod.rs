//! Worker processes: pool workers that are child processes of a wasmproc
//! executable, spawned the same way on every OS (no `fork`), talking over
//! pipes, supervised.
//!
//! A process pool runs each task in a fresh instance, like a thread pool,
//! and gives the same outcomes; in addition each worker is a separate OS
//! process, so that the kernel's memory-map work of many instances spreads
//! over processes instead of serializing in one, and a worker that stops
//! answering can be killed and replaced.
//!
//! Which executable is the worker, and how many run: see
//! [`ProcessOptions`].
//!
//! # How it works
//!
//! - `supervisor`: the pool's side of one worker process: start it, hand it
//!   tasks, watch it, replace it when it dies or stops answering.
//! - `child`: the worker process's side: load the module, run tasks.
//! - `protocol`: the framed, versioned messages between the two.
//! - `handover`: a server's connection handed to a worker as its socket
//!   (Unix), not as relayed bytes.
//! - `share_server`: the pool's side of a worker's sharing: it holds what
//!   the tasks were granted and carries out their guests' operations.
//! - `share_client`: the worker's side of sharing: operations out as
//!   frames, answers routed back to the guest.
//! - `feed_worker` (here): the pool thread that feeds one worker process from
//!   the pool's queue, and stops it when the pool has had more workers
//!   than it needed for [`ProcessOptions::idle_timeout`].

mod child;
mod handover;
pub(crate) mod protocol;
mod share_client;
mod share_server;
mod supervisor;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;

use super::queue::{Idle, IdleMark, Job, Reply, Sink};

use crate::cancel::CancelToken;
use crate::error::{Error, ErrorKind};
use crate::module::Module;
use crate::mutex::Mutex;
use crate::outcome::Outcome;
use crate::task::Task;
use supervisor::{Next, Outcomes, Supervisor};

/// The environment variable that makes an executable a worker process.
pub const WORKER_ENV: &str = "WASMPROC_WORKER";

/// Serves as a worker process and exits, if this process was started as
/// one by a pool (its environment has `WASMPROC_WORKER=1`); returns at
/// once otherwise. Call it first thing in `main`.
pub fn run_worker_if_requested() {
    if started_as_worker() {
        std::process::exit(child::worker_main());
    }
}

/// Whether this process was started as a worker process.
fn started_as_worker() -> bool {
    std::env::var_os(WORKER_ENV).is_some_and(|v| v == "1")
}

/// The running program's own file when its path no longer leads to it
/// (replaced or removed: an upgrade, a rebuild), by Linux's link to it,
/// which stays valid while the program runs: else every later worker (a
/// burst, a respawn) would fail to start, or start another program. `None`
/// while the path is still the program (workers then show its name).
#[cfg(target_os = "linux")]
fn replaced_program() -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    const RUNNING: &str = "/proc/self/exe";
    let running = std::fs::metadata(RUNNING).ok()?;
    let named = std::env::current_exe().and_then(std::fs::metadata).ok();
    match named {
        Some(named) if (named.dev(), named.ino()) == (running.dev(), running.ino()) => None,
        _ => Some(PathBuf::from(RUNNING)),
    }
}

/// Refuses to start worker processes from a worker process.
///
/// A program that builds a process pool without calling
/// [`run_worker_if_requested`] first in `main` would otherwise start itself
/// as a worker, which builds the same pool and starts two more, and so on:
/// a tree of processes without end. As Python's `multiprocessing` does
/// without its `__main__` guard, this stops it at the first level, with an
/// error that names the fix.
pub(crate) fn refuse_in_a_worker() -> Result<(), Error> {
    if started_as_worker() {
        let program = std::env::current_exe()
            .map(|path| path.display().to_string())
            .unwrap_or_else(|_| "this program".into());
        return Err(Error::new(
            ErrorKind::Setup,
            format!(
                "`{program}` was started as a wasmproc worker process, yet builds a process pool \
                 itself: call wasmproc::run_worker_if_requested() first thing in main, \
                 so that a worker serves its pool instead of running the program again"
            ),
        ));
    }
    Ok(())
}

/// How worker processes are started and supervised. Every setting has a
/// documented default.
///
/// # Which executable is the worker
///
/// By default the pool starts the current executable, as Python's
/// `multiprocessing` does with its spawn method. A program that embeds a
/// process pool then calls [`run_worker_if_requested`] first thing in
/// `main`, which turns it into a worker when it was started as one:
///
/// ```no_run
/// # #[allow(clippy::needless_doctest_main)]
/// fn main() {
///     wasmproc::run_worker_if_requested();
///     // ... the program proper, which may build a process pool ...
/// }
/// ```
///
/// Alternatively, point [`ProcessOptions::executable`] at the `wasmproc`
/// binary, which is always a worker when asked, or at an interpreter with
/// the [`arguments`](ProcessOptions::args) that make it call
/// [`run_worker_if_requested`] (the Python package starts
/// `python -m wasmproc._worker`).
///
/// # How many worker processes run
///
/// A pool of N workers does not start N processes: it starts
/// [`ProcessOptions::min_workers`] with the pool (1 by default), and
/// another only when a task is queued while every worker is busy, up to N;
/// such a worker starts its process when it takes its first task. Once the
/// idle timeout has passed since the last moment every worker was busy,
/// workers stop as they go idle, down to the minimum. A server that serves
/// one connection at a time keeps about one worker process, however large
/// its bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessOptions {
    executable: Option<PathBuf>,
    args: Vec<OsString>,
    pub(crate) retries: u32,
    pub(crate) max_restarts: u32,
    pub(crate) restart_window: Duration,
    pub(crate) grace: Duration,
    pub(crate) min_workers: usize,
    pub(crate) idle_timeout: Option<Duration>,
}

impl Default for ProcessOptions {
    fn default() -> Self {
        ProcessOptions {
            executable: None,
            args: Vec::new(),
            retries: 1,
            max_restarts: 5,
            restart_window: Duration::from_secs(10),
            grace: Duration::from_secs(1),
            min_workers: 1,
            idle_timeout: Some(Duration::from_secs(30)),
        }
    }
}

impl ProcessOptions {
    /// Starts `path` as the worker executable. By default the current
    /// executable (which must call [`run_worker_if_requested`]).
    pub fn executable(mut self, path: impl Into<PathBuf>) -> Self {
        self.executable = Some(path.into());
        self
    }

    /// Starts the worker executable with these arguments (none by
    /// default). For an executable that is not itself the worker, such as
    /// an interpreter: `python -m wasmproc._worker` is
    /// `.executable(python).args(["-m", "wasmproc._worker"])`, where that
    /// module calls [`run_worker_if_requested`].
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args = args.into_iter().map(Into::into).collect();
        self
    }

    /// The arguments the worker executable starts with.
    pub(crate) fn worker_args(&self) -> &[OsString] {
        &self.args
    }

    /// Runs a task again, in a new worker, when its worker process died
    /// under it, up to `retries` times; then it ends `WorkerLost`. By
    /// default 1, which also covers a task handed to a worker in the instant
    /// after it died (before the supervisor could notice). A task that
    /// streams its stdin or output (a connection) is never run again: part
    /// of its stream is gone with the worker.
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// The crash-loop breaker: when a pool slot's worker dies more than
    /// `max_restarts` times within `window`, the task at hand fails for good
    /// with `WorkerLost`, without retries. By default 5 within 10s.
    pub fn restart_intensity(mut self, max_restarts: u32, window: Duration) -> Self {
        self.max_restarts = max_restarts;
        self.restart_window = window;
        self
    }

    /// How long past a task's time limit (or its cancellation) the worker
    /// may take to answer before it is killed. By default 1s.
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// How many workers start with the pool, their processes ready before
    /// the first task, and stay however long they are idle. By default 1;
    /// at most the pool's size (more count as that). The others start on
    /// demand (see [`ProcessOptions`]).
    pub fn min_workers(mut self, workers: usize) -> Self {
        self.min_workers = workers;
        self
    }

    /// Stops the workers a pool has not needed for this long (`None`:
    /// never). Once `idle` has passed since the last moment every worker
    /// was busy, workers stop (their processes and pool threads) as they
    /// go idle, down to [`min_workers`](ProcessOptions::min_workers); more
    /// start again on demand. By default 30s.
    pub fn idle_timeout(mut self, idle: Option<Duration>) -> Self {
        self.idle_timeout = idle;
        self
    }

    /// The executable to start as a worker.
    pub(crate) fn worker_executable(&self) -> Result<PathBuf, Error> {
        #[cfg(target_os = "linux")]
        if self.executable.is_none()
            && let Some(running) = replaced_program()
        {
            return Ok(running);
        }
        match &self.executable {
            Some(path) => Ok(path.clone()),
            None => std::env::current_exe().map_err(|e| {
                Error::new(
                    ErrorKind::Setup,
                    format!("cannot find the current executable: {e}"),
                )
                .caused_by(e)
            }),
        }
    }
}

/// The pids of a pool's worker processes, by worker (each worker's index
/// is its own: a worker that stopped leaves its index unused).
#[derive(Clone, Default)]
pub(crate) struct WorkerPids(Arc<Mutex<BTreeMap<usize, u32>>>);

impl WorkerPids {
    /// Publishes (or clears) worker `index`'s pid.
    pub(crate) fn set(&self, index: usize, pid: Option<u32>) {
        let mut pids = self.0.lock();
        match pid {
            Some(pid) => pids.insert(index, pid),
            None => pids.remove(&index),
        };
    }

    /// The pids of the live worker processes.
    pub(crate) fn live(&self) -> Vec<u32> {
        let pids = self.0.lock();
        pids.values().copied().collect()
    }
}

/// What a process pool's thread asks of the pool about the workers: the
/// pool starts them on demand and lets idle ones go (`pool::workers`
/// answers).
pub(crate) trait Roster: Send + Sync {
    /// This worker just took a job: start another if work still waits and
    /// no worker is idle.
    fn took_job(&self);

    /// When this idle worker may stop, if ever.
    fn retire_at(&self) -> Option<Instant>;

    /// Whether idle worker `index` stops now (the pool had more workers
    /// than it needed for the idle timeout, keeps its minimum, and no work
    /// waits); it then no longer counts as one of the pool's workers.
    fn retire(&self, index: usize) -> Verdict;
}

/// What becomes of an idle worker whose idle timeout came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// It stops: the pool did not need it.
    Stop,
    /// It waits on (work came, or its time is not up after all).
    Wait,
    /// It is one of the pool's minimum, kept however idle: with its
    /// process running (a worker started on demand may have none yet).
    Keep,
}

/// One worker's place in its pool.
pub(crate) struct Place {
    /// The worker's own index (for its pid, and its thread's name).
    pub(crate) index: usize,
    /// Whether it starts its process before its first task.
    pub(crate) warm: bool,
    pub(crate) roster: Arc<dyn Roster>,
}

/// How long the relay and a worker's guest try for the other side's next
/// word before sleeping (see `share::soon_within`).
const ANSWER_SOON: std::time::Duration = std::time::Duration::from_micros(30);

/// Whether a job's tasks were granted queues, regions or pipes, or stream
/// their stdin or read a socket (a connection): such a task may wait on another task or a
/// peer, so none is queued behind it or it behind others.
fn talks(job: &Job) -> bool {
    job.tasks
        .iter()
        .any(|task| !task.grants.is_empty() || task.streams_stdin() || task.direct.is_some())
}

/// How many tasks a worker process is given at once, at most.
const PIPELINE_DEPTH: usize = 8;

/// Tasks shorter than this (on average, lately) are pipelined: the round
/// trip to the worker process would cost a good part of each. Longer ones
/// go one at a time, so that none waits behind a busy worker while another
/// is idle.
const PIPELINE_BELOW: Duration = Duration::from_millis(1);

/// A pool thread of a process pool: it feeds its worker process from the
/// queue until the queue closes, or until the pool lets it go while idle;
/// the supervisor replaces the process whenever it dies.
pub(crate) fn feed_worker(
    module: Module,
    options: ProcessOptions,
    pids: WorkerPids,
    place: Place,
    queue: &Receiver<Job>,
    idle: &Idle,
) {
    let Place {
        index,
        mut warm,
        roster,
    } = place;
    let mut supervisor = Supervisor::new(module, options, pids, index);
    // A job taken to go behind others that turned out to talk to other
    // tasks: it goes first next time, alone.
    let mut carried: Option<Job> = None;
    // How long this worker's tasks took lately; unknown (so: long) at first.
    let mut pace: Option<Duration> = None;
    // Counts this worker idle from its last outcome's delivery until it
    // takes its next job: another worker that checks meanwhile (to pipeline
    // jobs behind its own) must not find none idle while this one is on its
    // way back to the queue.
    let mut idle_since_done: Option<IdleMark> = None;
    loop {
        let first = match carried.take() {
            Some(job) => job,
            None => {
                let retire_at = roster.retire_at();
                // Counted idle while its first process starts: a task
                // queued meanwhile waits for it rather than for another.
                let next = idle.waiting(|| {
                    if std::mem::take(&mut warm) {
                        supervisor.warm_up();
                    }
                    supervisor.next_job(queue, retire_at)
                });
                match next {
                    Next::Job(job) => {
                        drop(idle_since_done.take());
                        roster.took_job();
                        job
                    }
                    Next::Closed => return,
                    Next::Idle => match roster.retire(index) {
                        Verdict::Stop => {
                            // Dropping the supervisor stops the process.
                            drop(supervisor);
                            tracing::debug!(
                                target: "wasmproc::pool",
                                "worker {index} stopped: the pool did not need it"
                            );
                            return;
                        }
                        Verdict::Keep => {
                            supervisor.warm_up();
                            continue;
                        }
                        Verdict::Wait => continue,
                    },
                }
            }
        };
        // Take a few more queued jobs, so that the worker process runs them
        // back to back instead of waiting a round trip between tasks; but
        // only short ones, and only while no other worker is idle to take
        // them. Not jobs that share queues or locks: such a task may wait
        // for another, which must not be queued behind it.
        drop(idle_since_done.take());
        let short = pace.is_some_and(|pace| pace < PIPELINE_BELOW);
        let mut jobs = vec![first];
        while short
            && !talks(&jobs[0])
            && !idle.any()
            && jobs.iter().map(|j| j.tasks.len()).sum::<usize>() < PIPELINE_DEPTH
        {
            match queue.try_recv().map(Job::taken) {
                Ok(job) if talks(&job) => {
                    carried = Some(job);
                    break;
                }
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let mut replies: Vec<Option<Reply>> = Vec::new();
        let mut tasks = Vec::new();
        let mut chunks = 0;
        for job in &mut jobs {
            let chunk = job.chunk.max(1);
            for (index, (task, reply)) in job.tasks.iter().zip(job.replies.drain(..)).enumerate() {
                if index % chunk == 0 {
                    chunks += 1;
                }
                tasks.push(Batched {
                    task,
                    cancel: &job.cancel,
                    chunk: chunks,
                });
                replies.push(Some(reply));
            }
        }
        let mut replies = Replies {
            left: tasks.len(),
            tasks: &tasks,
            replies,
            pace: &mut pace,
            idle,
            idle_since_done: &mut idle_since_done,
            held: Vec::new(),
            held_for: None,
        };
        supervisor.run_batch(&tasks, &mut replies);
    }
}

/// A task of a batch handed to a worker process.
pub(crate) struct Batched<'j> {
    pub(crate) task: &'j Task,
    /// Its job's canceller (every task of a job has the same).
    pub(crate) cancel: &'j CancelToken,
    /// Which chunk of the batch it is in: consecutive tasks of one chunk
    /// share an instance in the worker, as in a thread worker (a map's
    /// `chunksize`).
    pub(crate) chunk: usize,
}

/// A batch's outcomes on their way to their replies. A map's outcomes that
/// the supervisor learns one right after another go to the map together
/// (one wake-up of its reader, as a thread worker delivers a map's batch);
/// others go one by one.
struct Replies<'b> {
    tasks: &'b [Batched<'b>],
    /// One per task, taken when its outcome comes.
    replies: Vec<Option<Reply>>,
    /// How many tasks have no outcome yet.
    left: usize,
    /// How long this worker's tasks took lately.
    pace: &'b mut Option<Duration>,
    idle: &'b Idle,
    /// Set with the batch's last outcome: this worker counts as idle from
    /// then until it takes its next job.
    idle_since_done: &'b mut Option<IdleMark>,
    /// Outcomes held for `held_for`, with their indexes in its map.
    held: Vec<(usize, Outcome)>,
    held_for: Option<Arc<dyn Sink>>,
}

impl Replies<'_> {
    /// Runs `deliver`; with the batch's last outcome, counted idle from
    /// before it is known until the next job is taken: a task its
    /// submitter (or a connection's peer) sends next finds this worker idle
    /// rather than starting another, or queueing behind another's.
    fn send(&mut self, deliver: impl FnOnce()) {
        if self.left == 0 && self.idle_since_done.is_none() {
            *self.idle_since_done = Some(self.idle.mark());
        }
        deliver();
    }
}

impl Outcomes for Replies<'_> {
    fn deliver(&mut self, index: usize, outcome: Outcome) {
        *self.pace = Some(
            self.pace
                .map_or(outcome.duration, |pace| (pace * 7 + outcome.duration) / 8),
        );
        self.left -= 1;
        self.tasks[index].task.hang_up();
        match self.replies[index].take() {
            Some(Reply::Stream { index, sink }) => {
                if self
                    .held_for
                    .as_ref()
                    .is_some_and(|held| !Arc::ptr_eq(held, &sink))
                {
                    self.flush();
                }
                self.held_for = Some(sink);
                self.held.push((index, outcome));
            }
            Some(reply) => {
                self.flush();
                self.send(|| reply.send(outcome));
            }
            None => {}
        }
    }

    fn flush(&mut self) {
        if let Some(sink) = self.held_for.take() {
            let held = std::mem::take(&mut self.held);
            self.send(|| sink.deliver_all(held));
        }
    }
}
