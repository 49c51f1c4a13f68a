//! The submitting side: [`Cluster`] uploads modules and runs tasks on
//! whatever worker hosts are pulling, with the pool's API shapes.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError};
use serde::Serialize;
use tokio::sync::mpsc;
use wasmproc::{Error, ErrorKind, Limits, Outcome, Stdin, Task};

use crate::job::{self, Command, JobModule};
use crate::link::{Link, NatsOptions};
use crate::names;
use crate::publish::message_budget;
use crate::wire::{Blob, WireTask};
use crate::worker::hex_sha256;

/// How many tasks of one job may be out (sent, no outcome yet) at once.
const WINDOW: u64 = 65_536;
/// How many tasks the lazily pulled forms hand over at once.
const HAND_OVER: usize = 256;

/// A client of a wasmproc cluster: submits tasks to the worker hosts
/// pulling from the same NATS server, and reads back one outcome per task.
///
/// The same shapes as [`wasmproc::Pool`]: `map` (input order),
/// `map_unordered`, `map_tasks`, `map_stream` and `submit`. Tasks carry
/// their arguments, argv, stdin bytes, capabilities and limits; the host
/// decides which capabilities it grants and caps the limits
/// ([`Policy`](crate::Policy)).
///
/// Every task ends in exactly one outcome, as on a local pool: a task run
/// twice (its host died after running it) is reported once, a task whose
/// hosts keep dying ends `WorkerLost`, and if NATS stays unreachable
/// (two minutes) the unfinished tasks end `WorkerLost` with the reason.
///
/// The API blocks; call it from threads, not from inside an async runtime.
pub struct Cluster {
    tokio: Arc<tokio::runtime::Runtime>,
    link: Link,
    listener: Listener,
}

/// Something a cluster job noticed that whoever waits on it may want to
/// know ([`Cluster::on_event`]).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ClusterEvent {
    /// A worker host that holds tasks of a job stopped answering: it has
    /// said nothing about them for two of the intervals at which a working
    /// host speaks up (two thirds of the ack wait). It probably died;
    /// JetStream gives its tasks to another host when the ack wait runs
    /// out. Said once per host that stops.
    HostSilent {
        /// The job's tasks it holds without an outcome.
        tasks: u64,
        /// When the last of them goes back to the queue, from now.
        redelivery_in: Duration,
    },
}

type OnEvent = Arc<dyn Fn(&ClusterEvent) + Send + Sync>;

/// Where a cluster's jobs send their [`ClusterEvent`]s.
#[derive(Clone, Default)]
pub(crate) struct Listener(Arc<Mutex<Option<OnEvent>>>);

impl Listener {
    pub(crate) fn emit(&self, event: &ClusterEvent) {
        let listener = self.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(listener) = listener {
            listener(event);
        }
    }
}

/// The worker hosts' activity ([`Cluster::hosts`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HostsSeen {
    /// Free worker places asking for a batch now (each host has one per
    /// free worker).
    pub pulling: usize,
    /// Batches taken and not yet acknowledged: running.
    pub working: usize,
    /// Batches waiting for a host.
    pub queued: u64,
}

impl HostsSeen {
    /// Whether no host seems to be there: none asks for work, none works.
    pub fn none(&self) -> bool {
        self.pulling == 0 && self.working == 0
    }
}

/// A module in the cluster's module store, ready to run.
#[derive(Debug, Clone)]
pub struct RemoteModule {
    digest: String,
    name: String,
    limits: Option<Limits>,
}

impl RemoteModule {
    /// The module's SHA-256, hex: its name in the store.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// The module's file name, for messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The limits of tasks that set none of their own (still capped by each
    /// host).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = Some(limits);
        self
    }
}

impl Cluster {
    /// Connects to the NATS server of `options`.
    pub fn connect(options: NatsOptions) -> Result<Cluster, Error> {
        let tokio = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("wasmproc-nats")
            .enable_all()
            .build()
            .map_err(|error| {
                crate::error::cluster_error(format!(
                    "cannot start the NATS client's threads: {error}"
                ))
            })?;
        let link = tokio.block_on(Link::connect(&options))?;
        Ok(Cluster {
            tokio: Arc::new(tokio),
            link,
            listener: Listener::default(),
        })
    }

