//! A worker host: pulls task batches from the work queue while it has free
//! workers, runs them on local pools (one per module, fetched once and
//! verified by its SHA-256), stores the outcomes, then acknowledges.
//!
//! What keeps "nothing lost, nothing twice" true:
//! - a batch is acknowledged only after its outcomes are stored, so a host
//!   that dies leaves its batch to be redelivered after the ack wait;
//! - while a batch runs, the host says it is still working (progress acks),
//!   so a long batch is not redelivered under it;
//! - a redelivered batch is split into one message per task, so that one
//!   task that kills its hosts ("poison") is counted on its own, and after
//!   `attempts` deliveries it is reported `WorkerLost` instead of run again;
//! - outcomes carry message ids made from their batch and indices, and the
//!   submitter keeps the first outcome of each index.
//!
//! The ack wait and the number of attempts belong to the workers' consumer,
//! so they are the same for every host: a host started with a value other
//! than the one in force changes it for all, and every host follows the
//! value in force (checked every few seconds).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, AckKind, consumer::PullConsumer};
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use wasmproc::{Error, ExitStatus, Isolation, Outcome, Pool, Runtime, Task, TaskSpec};

use crate::link::{ConsumerWish, InForce, Link, NatsOptions};
use crate::names;
use crate::policy::Policy;
use crate::publish::{publish_outcomes, publish_until_stored};
use crate::wire::{self, Progress, TaskBatch, WireTask};

/// Something a worker host did that its operator may want to see.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum WorkerEvent {
    /// Connected and pulling.
    Joined {
        /// The server's URL.
        url: String,
        /// Tasks run at once.
        workers: usize,
        /// The ack wait in force, the same for every host.
        ack_wait: Duration,
        /// How many times a task may be started, the same for every host
        /// (`u32::MAX`: no limit).
        attempts: u32,
    },
    /// The ack wait in force for every host changed: this host asked for
    /// another one than it found (`here`), or another host did so while
    /// this one runs, and this one follows.
    AckWaitChanged {
        /// The ack wait before.
        from: Duration,
        /// The ack wait now.
        to: Duration,
        /// Whether this host changed it.
        here: bool,
    },
    /// The number of attempts in force for every host changed, as
    /// [`AckWaitChanged`](Self::AckWaitChanged).
    AttemptsChanged {
        /// The number before (`u32::MAX`: no limit).
        from: u32,
        /// The number now.
        to: u32,
        /// Whether this host changed it.
        here: bool,
    },
    /// JetStream refused to set the ack wait or attempts this host asked
    /// for: the values in force stay, and this host follows them.
    ChangeRefused {
        /// The ack wait asked for, if one was.
        ack_wait: Option<Duration>,
        /// The attempts asked for, if any were.
        attempts: Option<u32>,
        /// The ack wait in force.
        ack_wait_in_force: Duration,
        /// The attempts in force.
        attempts_in_force: u32,
        /// The server's answer.
        why: String,
    },
    /// A module was fetched from the module store and compiled (or read
    /// from the compiled cache).
    ModuleLoaded {
        /// The module's file name on the submitter.
        name: String,
        /// Its SHA-256, hex.
        digest: String,
        /// Its size.
        bytes: usize,
        /// Fetching, verifying and loading it.
        took: Duration,
    },
    /// A batch came back for another try (its host died or went silent):
    /// its tasks were put back one per message.
    Split {
        /// How many tasks it had.
        tasks: usize,
        /// Which delivery this was.
        delivery: i64,
    },
    /// A task was delivered more times than allowed and reported
    /// `WorkerLost` without running again.
    GaveUp {
        /// Its index in its job.
        index: u64,
        /// How many times it was delivered.
        deliveries: i64,
    },
    /// A NATS operation failed; the host goes on (and retries).
    Trouble(String),
}

type OnEvent = Arc<dyn Fn(&WorkerEvent) + Send + Sync>;

/// The shortest ack wait a cluster takes ([`WorkerHostBuilder::ack_wait`]
/// raises a shorter one to it): a host acknowledges a batch's progress
/// about that often, and less would be NATS traffic for nothing.
pub const MIN_ACK_WAIT: Duration = Duration::from_millis(300);

