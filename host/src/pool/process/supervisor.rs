//! The pool's side of a worker process: start it, hand it tasks, watch it,
//! and replace it when it dies or stops answering.
//!
//! The supervisor never polls: it blocks on the worker's frames, the
//! cancel signals of the tasks it serves, and the nearest deadline, all in
//! one select.

use std::collections::VecDeque;
use std::io::{BufReader, BufWriter, Write};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, select};

use super::protocol::{
    StreamName, ToChild, ToParent, VERSION, WireModule, WireTask, holds_frame, read_frame,
    write_frame,
};
use super::relay::{Relay, ToWorker};
use super::{ProcessOptions, WORKER_ENV, WorkerPids};
use crate::cancel::CancelToken;
use crate::error::{Error, ErrorKind};
use crate::module::Module;
use crate::mutex::{self, Mutex};
use crate::outcome::Outcome;
use crate::pool::queue::Job;
use crate::share::Holder;
use crate::status::ExitStatus;
use crate::store::{CHUNK, Chunk, Pump, Reply};
use crate::task::{Output, Stdin, Task};

/// How long a worker process may take to start and answer `Hello`.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long it may then take to load its module (from the cache, usually).
const LOAD_TIMEOUT: Duration = Duration::from_secs(120);

/// One live worker process.
struct Worker {
    process: Child,
    /// Shared with the relay, which answers the guests' sharing
    /// operations.
    to_child: ToWorker,
    /// Holds what the tasks were granted, and answers their guests.
    relay: Relay,
    /// Its frames, read by a thread of their own; disconnected once the
    /// process has closed its stdout (it exited or died).
    from_child: Receiver<std::io::Result<ToParent>>,
    pid: u32,
}

impl Worker {
    /// Sends one frame to the worker.
    fn send(&self, message: &ToChild) -> std::io::Result<()> {
        let mut to_child = self.to_child.lock();
        write_frame(&mut *to_child, message)
    }

    /// The task in wire form; a task with grants gets a lock-holder id
    /// here, and the relay holds its objects.
    fn wire(&mut self, id: u64, task: &Task) -> Result<WireTask, Ended> {
        if task.grants.is_empty() {
            return Ok(WireTask::from_task(task, None));
        }
        let holder = Holder::new();
        let wire = WireTask::from_task(task, Some(holder.id()));
        self.relay
            .start_task(id, task.grants.clone(), holder)
            .map_err(|e| lost(format!("cannot start a relay thread: {e}")))?;
        Ok(wire)
    }

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

/// What [`Supervisor::next_job`] brought.
pub(super) enum Next {
    Job(Job),
    /// The queue is closed, and empty.
    Closed,
    /// Nothing came in the time given: the worker may stop.
    Idle,
}

/// Why `serve` stopped before every task was answered.
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
/// sleeping (spinning, then yielding, as crossbeam's own `recv` does before
/// it sleeps); `None` if none came.
fn soon<T>(channel: &Receiver<T>) -> Option<Result<T, crossbeam_channel::RecvError>> {
    for step in 0..10u32 {
        match channel.try_recv() {
            Ok(message) => return Some(Ok(message)),
            Err(crossbeam_channel::TryRecvError::Disconnected) => {
                return Some(Err(crossbeam_channel::RecvError));
            }
            Err(crossbeam_channel::TryRecvError::Empty) => {}
        }
        if step < 6 {
            for _ in 0..1 << step {
                std::hint::spin_loop();
            }
        } else {
            std::thread::yield_now();
        }
    }
    None
}

/// How many of `times` fall within the last `window` (older ones are
/// dropped).
fn within_window(times: &mut VecDeque<Instant>, window: Duration) -> usize {
    let now = Instant::now();
    while times.front().is_some_and(|t| now - *t > window) {
        times.pop_front();
    }
    times.len()
}

/// A task sent to the worker and not yet answered.
struct InFlight {
    index: usize,
    id: u64,
    cancel_sent: bool,
}

/// How far a relayed stdin may run ahead of what the guest has taken.
const STDIN_WINDOW: u64 = 1 << 20;

/// The relay of the running task's streamed stdin: chunks from its source
/// (the host's stdin, or the task's reader) go to the worker as `Input`
/// frames, no more than [`STDIN_WINDOW`] ahead of what the guest has taken,
/// and the source's end as `InputEnd`. Nothing is read before the guest
/// could want it.
struct StdinRelay {
    /// `None` when the task's stdin is not streamed, or has ended.
    source: Option<Arc<Pump>>,
    /// The channel of the source's chunks (made only with a source: most
    /// tasks have none, and the relay is made for every task).
    channel: Option<(Sender<Chunk>, Receiver<Chunk>)>,
    asked: bool,
    ahead: u64,
}

impl StdinRelay {
    /// The relay for the task at the front, if its stdin is streamed.
    fn start(front: Option<&InFlight>, tasks: &[(&Task, &CancelToken)]) -> Result<Self, Ended> {
        let source = match front.map(|f| &tasks[f.index].0.stdin) {
            Some(Stdin::Inherit) => Some(Pump::host_stdin()),
            Some(Stdin::Reader(reader)) => Some(Pump::spawn(Arc::clone(reader))),
            _ => None,
        }
        .transpose()
        .map_err(|error| {
            Error::new(
                ErrorKind::Setup,
                format!("cannot start the thread that relays the task's stdin: {error}"),
            )
        })?;
        let channel = source.as_ref().map(|_| crossbeam_channel::bounded(1));
        Ok(StdinRelay {
            source,
            channel,
            asked: false,
            ahead: 0,
        })
    }