    /// Calls `f` for each [`ClusterEvent`] of this cluster's jobs, those
    /// running now included (in place of an earlier `f`). `f` runs on the
    /// cluster's NATS threads: it should be quick.
    pub fn on_event(&self, f: impl Fn(&ClusterEvent) + Send + Sync + 'static) {
        *self.listener.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(f));
    }

    /// What the worker hosts are doing now, as JetStream sees it: for
    /// telling a user who waits that no host is there.
    pub fn hosts(&self) -> Result<HostsSeen, Error> {
        self.tokio.block_on(async {
            match self.link.tasks.consumer_info(names::WORKERS).await {
                Ok(info) => Ok(HostsSeen {
                    pulling: info.num_waiting,
                    working: info.num_ack_pending,
                    queued: info.num_pending,
                }),
                // No host has ever joined.
                Err(error) if error.to_string().contains("not found") => Ok(HostsSeen::default()),
                Err(error) => Err(crate::error::nats_error(
                    "ask about the worker hosts",
                    error,
                )),
            }
        })
    }

    /// Puts a module in the module store (once: it is named by its
    /// SHA-256).
    pub fn upload(&self, name: &str, bytes: &[u8]) -> Result<RemoteModule, Error> {
        let digest = hex_sha256(bytes);
        self.tokio.block_on(async {
            if self.link.modules.info(&digest).await.is_err() {
                Link::write_object(&self.link.modules, &digest, bytes).await?;
            }
            Ok::<_, Error>(())
        })?;
        Ok(RemoteModule {
            digest,
            name: name.to_owned(),
            limits: None,
        })
    }

    /// Reads a module file and uploads it.
    pub fn upload_file(&self, path: impl AsRef<Path>) -> Result<RemoteModule, Error> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|error| {
            let kind = match error.kind() {
                std::io::ErrorKind::NotFound => ErrorKind::NotFound,
                _ => ErrorKind::CannotRun,
            };
            Error::new(
                kind,
                format!("cannot read the module `{}`: {error}", path.display()),
            )
        })?;
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |name| name.to_string_lossy().into_owned(),
        );
        self.upload(&name, &bytes)
    }

    /// Runs `task` once per argument, somewhere in the cluster; outcomes in
    /// input order.
    pub fn map<'c, A, I>(
        &'c self,
        module: &RemoteModule,
        task: &str,
        args: I,
    ) -> ClusterResults<'c, impl Iterator<Item = Task> + use<A, I>>
    where
        A: Serialize,
        I: IntoIterator<Item = A>,
    {
        self.map_tasks(module, typed(task, args))
    }

    /// As [`map`](Self::map), outcomes as they end, with their input index.
    pub fn map_unordered<'c, A, I>(
        &'c self,
        module: &RemoteModule,
        task: &str,
        args: I,
    ) -> ClusterUnordered<'c, impl Iterator<Item = Task> + use<A, I>>
    where
        A: Serialize,
        I: IntoIterator<Item = A>,
    {
        self.map_tasks_unordered(module, typed(task, args))
    }

    /// Runs each task somewhere in the cluster; outcomes in input order.
    /// The tasks are pulled as the window has room.
    pub fn map_tasks<I: IntoIterator<Item = Task>>(
        &self,
        module: &RemoteModule,
        tasks: I,
    ) -> ClusterResults<'_, I::IntoIter> {
        ClusterResults {
            inner: self.start(module, Source::Pulled(tasks.into_iter())),
            next: 0,
            early: HashMap::new(),
        }
    }

    /// As [`map_tasks`](Self::map_tasks), outcomes as they end.
    pub fn map_tasks_unordered<I: IntoIterator<Item = Task>>(
        &self,
        module: &RemoteModule,
        tasks: I,
    ) -> ClusterUnordered<'_, I::IntoIter> {
        ClusterUnordered {
            inner: self.start(module, Source::Pulled(tasks.into_iter())),
            ready: Vec::new(),
        }
    }

    /// A map fed from elsewhere: tasks sent with the [`ClusterSender`]
    /// (from any thread) run in the order sent; the outcomes end once the
    /// sender is dropped and every task has ended.
    pub fn map_stream(&self, module: &RemoteModule) -> (ClusterSender, ClusterResults<'_, Sent>) {
        let inner = self.start(module, Source::Sent);
        let sender = inner.sender();
        (
            sender,
            ClusterResults {
                inner,
                next: 0,
                early: HashMap::new(),
            },
        )
    }

    /// As [`map_stream`](Self::map_stream), outcomes as they end.
    pub fn map_stream_unordered(
        &self,
        module: &RemoteModule,
    ) -> (ClusterSender, ClusterUnordered<'_, Sent>) {
        let inner = self.start(module, Source::Sent);
        let sender = inner.sender();
        (
            sender,
            ClusterUnordered {
                inner,
                ready: Vec::new(),
            },
        )
    }

    /// Runs one task somewhere in the cluster.
    pub fn submit(&self, module: &RemoteModule, task: Task) -> ClusterHandle<'_> {
        let mut results = self.map_tasks(module, [task]);
        // Sent now, not when first waited for.
        results.inner.top_up();
        ClusterHandle {
            results: Mutex::new(results),
            outcome: std::sync::OnceLock::new(),
        }
    }

    fn start<I>(&self, module: &RemoteModule, source: Source<I>) -> Inner<'_, I> {
        let id = names::new_job_id();
        let (commands, receiving) = mpsc::unbounded_channel();
        let (deliver, outcomes) = crossbeam_channel::unbounded();
        let job_module = JobModule {
            digest: module.digest.clone(),
            name: module.name.clone(),
        };
        self.tokio.spawn(job::drive(
            self.link.clone(),
            id,
            job_module,
            receiving,
            deliver,
            self.listener.clone(),
        ));
        Inner {
            _cluster: self,
            source,
            shared: Arc::new(Shared {
                commands,
                window: Window::default(),
                limits: module.limits.clone(),
                budget: message_budget(&self.link),
            }),
            outcomes,
            sent: 0,
            finished: false,
        }
    }
}