/// Builds a [`WorkerHost`].
pub struct WorkerHostBuilder {
    nats: NatsOptions,
    runtime: Option<Runtime>,
    workers: usize,
    isolation: Isolation,
    policy: Policy,
    ack_wait: Option<Duration>,
    attempts: Option<u32>,
    on_event: Option<OnEvent>,
}

impl WorkerHostBuilder {
    /// Runs `workers` tasks at once (default: the number of CPUs).
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = workers.max(1);
        self
    }

    /// The runtime that compiles and caches modules (default:
    /// [`Runtime::new`]).
    pub fn runtime(mut self, runtime: Runtime) -> Self {
        self.runtime = Some(runtime);
        self
    }

    /// Threads or worker processes (default: threads).
    pub fn isolation(mut self, isolation: Isolation) -> Self {
        self.isolation = isolation;
        self
    }

    /// What remote tasks may have here (default: nothing beyond the
    /// sandbox, the library's default limits).
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// How long a host may go without a word about a batch before
    /// JetStream gives it to another host. Every host speaks up every third
    /// of it while a batch runs.
    ///
    /// It is one value for the whole cluster (the workers' consumer's):
    /// when this host joins, `wait` replaces the value in force for every
    /// host, with a [`WorkerEvent::AckWaitChanged`]. By default a host
    /// takes the value in force, and the first host sets 30 s: a host
    /// started without it never undoes another's choice.
    pub fn ack_wait(mut self, wait: Duration) -> Self {
        self.ack_wait = Some(wait.max(MIN_ACK_WAIT));
        self
    }

    /// How many times a task may be started before it is given up on: a
    /// task whose hosts keep dying is reported `WorkerLost`. Like
    /// [`ack_wait`](Self::ack_wait), one value for the cluster, changed for
    /// every host by a host that asks for it; the first host sets 3 by
    /// default.
    pub fn attempts(mut self, attempts: u32) -> Self {
        self.attempts = Some(attempts.max(1));
        self
    }

    /// Calls `f` for each [`WorkerEvent`].
    pub fn on_event(mut self, f: impl Fn(&WorkerEvent) + Send + Sync + 'static) -> Self {
        self.on_event = Some(Arc::new(f));
        self
    }

    /// Connects to NATS and makes sure the cluster's streams exist.
    pub fn build(self) -> Result<WorkerHost, Error> {
        let runtime = match self.runtime {
            Some(runtime) => runtime,
            None => Runtime::new()?,
        };
        let tokio = tokio_runtime()?;
        let link = tokio.block_on(Link::connect(&self.nats))?;
        Ok(WorkerHost {
            tokio,
            link,
            url: self.nats.url().to_owned(),
            runtime,
            workers: self.workers,
            isolation: self.isolation,
            policy: Arc::new(self.policy),
            ack_wait: self.ack_wait,
            attempts: self.attempts,
            on_event: self.on_event.unwrap_or_else(|| Arc::new(|_| {})),
            stop: Arc::new(Stop::default()),
        })
    }
}

/// A host that runs a cluster's tasks: `wasmproc worker --nats URL`.
pub struct WorkerHost {
    tokio: tokio::runtime::Runtime,
    link: Link,
    url: String,
    runtime: Runtime,
    workers: usize,
    isolation: Isolation,
    policy: Arc<Policy>,
    ack_wait: Option<Duration>,
    attempts: Option<u32>,
    on_event: OnEvent,
    stop: Arc<Stop>,
}

/// Stops a running [`WorkerHost`] from another thread.
#[derive(Clone)]
pub struct StopHandle(Arc<Stop>);

impl StopHandle {
    /// Takes no more batches; the ones running finish and are stored.
    pub fn stop(&self) {
        self.0.stopped.store(true, Ordering::SeqCst);
        self.0.wake.notify_waiters();
    }
}

#[derive(Default)]
struct Stop {
    stopped: AtomicBool,
    wake: tokio::sync::Notify,
}