    /// Asks the source for the next chunk, when the window has room.
    fn ask(&mut self) {
        if let (Some(source), Some((replies, _))) = (&self.source, &self.channel)
            && !self.asked
            && self.ahead < STDIN_WINDOW
        {
            source.request(CHUNK, Reply::Sync(replies.clone()));
            self.asked = true;
        }
    }

    /// Whether a stdin is being relayed.
    fn active(&self) -> bool {
        self.source.is_some()
    }

    /// Where the source's chunks arrive (never, when there is no source).
    fn chunks(&self) -> Receiver<Chunk> {
        match (&self.source, &self.channel) {
            (Some(_), Some((_, chunks))) => chunks.clone(),
            _ => crossbeam_channel::never(),
        }
    }

    /// Sends a chunk on to the worker; the end (or a read error) ends the
    /// task's stdin.
    fn forward(
        &mut self,
        worker: &mut Worker,
        id: u64,
        chunk: Result<Chunk, crossbeam_channel::RecvError>,
    ) -> Result<(), Ended> {
        self.asked = false;
        let message = match chunk {
            Ok(Ok(bytes)) if !bytes.is_empty() => {
                self.ahead += bytes.len() as u64;
                ToChild::Input { id, bytes }
            }
            _ => {
                self.source = None;
                ToChild::InputEnd { id }
            }
        };
        worker
            .send(&message)
            .map_err(|e| gone(format!("the worker process stopped taking input ({e})")))
    }