fn typed<A: Serialize, I: IntoIterator<Item = A>>(
    task: &str,
    args: I,
) -> impl Iterator<Item = Task> + use<A, I> {
    let task = task.to_owned();
    args.into_iter().map(move |arg| {
        Task::call(&task, &arg).unwrap_or_else(|error| Task::rejected(error.to_string()))
    })
}

/// Where a job's tasks come from.
enum Source<I> {
    /// Pulled from an iterator by the results iterator, as room allows.
    Pulled(I),
    /// Sent by a [`ClusterSender`].
    Sent,
}

/// The source of a [`Cluster::map_stream`]: tasks come from its
/// [`ClusterSender`].
pub struct Sent(());

impl Iterator for Sent {
    type Item = Task;
    fn next(&mut self) -> Option<Task> {
        None
    }
}

/// How many tasks are out; senders wait while the window is full.
#[derive(Default)]
struct Window {
    out: Mutex<u64>,
    room: Condvar,
}

impl Window {
    fn take(&self, count: u64) {
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        while *out >= WINDOW {
            out = self.room.wait(out).unwrap_or_else(|e| e.into_inner());
        }
        *out += count;
    }

    fn give_back(&self, count: u64) {
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        *out = out.saturating_sub(count);
        self.room.notify_all();
    }