/// What a worker host did, when it stops.
#[derive(Debug, Clone, Default)]
pub struct WorkerSummary {
    /// Tasks run and stored.
    pub tasks: u64,
    /// Batches acknowledged.
    pub batches: u64,
}

impl WorkerHost {
    /// A host pulling from the NATS server of `nats`.
    pub fn builder(nats: NatsOptions) -> WorkerHostBuilder {
        WorkerHostBuilder {
            nats,
            runtime: None,
            workers: std::thread::available_parallelism().map_or(1, usize::from),
            isolation: Isolation::Thread,
            policy: Policy::default(),
            ack_wait: None,
            attempts: None,
            on_event: None,
        }
    }

    /// A handle that stops [`run`](Self::run).
    pub fn stopper(&self) -> StopHandle {
        StopHandle(Arc::clone(&self.stop))
    }

    /// Pulls and runs tasks until stopped.
    pub fn run(&self) -> Result<WorkerSummary, Error> {
        self.tokio.block_on(self.pull())
    }

    async fn pull(&self) -> Result<WorkerSummary, Error> {
        let wish = ConsumerWish {
            ack_wait: self.ack_wait,
            // One delivery more than the attempts: it reports `WorkerLost`.
            deliveries: self.attempts.map(|attempts| i64::from(attempts) + 1),
        };
        let workers = self.link.workers_consumer(wish).await?;
        let (before, in_force) = (workers.before, workers.in_force);
        if let Some(why) = workers.refused {
            (self.on_event)(&WorkerEvent::ChangeRefused {
                ack_wait: self.ack_wait,
                attempts: self.attempts,
                ack_wait_in_force: in_force.ack_wait,
                attempts_in_force: attempts(in_force.deliveries),
                why,
            });
        } else {
            changed(&self.on_event, before, in_force, true);
        }
        (self.on_event)(&WorkerEvent::Joined {
            url: self.url.clone(),
            workers: self.workers,
            ack_wait: in_force.ack_wait,
            attempts: attempts(in_force.deliveries),
        });
        let (settings, following) = watch::channel(in_force);
        let host = Arc::new(Host {
            link: self.link.clone(),
            id: names::new_host_id(),
            runtime: self.runtime.clone(),
            workers: self.workers,
            isolation: self.isolation.clone(),
            policy: Arc::clone(&self.policy),
            in_force: following,
            on_event: Arc::clone(&self.on_event),
            pools: tokio::sync::Mutex::new(HashMap::new()),
            tasks: AtomicU64::new(0),
            batches: AtomicU64::new(0),
        });
        let follower = tokio::spawn(follow(
            self.link.clone(),
            settings,
            Arc::clone(&self.on_event),
        ));
        let consumer = workers.consumer;
        // One puller per worker: a batch is taken only when a worker is
        // free for it, so a long task is never queued behind another here
        // while another host idles.
        let slots: Vec<_> = (0..self.workers)
            .map(|_| {
                let host = Arc::clone(&host);
                let consumer = consumer.clone();
                let stop = Arc::clone(&self.stop);
                tokio::spawn(async move { host.slot(consumer, stop).await })
            })
            .collect();
        for slot in slots {
            let _ = slot.await;
        }
        follower.abort();
        for pool in host.pools.lock().await.values().flatten() {
            pool.shutdown(wasmproc::Shutdown::Cancel);
        }
        Ok(WorkerSummary {
            tasks: host.tasks.load(Ordering::Relaxed),
            batches: host.batches.load(Ordering::Relaxed),
        })
    }
}

/// How often a host reads the ack wait and attempts in force, to follow
/// another host's change.
const FOLLOW_EVERY: Duration = Duration::from_secs(2);

/// Keeps `settings` the values in force, saying when they change.
async fn follow(link: Link, settings: watch::Sender<InForce>, on_event: OnEvent) {
    loop {
        tokio::time::sleep(FOLLOW_EVERY).await;
        // A failure here is a failure to pull too, which says so.
        let Ok(now) = link.workers_in_force().await else {
            continue;
        };
        let before = *settings.borrow();
        if now != before {
            settings.send_replace(now);
            changed(&on_event, before, now, false);
        }
    }
}