    /// The guest took `bytes`: room for as many more.
    fn taken(&mut self, bytes: u64) {
        self.ahead = self.ahead.saturating_sub(bytes);
    }
}

/// Sends `Cancel` for each task in flight whose token was cancelled since
/// the last look; whether the running one (the front) was among them.
fn send_cancels(
    worker: &Worker,
    in_flight: &mut VecDeque<InFlight>,
    tasks: &[(&Task, &CancelToken)],
) -> bool {
    let front_id = in_flight.front().map(|task| task.id);
    let mut front_cancelled = false;
    for task in in_flight.iter_mut() {
        if !task.cancel_sent && tasks[task.index].1.is_cancelled() {
            task.cancel_sent = true;
            let _ = worker.send(&ToChild::Cancel { id: task.id });
            front_cancelled |= Some(task.id) == front_id;
        }
    }
    front_cancelled
}

/// Writes a relayed stream's bytes where the task's output goes. A host
/// stream that fails (a closed pipe, a peer gone) drops them, and the
/// worker is told: the guest's later writes fail, as in a thread worker.
fn write_output(output: &Output, stream: StreamName, bytes: &[u8]) -> std::io::Result<()> {
    match (output, stream) {
        (Output::Inherit, StreamName::Stdout) => {
            let mut out = std::io::stdout().lock();
            out.write_all(bytes).and_then(|()| out.flush())
        }
        (Output::Inherit, StreamName::Stderr) => std::io::stderr().write_all(bytes),
        (Output::Writer(writer), _) => mutex::lock(writer).write_all(bytes),
        (Output::Capture | Output::Discard, _) => Ok(()),
    }
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
    /// When recent processes failed to start at all (not a worker, a module
    /// that does not load): while too many did, none is started.
    failed_starts: VecDeque<Instant>,
    /// Why the last one died.
    last_death: String,
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
            failed_starts: VecDeque::new(),
            last_death: String::new(),
            next_id: 0,
        }
    }

    /// Starts the worker process now rather than at the first task.
    /// A worker that cannot start counts as a death: a program that is no
    /// worker trips the breaker instead of being started in a loop.
    pub(super) fn warm_up(&mut self) {
        if self.worker.is_none() && !self.starts_failing() {
            match self.spawn() {
                Ok(worker) => self.set_worker(Some(worker)),
                Err(error) => {
                    self.record_failed_start(error.to_string());
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
        let got =
            |job: Result<Job, crossbeam_channel::RecvError>| job.map_or(Next::Closed, Next::Job);
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
                    self.record_death("the worker process died while idle".into());
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

    /// Records a death under a task (or while idle) and why; whether the
    /// crash-loop breaker has tripped: more deaths within the window than
    /// the options allow. The task at hand then fails for good (it may be
    /// poison); later tasks still get a new worker.
    fn record_death(&mut self, why: String) -> bool {
        tracing::warn!(target: "wasmproc::pool", "worker process ended: {why}");
        self.deaths.push_back(Instant::now());
        self.last_death = why;
        within_window(&mut self.deaths, self.options.restart_window)
            > self.options.max_restarts as usize
    }

    /// Records a worker that could not start; whether starts now fail too
    /// often to try again (see [`starts_failing`](Self::starts_failing)).
    fn record_failed_start(&mut self, why: String) -> bool {
        self.failed_starts.push_back(Instant::now());
        self.record_death(why);
        self.starts_failing()
    }

    /// Whether more workers failed to start within the window than the
    /// options allow: then tasks fail at once and none is started until
    /// the window has passed, so a program that is no worker (or a module
    /// that does not load) costs at most `max_restarts` starts per window.
    fn starts_failing(&mut self) -> bool {
        within_window(&mut self.failed_starts, self.options.restart_window)
            > self.options.max_restarts as usize
    }

    /// The error of a task failed by the open breaker, after `cause`.
    fn poison(&self, cause: &str) -> Error {
        lost(format!(
            "{cause}; the worker process died {} times within {}: the task fails for good \
             (it may be poison to its worker)",
            self.deaths.len(),
            humantime::format_duration(self.options.restart_window)
        ))
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
            // The checks a thread worker makes first, made before sending:
            // the same status and message in both isolations, and no
            // oversized message on the pipe.
            let limits = task.limits.clone().unwrap_or_default();
            match limits.validate().and_then(|()| task.check(&limits)) {
                Ok(()) => pending.push_back(index),
                Err(error) => deliver(index, Outcome::from(error)),
            }
        }
        // Any cancellation among the tasks wakes the wait for answers.
        let (wake, woken) = crossbeam_channel::bounded(1);
        // The tasks of a batch mostly share one token (a map's): watch each
        // token once, since every watch locks the token's whole chain.
        let mut watched: Vec<&CancelToken> = Vec::new();
        for (_, token) in tasks {
            if !watched.iter().any(|seen| seen.same_as(token)) {
                watched.push(token);
            }
        }
        let _watches: Vec<_> = watched.iter().filter_map(|t| t.watch(&wake)).collect();
        let fail = |index: usize, error: Error, deliver: &mut dyn FnMut(usize, Outcome)| {
            let mut outcome = Outcome::from(error);
            outcome.duration = started.elapsed();
            deliver(index, outcome);
        };
        while let Some(&front) = pending.front() {
            if self.starts_failing() {
                pending.pop_front();
                let error = lost(format!(
                    "{}; {} worker processes failed to start within {}: the task fails without \
                     another try",
                    self.last_death,
                    self.failed_starts.len(),
                    humantime::format_duration(self.options.restart_window)
                ));
                fail(front, error, &mut deliver);
                continue;
            }
            let error = match self.serve(tasks, &mut pending, &woken, &mut deliver) {
                Ok(()) => return,
                Err(Ended::Retired) => {
                    // The worker left on purpose after its task: the tasks
                    // behind it never started and go to a new one.
                    self.set_worker(None);
                    continue;
                }
                Err(Ended::NoStart(error)) => {
                    self.record_failed_start(error.to_string());
                    let Some(&index) = pending.front() else {
                        return;
                    };
                    if attempts[index] < self.options.retries && !self.starts_failing() {
                        attempts[index] += 1;
                    } else {
                        pending.pop_front();
                        fail(index, error, &mut deliver);
                    }
                    continue;
                }
                Err(Ended::Lost(error)) => error,
            };
            self.set_worker(None);
            let open = self.record_death(error.to_string());
            let Some(&index) = pending.front() else {
                return;
            };
            let error = if open {
                self.poison(&self.last_death)
            } else if attempts[index] < self.options.retries && tasks[index].0.can_rerun() {
                attempts[index] += 1;
                tracing::info!(
                    target: "wasmproc::pool",
                    "retrying a task on a new worker process (attempt {}): {}",
                    attempts[index] + 1,
                    self.last_death
                );
                continue;
            } else {
                error
            };
            pending.pop_front();
            fail(index, error, &mut deliver);
            // Keep the pool at its size: the next task finds a worker ready.
            self.warm_up();
        }
    }

    /// Sends every pending task to the worker and collects answers until
    /// all are in, or the worker is lost or retires (the unanswered stay
    /// pending). Streams of the running task are relayed meanwhile.
    fn serve(
        &mut self,
        tasks: &[(&Task, &CancelToken)],
        pending: &mut VecDeque<usize>,
        woken: &Receiver<()>,
        deliver: &mut impl FnMut(usize, Outcome),
    ) -> Result<(), Ended> {
        // A worker that died while idle is replaced before tasks are handed
        // over: they never saw it, so it costs them no attempt.
        if self.worker.as_ref().is_some_and(|w| !w.idle_and_alive()) {
            self.set_worker(None);
        }
        if self.worker.is_none() {
            let worker = self.spawn().map_err(Ended::NoStart)?;
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
        let mut in_flight: VecDeque<InFlight> = VecDeque::new();
        for &index in pending.iter() {
            self.next_id += 1;
            let id = self.next_id;
            let task = worker.wire(id, tasks[index].0)?;
            worker
                .send(&ToChild::Run { id, task })
                .map_err(|e| lost(format!("the worker process stopped taking tasks ({e})")))?;
            in_flight.push_back(InFlight {
                index,
                id,
                cancel_sent: false,
            });
        }

        // The worker enforces each task's own limits; the supervisor steps
        // in only when it fails to answer in time. The task at the front is
        // the one running: its clock starts when the one before it ends.
        let grace = self.options.grace;
        let limit = |index: usize| tasks[index].0.limits.as_ref().and_then(|l| l.get_timeout());
        let mut front_since = Instant::now();
        let mut cancel_by: Option<Instant> = None;
        let mut relay = StdinRelay::start(in_flight.front(), tasks)?;
        while let Some(front) = in_flight.front() {
            let (front_index, front_id) = (front.index, front.id);
            if send_cancels(worker, &mut in_flight, tasks) {
                cancel_by = Some(Instant::now() + grace);
            }
            relay.ask();
            let deadline = [
                limit(front_index).and_then(|t| front_since.checked_add(t + grace)),
                cancel_by,
            ]
            .into_iter()
            .flatten()
            .min();
            let timer = match deadline {
                Some(deadline) => crossbeam_channel::at(deadline),
                None => crossbeam_channel::never(),
            };
            let stdin_chunks = relay.chunks();
            // The next frame usually follows within microseconds: wait for
            // it briefly before sleeping in the select (which, unlike a plain
            // receive, sleeps at once, and a wake-up costs more).
            let overdue = || {
                gone(format!(
                    "the worker process did not answer within the task's limit plus {} of \
                     grace, and was killed",
                    humantime::format_duration(grace)
                ))
            };
            // Past the deadline, a frame that came while this thread was
            // blocked (writing a task's output to a slow reader, say) still
            // counts: the worker answered in time, the pool was late.
            let quick = if deadline.is_some_and(|d| Instant::now() >= d) {
                match worker.from_child.try_recv() {
                    Ok(frame) => Some(Ok(frame)),
                    Err(_) => return Err(overdue()),
                }
            } else if relay.active() {
                None
            } else {
                soon(&worker.from_child)
            };
            let frame = match quick {
                Some(frame) => frame,
                None => select! {
                    recv(worker.from_child) -> frame => frame,
                    recv(stdin_chunks) -> chunk => {
                        relay.forward(worker, front_id, chunk)?;
                        continue;
                    }
                    // A task was cancelled: the loop's top sends the `Cancel`.
                    recv(woken) -> _ => continue,
                    // Woken at the deadline: the loop's top takes a frame
                    // that came at the same time, or gives the worker up.
                    recv(timer) -> _ => continue,
                },
            };
            match frame {
                Ok(Ok(ToParent::Done {
                    id,
                    outcome,
                    retire,
                    taken,
                })) if id == front_id => {
                    worker.relay.done(id, taken);
                    in_flight.pop_front();
                    pending.pop_front();
                    deliver(front_index, outcome);
                    if retire {
                        return Err(Ended::Retired);
                    }
                    front_since = Instant::now();
                    cancel_by = in_flight
                        .front()
                        .filter(|task| task.cancel_sent)
                        .map(|_| front_since + grace);
                    relay = StdinRelay::start(in_flight.front(), tasks)?;
                }
                Ok(Ok(ToParent::Output { id, stream, bytes })) if id == front_id => {
                    let task = tasks[front_index].0;
                    let output = match stream {
                        StreamName::Stdout => &task.stdout,
                        StreamName::Stderr => &task.stderr,
                    };
                    let written = write_output(output, stream, &bytes);
                    // A cancel that came while the write was blocked goes
                    // first: the guest must see it before the credits (or
                    // the broken stream) that end its wait.
                    if send_cancels(worker, &mut in_flight, tasks) {
                        cancel_by = Some(Instant::now() + grace);
                    }
                    // Written out (or failed): the worker may send as many
                    // more. Until then a guest whose reader does not read
                    // waits in its worker, and nothing piles up here.
                    let taken = ToChild::OutputTaken {
                        id,
                        stream,
                        bytes: bytes.len() as u64,
                        broken: written.is_err(),
                    };
                    // A worker that cannot take it has ended: after its
                    // task timed out in that wait, it retires once its
                    // `Done` is sent. What it sent before it went is still
                    // to be read, and the read side says how it ended.
                    let _ = worker.send(&taken);
                }
                Ok(Ok(ToParent::InputTaken { id, bytes })) if id == front_id => {
                    relay.taken(bytes);
                }
                Ok(Ok(_)) => return Err(gone("the worker process answered out of turn")),
                Ok(Err(error)) => {
                    return Err(gone(format!(
                        "the worker process sent a malformed frame ({error})"
                    )));
                }
                Err(_) => {
                    let status = worker
                        .process
                        .wait()
                        .map(|s| s.to_string())
                        .unwrap_or_default();
                    return Err(gone(format!(
                        "the worker process died under the task ({status})"
                    )));
                }
            }
        }
        Ok(())
    }

    fn spawn(&self) -> Result<Worker, Error> {
        let executable = self.options.worker_executable()?;
        // One spawn at a time: on Windows a child inherits every inheritable
        // handle that exists while it is created, so two workers started at
        // once could each hold the other's pipe open, and neither would see
        // its pool go away.
        static SPAWNING: Mutex<()> = Mutex::new(());
        let spawning = SPAWNING.lock();
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
        tracing::debug!(target: "wasmproc::pool", "worker process {} started", process.id());
        let stdin = process.stdin.take().expect("piped");
        let stdout = process.stdout.take().expect("piped");
        let (frames, from_child) = crossbeam_channel::unbounded();
        let to_child = Arc::new(Mutex::new(BufWriter::new(stdin)));
        let (relay, inlet) = Relay::new(Arc::clone(&to_child));
        std::thread::Builder::new()
            .name("wasmproc-supervisor-reader".into())
            .spawn(move || {
                let mut stdout = BufReader::new(stdout);
                loop {
                    // Answers written on this thread go out before it may
                    // wait for the worker (which may wait for them).
                    if !holds_frame(stdout.buffer()) {
                        inlet.flush();
                    }
                    match read_frame::<ToParent>(&mut stdout) {
                        // Straight to the relay: a guest's operation is
                        // answered without a trip through the supervisor.
                        Ok(Some(ToParent::Share { id, seq, taken, op })) => {
                            inlet.op(id, seq, taken, op)
                        }
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
        let worker = Worker {
            process,
            to_child,
            relay,
            from_child,
            pid,
        };
        let hello = ToChild::Hello {
            version: VERSION,
            module_name: self.module.name().to_owned(),
            module: WireModule::of(&self.module).map_err(|error| lost(error.into_message()))?,
            settings: self.module.runtime().settings().clone(),
        };
        let not_a_worker = || {
            lost(format!(
                "`{}` did not start as a wasmproc worker: it must be the wasmproc binary, or a \
                 program that calls wasmproc::process::run_worker_if_requested() first thing in \
                 main (see ProcessOptions::executable)",
                executable.display()
            ))
        };
        // A program that is no worker may be gone before it reads `Hello`.
        if worker.send(&hello).is_err() {
            return Err(not_a_worker());
        }
        // A worker answers `Hello` at once; a program that is no worker
        // (it forgot the hook, or is another program) never does.
        match worker.from_child.recv_timeout(HANDSHAKE_TIMEOUT) {
            Ok(Ok(ToParent::Started { version, .. })) if version == VERSION => {}
            Ok(Ok(ToParent::Refused { message })) => {
                return Err(lost(format!("the worker process refused: {message}")));
            }
            _ => return Err(not_a_worker()),
        }
        match worker.from_child.recv_timeout(LOAD_TIMEOUT) {
            Ok(Ok(ToParent::Ready)) => Ok(worker),
            Ok(Ok(ToParent::Refused { message })) => {
                Err(lost(format!("the worker process refused: {message}")))
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => Err(lost(format!(
                "the worker process did not load the module within {}",
                humantime::format_duration(LOAD_TIMEOUT)
            ))),
            _ => Err(lost("the worker process died while loading the module")),
        }
    }
}