    fn out(&self) -> u64 {
        *self.out.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What a job's senders and results share.
struct Shared {
    commands: mpsc::UnboundedSender<Command>,
    window: Window,
    limits: Option<Limits>,
    budget: usize,
}

/// Numbers tasks as they are sent.
struct Numbering {
    next: Mutex<u64>,
}

impl Shared {
    /// Sends `tasks`, numbered from `first`.
    fn send(&self, first: u64, tasks: Vec<Task>) -> bool {
        let count = tasks.len() as u64;
        let wire: Vec<WireTask> = tasks
            .into_iter()
            .zip(first..)
            .map(|(task, index)| self.to_wire(index, task))
            .collect();
        self.window.take(count);
        self.commands.send(Command::Tasks(wire)).is_ok()
    }

    fn to_wire(&self, index: u64, task: Task) -> WireTask {
        let stdin = match task.get_stdin() {
            Stdin::Empty => Ok(Vec::new()),
            Stdin::Bytes(bytes) if bytes.len() <= self.budget / 2 => Ok(bytes.to_vec()),
            Stdin::Bytes(bytes) => Err(format!(
                "the task's stdin ({} bytes) is larger than a cluster message takes ({} \
                 bytes): pass large data as the task's argument instead",
                bytes.len(),
                self.budget / 2
            )),
            _ => Err(
                "a task's stdin must be bytes (Stdin::Bytes) to travel to a cluster host"
                    .to_owned(),
            ),
        };
        let local_only = (task.get_shared_names().next().is_some() || task.has_pipe()).then(|| {
            "queues, pipes and shared regions do not reach other hosts: run tasks that use \
             them on a local pool"
                .to_owned()
        });
        let rejected = task
            .get_rejected()
            .map(str::to_owned)
            .or(local_only)
            .or_else(|| stdin.as_ref().err().cloned());
        WireTask {
            index,
            entry: task.entry().clone(),
            input: Blob::Inline(task.get_input().to_vec()),
            argv: task.get_args().to_vec(),
            stdin: stdin.unwrap_or_default(),
            capabilities: task.get_capabilities().clone(),
            limits: task.get_limits().cloned().or_else(|| self.limits.clone()),
            rejected,
        }
    }
}

/// Sends tasks to a [`Cluster::map_stream`]; dropping it says no more
/// will come.
pub struct ClusterSender {
    shared: Arc<Shared>,
    numbering: Arc<Numbering>,
}

impl ClusterSender {
    /// Sends one task; waits while the job has its fill of tasks out.
    pub fn send(&self, task: Task) -> Result<(), Error> {
        self.send_all(vec![task])
    }

    /// Sends tasks, in order.
    pub fn send_all(&self, tasks: Vec<Task>) -> Result<(), Error> {
        let first = {
            let mut next = self
                .numbering
                .next
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let first = *next;
            *next += tasks.len() as u64;
            // Sent under the lock, so that indices reach the job in order.
            if !self.shared.send(first, tasks) {
                return Err(Error::new(
                    ErrorKind::PoolClosed,
                    "the cluster job has ended",
                ));
            }
            first
        };
        let _ = first;
        Ok(())
    }
}

impl Drop for ClusterSender {
    fn drop(&mut self) {
        let _ = self.shared.commands.send(Command::Close);
    }
}

/// A job's submitting side, shared by its ordered and unordered results.
struct Inner<'c, I> {
    _cluster: &'c Cluster,
    source: Source<I>,
    shared: Arc<Shared>,
    outcomes: Receiver<Vec<(u64, Outcome)>>,
    /// Tasks sent so far (pulled sources).
    sent: u64,
    finished: bool,
}

impl<I: Iterator<Item = Task>> Inner<'_, I> {
    fn sender(&self) -> ClusterSender {
        ClusterSender {
            shared: Arc::clone(&self.shared),
            numbering: Arc::new(Numbering {
                next: Mutex::new(0),
            }),
        }
    }

    /// Hands over tasks from a pulled source while there is room.
    fn top_up(&mut self) {
        let Source::Pulled(tasks) = &mut self.source else {
            return;
        };
        if self.finished {
            return;
        }
        while self.shared.window.out() < WINDOW {
            let batch: Vec<Task> = tasks.by_ref().take(HAND_OVER).collect();
            let count = batch.len() as u64;
            if count > 0 {
                self.shared.send(self.sent, batch);
                self.sent += count;
            }
            if count < HAND_OVER as u64 {
                self.finished = true;
                let _ = self.shared.commands.send(Command::Close);
                return;
            }
        }
    }

    /// The next outcomes, waiting at most `timeout`; `None` when the job
    /// is over (or the wait ran out: `Some(empty)`).
    fn receive(&mut self, timeout: Option<Duration>) -> Option<Vec<(u64, Outcome)>> {
        self.top_up();
        let received = match timeout {
            None => self.outcomes.recv().ok(),
            Some(timeout) => match self.outcomes.recv_timeout(timeout) {
                Ok(outcomes) => Some(outcomes),
                Err(RecvTimeoutError::Timeout) => return Some(Vec::new()),
                Err(RecvTimeoutError::Disconnected) => None,
            },
        }?;
        self.shared.window.give_back(received.len() as u64);
        Some(received)
    }

    fn cancel(&self) {
        let _ = self.shared.commands.send(Command::Cancel);
    }
}

impl<I> Drop for Inner<'_, I> {
    fn drop(&mut self) {
        // Withdraws the job's unstarted tasks if it is not over; after the
        // end, the job is gone and this goes nowhere.
        let _ = self.shared.commands.send(Command::Cancel);
    }
}