/// Says what changed from `before` to `now`.
fn changed(on_event: &OnEvent, before: InForce, now: InForce, here: bool) {
    if before.ack_wait != now.ack_wait {
        on_event(&WorkerEvent::AckWaitChanged {
            from: before.ack_wait,
            to: now.ack_wait,
            here,
        });
    }
    if before.deliveries != now.deliveries {
        on_event(&WorkerEvent::AttemptsChanged {
            from: attempts(before.deliveries),
            to: attempts(now.deliveries),
            here,
        });
    }
}

/// The attempts that a consumer's deliveries leave: one delivery fewer
/// (the last one reports `WorkerLost`); `u32::MAX` without a limit.
fn attempts(deliveries: i64) -> u32 {
    if deliveries <= 0 {
        u32::MAX
    } else {
        u32::try_from(deliveries - 1).unwrap_or(u32::MAX).max(1)
    }
}

fn tokio_runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("wasmproc-nats")
        .enable_all()
        .build()
        .map_err(|error| {
            crate::error::cluster_error(format!("cannot start the NATS client's threads: {error}"))
        })
}

/// A module's pool, or the status and reason it cannot run here.
type Loaded = Result<Arc<Pool>, (ExitStatus, String)>;

/// A running host's shared state.
struct Host {
    link: Link,
    /// Random: names this host in its progress notices.
    id: u64,
    runtime: Runtime,
    workers: usize,
    isolation: Isolation,
    policy: Arc<Policy>,
    /// The ack wait and attempts in force, followed.
    in_force: watch::Receiver<InForce>,
    on_event: OnEvent,
    /// A pool per module, by digest; `Err` remembers why a module cannot
    /// run here.
    pools: tokio::sync::Mutex<HashMap<String, Loaded>>,
    tasks: AtomicU64,
    batches: AtomicU64,
}

/// How long one pull waits for a batch before asking again.
const PULL_WAIT: Duration = Duration::from_secs(2);

impl Host {
    fn trouble(&self, what: String) {
        (self.on_event)(&WorkerEvent::Trouble(what));
    }