/// A cluster map's outcomes, in input order.
pub struct ClusterResults<'c, I> {
    inner: Inner<'c, I>,
    next: u64,
    early: HashMap<u64, Outcome>,
}

impl<I: Iterator<Item = Task>> ClusterResults<'_, I> {
    /// Ends the job: tasks not yet started are withdrawn, and every
    /// unfinished task ends `Cancelled` (a task already running on a host
    /// runs to its end there).
    pub fn cancel(&self) {
        self.inner.cancel();
    }

    /// A handle that cancels the job from another thread (a Ctrl-C
    /// handler).
    pub fn canceller(&self) -> JobCanceller {
        JobCanceller(self.inner.shared.commands.clone())
    }
}

/// Cancels a cluster job from anywhere; see [`ClusterResults::cancel`].
#[derive(Clone)]
pub struct JobCanceller(mpsc::UnboundedSender<Command>);

impl JobCanceller {
    /// As [`ClusterResults::cancel`].
    pub fn cancel(&self) {
        let _ = self.0.send(Command::Cancel);
    }
}

impl<I: Iterator<Item = Task>> Iterator for ClusterResults<'_, I> {
    type Item = Outcome;

    fn next(&mut self) -> Option<Outcome> {
        loop {
            if let Some(outcome) = self.early.remove(&self.next) {
                self.next += 1;
                return Some(outcome);
            }
            for (index, outcome) in self.inner.receive(None)? {
                self.early.insert(index, outcome);
            }
        }
    }
}

/// A cluster map's outcomes as they end, each with its input index.
pub struct ClusterUnordered<'c, I> {
    inner: Inner<'c, I>,
    ready: Vec<(u64, Outcome)>,
}

impl<I: Iterator<Item = Task>> ClusterUnordered<'_, I> {
    /// As [`ClusterResults::cancel`].
    pub fn cancel(&self) {
        self.inner.cancel();
    }

    /// As [`ClusterResults::canceller`].
    pub fn canceller(&self) -> JobCanceller {
        JobCanceller(self.inner.shared.commands.clone())
    }
}

impl<I: Iterator<Item = Task>> Iterator for ClusterUnordered<'_, I> {
    type Item = (usize, Outcome);

    fn next(&mut self) -> Option<(usize, Outcome)> {
        loop {
            if let Some((index, outcome)) = self.ready.pop() {
                return Some((index as usize, outcome));
            }
            let mut received = self.inner.receive(None)?;
            received.reverse();
            self.ready = received;
        }
    }
}

/// One task submitted to a cluster: wait for it, or cancel it.
pub struct ClusterHandle<'c> {
    results: Mutex<ClusterResults<'c, std::array::IntoIter<Task, 1>>>,
    outcome: std::sync::OnceLock<Outcome>,
}

impl ClusterHandle<'_> {
    /// Waits for the task's outcome.
    pub fn wait(&self) -> &Outcome {
        if let Some(outcome) = self.outcome.get() {
            return outcome;
        }
        let mut results = self.results.lock().unwrap_or_else(|e| e.into_inner());
        let outcome = results.next().unwrap_or_else(|| {
            Outcome::not_run(
                wasmproc::ExitStatus::WorkerLost,
                "the cluster job ended without an outcome",
            )
        });
        self.outcome.get_or_init(|| outcome)
    }

    /// Waits at most `timeout` for the outcome; `None` if the task has not
    /// ended by then (it goes on).
    pub fn wait_timeout(&self, timeout: Duration) -> Option<&Outcome> {
        if let Some(outcome) = self.outcome.get() {
            return Some(outcome);
        }
        let mut results = self.results.lock().unwrap_or_else(|e| e.into_inner());
        match results.inner.receive(Some(timeout)) {
            Some(outcomes) if outcomes.is_empty() => None,
            Some(mut outcomes) => Some(self.outcome.get_or_init(|| outcomes.remove(0).1)),
            None => Some(self.outcome.get_or_init(|| {
                Outcome::not_run(
                    wasmproc::ExitStatus::WorkerLost,
                    "the cluster job ended without an outcome",
                )
            })),
        }
    }

    /// Cancels the task: withdrawn if no host has started it; its outcome
    /// is then `Cancelled`.
    pub fn cancel(&self) {
        let results = self.results.lock().unwrap_or_else(|e| e.into_inner());
        results.cancel();
    }
}