    /// Takes one batch at a time until stopped.
    async fn slot(&self, consumer: PullConsumer, stop: Arc<Stop>) {
        while !stop.stopped.load(Ordering::SeqCst) {
            let pulled = consumer
                .batch()
                .max_messages(1)
                .expires(PULL_WAIT)
                .messages();
            let mut batch = tokio::select! {
                pulled = pulled => match pulled {
                    Ok(batch) => batch,
                    Err(error) => {
                        self.trouble(format!("cannot pull tasks: {error}"));
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                },
                () = stop.wake.notified() => break,
            };
            let message = tokio::select! {
                message = batch.next() => message,
                () = stop.wake.notified() => break,
            };
            match message {
                Some(Ok(message)) => self.handle(message).await,
                Some(Err(error)) => {
                    self.trouble(format!("cannot pull tasks: {error}"));
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                None => {}
            }
        }
    }

    async fn handle(&self, message: jetstream::Message) {
        let (delivered, sequence) = message
            .info()
            .map_or((1, 0), |info| (info.delivered, info.stream_sequence));
        let batch: TaskBatch = match wire::decode("task", &message.payload) {
            Ok(batch) => batch,
            Err(error) => {
                // Nothing can run it, now or later.
                self.trouble(error.to_string());
                let _ = message.ack_with(AckKind::Term).await;
                return;
            }
        };
        self.say(&batch, sequence, true).await;
        let in_force = *self.in_force.borrow();
        let outcomes = if delivered > i64::from(attempts(in_force.deliveries)) {
            self.give_up(&batch, delivered, in_force)
        } else if delivered > 1 && batch.tasks.len() > 1 {
            // Put the tasks back one by one (stored before the batch is
            // acknowledged, so none is lost if this host dies now).
            (self.on_event)(&WorkerEvent::Split {
                tasks: batch.tasks.len(),
                delivery: delivered,
            });
            if self.split(&batch).await {
                self.acknowledge(&message).await;
                self.say(&batch, sequence, false).await;
            }
            return;
        } else {
            self.run(&batch, &message, sequence).await
        };
        let stored = publish_outcomes(&self.link, &batch.job, batch.number, outcomes).await;
        match stored {
            Ok(count) => {
                self.tasks.fetch_add(count, Ordering::Relaxed);
                self.batches.fetch_add(1, Ordering::Relaxed);
                self.acknowledge(&message).await;
                self.say(&batch, sequence, false).await;
            }
            // Not acknowledged: redelivered after the ack wait.
            Err(error) => self.trouble(error.to_string()),
        }
    }

    async fn acknowledge(&self, message: &jetstream::Message) {
        if let Err(error) = message.double_ack().await {
            // Redelivered, run again, and its outcomes dropped as duplicates.
            self.trouble(format!("cannot acknowledge a batch: {error}"));
        }
    }

    /// Tells the batch's submitter that this host holds the message
    /// `sequence` (when it takes it and while it runs it), or let go of it
    /// (its outcomes stored, or its tasks put back one by one). Fire and
    /// forget: a lost word only makes the submitter's notice of a silent
    /// host less precise.
    async fn say(&self, batch: &TaskBatch, sequence: u64, holding: bool) {
        let progress = Progress {
            host: self.id,
            message: sequence,
            tasks: wire::index_ranges(batch.tasks.iter().map(|task| task.index)),
            ack_wait: self.in_force.borrow().ack_wait,
            holding,
        };
        let subject = names::progress_subject(&batch.job);
        let _ = self
            .link
            .client
            .publish(subject, wire::encode(&progress).into())
            .await;
    }

    fn give_up(&self, batch: &TaskBatch, delivered: i64, in_force: InForce) -> Vec<(u64, Outcome)> {
        batch
            .tasks
            .iter()
            .map(|task| {
                (self.on_event)(&WorkerEvent::GaveUp {
                    index: task.index,
                    deliveries: delivered,
                });
                let message = format!(
                    "the task was started {} times and its worker host died or went silent \
                     each time (ack wait {:?}); it was not started again",
                    attempts(in_force.deliveries),
                    in_force.ack_wait
                );
                (
                    task.index,
                    Outcome::not_run(ExitStatus::WorkerLost, message),
                )
            })
            .collect()
    }

    /// Republishes each task of `batch` as a batch of its own.
    async fn split(&self, batch: &TaskBatch) -> bool {
        let subject = names::task_subject(&batch.job);
        for task in &batch.tasks {
            let single = TaskBatch {
                job: batch.job.clone(),
                number: batch.number,
                module: batch.module.clone(),
                module_name: batch.module_name.clone(),
                tasks: vec![task.clone()],
            };
            let id = format!("{}.{}.{}", batch.job, batch.number, task.index);
            let payload = wire::encode(&single);
            if let Err(error) = publish_until_stored(&self.link, &subject, &id, payload).await {
                self.trouble(error.to_string());
                return false;
            }
        }
        true
    }

    /// Runs `batch` on this host, telling JetStream it is at work meanwhile.
    async fn run(
        &self,
        batch: &TaskBatch,
        message: &jetstream::Message,
        sequence: u64,
    ) -> Vec<(u64, Outcome)> {
        let pool = match self.pool_for(batch).await {
            Ok(pool) => pool,
            Err((status, why)) => {
                return batch
                    .tasks
                    .iter()
                    .map(|task| (task.index, Outcome::not_run(status, why.clone())))
                    .collect();
            }
        };
        let mut tasks = Vec::with_capacity(batch.tasks.len());
        for wire_task in &batch.tasks {
            tasks.push(self.task_from(wire_task).await);
        }
        let indices: Vec<u64> = batch.tasks.iter().map(|task| task.index).collect();
        let mut running = tokio::task::spawn_blocking(move || {
            pool.map_tasks_unordered(tasks)
                .collect::<Vec<(usize, Outcome)>>()
        });
        // Speaks up every third of the ack wait in force, and at once when
        // it changes (it may have become shorter).
        let mut in_force = self.in_force.clone();
        in_force.borrow_and_update();
        let outcomes = loop {
            let every = in_force.borrow().ack_wait / 3;
            tokio::select! {
                ran = &mut running => break ran,
                () = tokio::time::sleep(every) => {}
                Ok(()) = in_force.changed() => {}
            }
            if let Err(error) = message.ack_with(AckKind::Progress).await {
                self.trouble(format!("cannot tell JetStream a batch is running: {error}"));
            }
            self.say(batch, sequence, true).await;
        };
        match outcomes {
            Ok(outcomes) => outcomes
                .into_iter()
                .map(|(position, outcome)| (indices[position], outcome))
                .collect(),
            Err(error) => indices
                .iter()
                .map(|index| {
                    let why = format!("the worker host's pool failed: {error}");
                    (*index, Outcome::not_run(ExitStatus::WorkerLost, why))
                })
                .collect(),
        }
    }

    /// The local task for a task from the wire: what the host allows, its
    /// limits capped.
    async fn task_from(&self, wire_task: &WireTask) -> Task {
        let mut spec = wire_task.spec.clone();
        if spec.rejected.is_some() {
            return Task::from(spec);
        }
        spec.capabilities = match self.policy.grant(&spec.capabilities) {
            Ok(capabilities) => capabilities,
            Err(why) => return Task::from(TaskSpec::rejected(why.message())),
        };
        if let Some(key) = &wire_task.stored_input {
            spec.input = match Link::read_object(&self.link.blobs, key).await {
                Ok(bytes) => bytes,
                Err(error) => return Task::from(TaskSpec::rejected(error.to_string())),
            };
        }
        spec.limits = Some(self.policy.cap(spec.limits));
        Task::from(spec)
    }

    /// The pool for the batch's module: fetched from the module store,
    /// verified and loaded the first time.
    async fn pool_for(&self, batch: &TaskBatch) -> Loaded {
        let mut pools = self.pools.lock().await;
        if let Some(known) = pools.get(&batch.module) {
            return known.clone();
        }
        let started = Instant::now();
        let loaded = self.load(batch).await;
        if let Ok((_, bytes)) = &loaded {
            (self.on_event)(&WorkerEvent::ModuleLoaded {
                name: batch.module_name.clone(),
                digest: batch.module.clone(),
                bytes: *bytes,
                took: started.elapsed(),
            });
        }
        let pool = loaded.map(|(pool, _)| pool);
        // A missing module is not remembered: it may be uploaded yet.
        if !matches!(&pool, Err((ExitStatus::NotFound, _))) {
            pools.insert(batch.module.clone(), pool.clone());
        }
        pool
    }

    async fn load(&self, batch: &TaskBatch) -> Result<(Arc<Pool>, usize), (ExitStatus, String)> {
        let bytes = Link::read_object(&self.link.modules, &batch.module)
            .await
            .map_err(|error| (ExitStatus::NotFound, error.to_string()))?;
        let digest = hex_sha256(&bytes);
        if digest != batch.module {
            return Err((
                ExitStatus::CannotRun,
                format!(
                    "the module store's `{}` has SHA-256 {digest}, not its name: it was \
                     altered; upload the module again",
                    batch.module
                ),
            ));
        }
        let (runtime, name, workers, isolation) = (
            self.runtime.clone(),
            batch.module_name.clone(),
            self.workers,
            self.isolation.clone(),
        );
        let size = bytes.len();
        tokio::task::spawn_blocking(move || {
            let module = runtime.load_bytes(&name, &bytes)?;
            Pool::builder(&module)
                .workers(workers)
                .isolation(isolation)
                .build()
        })
        .await
        .map_err(|error| (ExitStatus::WorkerLost, error.to_string()))?
        .map(|pool| (Arc::new(pool), size))
        .map_err(|error| (error.exit_status(), error.to_string()))
    }
}

/// A SHA-256 digest in lowercase hex: a module's name in the store.
pub(crate) fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
