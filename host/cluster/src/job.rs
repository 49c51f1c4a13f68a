//! One submitted job on the async side: batches its tasks by their pace,
//! publishes them, reads their outcomes back, keeps the first outcome of
//! each index, listens to the hosts that hold its tasks (and says when one
//! stops answering), and cleans up after itself.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{DeliverPolicy, pull::OrderedConfig};
use futures_util::{FutureExt, StreamExt};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use wasmproc::{ExitStatus, Outcome};

use crate::events::{ClusterEvent, Listener};
use crate::held::Held;
use crate::link::Link;
use crate::names;
use crate::publish::{message_budget, publish_until_stored};
use crate::wire::{self, OutcomeBatch, Progress, TaskBatch, WireOutcome, WireTask};

/// What the submitting side tells a job.
pub(crate) enum Command {
    Tasks(Vec<WireTask>),
    /// No more tasks.
    Close,
    /// Withdraw what has not started; end every unfinished task `Cancelled`.
    Cancel,
}

/// The module a job runs, as its tasks name it.
#[derive(Clone)]
pub(crate) struct JobModule {
    pub(crate) digest: String,
    pub(crate) name: String,
}

/// About this much work goes in one message (measured from the outcomes'
/// run times): enough that JetStream's per-message cost does not dominate
/// tiny tasks, little enough that the hosts share the end of a job evenly.
const BATCH_WORK: Duration = Duration::from_millis(10);
/// The most tasks in one message.
const MAX_BATCH: usize = 1024;
/// Messages of one task each that go out before the first outcome tells
/// how long a task takes.
const SLOW_START: u64 = 8;

/// The first outcome of each index; later ones are duplicates.
#[derive(Default)]
struct Seen(Vec<u64>);

impl Seen {
    /// Marks `index`; false if it was already marked.
    fn insert(&mut self, index: u64) -> bool {
        let (word, bit) = ((index / 64) as usize, 1u64 << (index % 64));
        if self.0.len() <= word {
            self.0.resize(word + 1, 0);
        }
        let fresh = self.0[word] & bit == 0;
        self.0[word] |= bit;
        fresh
    }

    fn contains(&self, index: u64) -> bool {
        let word = (index / 64) as usize;
        self.0
            .get(word)
            .is_some_and(|w| w & (1 << (index % 64)) != 0)
    }
}

/// A running job's state.
struct Job {
    link: Link,
    id: String,
    module: JobModule,
    budget: usize,
    pending: VecDeque<WireTask>,
    submitted: u64,
    received: u64,
    seen: Seen,
    closed: bool,
    /// Mean run time of a task, once an outcome has told it.
    pace: Option<Duration>,
    batches: u64,
    /// Publishing batches; each gives the blob keys of the inputs it
    /// stored.
    publishing: JoinSet<Result<Vec<String>, wasmproc::Error>>,
    stored_inputs: Vec<String>,
    /// Tasks below this index have their outcome or were reported failed.
    settled_below: u64,
    /// Set once NATS has failed for good: every unfinished task ends
    /// `WorkerLost` with this.
    failed: Option<String>,
    /// Which hosts hold which of the job's messages, by their word.
    held: Held,
    /// The connection's count of connects when last looked at.
    connects: u64,
}

/// Runs a job until every task has one outcome (or it is cancelled).
/// Outcomes go to `deliver`; the channel closing tells the submitter the
/// job is over.
pub(crate) async fn drive(
    link: Link,
    id: String,
    module: JobModule,
    mut commands: mpsc::UnboundedReceiver<Command>,
    deliver: crossbeam_channel::Sender<Vec<(u64, Outcome)>>,
    listener: Listener,
) {
    let subject = names::outcome_subject(&id);
    // Before any batch goes out, so that no host's word is missed. Without
    // it the job runs as well, only without the notice of a silent host.
    let mut words = link
        .client
        .subscribe(names::progress_subject(&id))
        .await
        .ok();
    let mut job = Job {
        connects: link.client.statistics().connects.load(Ordering::Relaxed),
        held: Held::default(),
        budget: message_budget(&link),
        link,
        id,
        module,
        pending: VecDeque::new(),
        submitted: 0,
        received: 0,
        seen: Seen::default(),
        closed: false,
        pace: None,
        batches: 0,
        publishing: JoinSet::new(),
        stored_inputs: Vec::new(),
        settled_below: 0,
        failed: None,
    };
    let mut incoming = match job.listen(&subject, DeliverPolicy::All).await {
        Ok(incoming) => Some(incoming),
        Err(error) => {
            job.failed = Some(error.to_string());
            None
        }
    };
    let mut last_sequence = 0;
    let mut listening = true;
    loop {
        if let Some(why) = job.failed.clone() {
            // Every task not ended yet ends now, and so does each one sent
            // later.
            job.pending.clear();
            let lost = job.unfinished(ExitStatus::WorkerLost, &why);
            if !lost.is_empty() && deliver.send(lost).is_err() {
                break;
            }
        }
        job.publish_ready();
        if job.closed && job.received == job.submitted {
            break;
        }
        let check = job.held.next_check();
        let check_at = tokio::time::Instant::from_std(check.unwrap_or_else(Instant::now));
        tokio::select! {
            // Read after `Close` too: a cancel may still come.
            command = commands.recv(), if listening => match command {
                Some(Command::Tasks(tasks)) => {
                    job.submitted += tasks.len() as u64;
                    job.pending.extend(tasks);
                }
                Some(Command::Close) => job.closed = true,
                None => {
                    job.closed = true;
                    listening = false;
                }
                Some(Command::Cancel) => {
                    job.withdraw().await;
                    let why = "cancelled before it ended (a task already running on a host \
                               runs to its end there; its outcome is dropped)";
                    let cancelled = job.unfinished(ExitStatus::Cancelled, why);
                    let _ = deliver.send(cancelled);
                    break;
                }
            },
            message = next_message(&mut incoming) => match message {
                Some(Ok(message)) => {
                    if let Ok(info) = message.info() {
                        last_sequence = info.stream_sequence;
                    }
                    let outcomes = job.receive(&message.payload).await;
                    if !outcomes.is_empty() && deliver.send(outcomes).is_err() {
                        // The submitter went away: withdraw the rest.
                        job.withdraw().await;
                        break;
                    }
                }
                // The ordered consumer recreates itself after a hiccup.
                Some(Err(_)) => {}
                None => {
                    // Start again where it ended.
                    let from = DeliverPolicy::ByStartSequence { start_sequence: last_sequence + 1 };
                    incoming = job.listen(&subject, from).await.ok();
                    if incoming.is_none() {
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            },
            Some(published) = job.publishing.join_next(), if !job.publishing.is_empty() => {
                match published {
                    Ok(Ok(stored)) => job.stored_inputs.extend(stored),
                    Ok(Err(error)) => job.failed = Some(error.to_string()),
                    Err(_) => {}
                }
            }
            word = next_word(&mut words) => match word {
                Some(word) => job.heard(&word.payload),
                None => words = None,
            },
            () = tokio::time::sleep_until(check_at), if check.is_some() => {
                job.check_silence(&mut words, &listener);
            }
        }
    }
    job.publishing.abort_all();
    // Nothing of the job stays behind on the server.
    let _ = job.link.outcomes.purge().filter(subject).await;
    for key in &job.stored_inputs {
        let _ = job.link.blobs.delete(key).await;
    }
}

type Incoming = async_nats::jetstream::consumer::pull::Ordered;

async fn next_message(
    incoming: &mut Option<Incoming>,
) -> Option<
    Result<async_nats::jetstream::Message, async_nats::jetstream::consumer::pull::OrderedError>,
> {
    match incoming {
        Some(incoming) => incoming.next().await,
        None => std::future::pending().await,
    }
}

async fn next_word(words: &mut Option<async_nats::Subscriber>) -> Option<async_nats::Message> {
    match words {
        Some(words) => words.next().await,
        None => std::future::pending().await,
    }
}

impl Job {
    /// Takes a host's word about a message of this job that it holds.
    fn heard(&mut self, payload: &[u8]) {
        if let Ok(word) = wire::decode::<Progress>("progress", payload) {
            let seen = &self.seen;
            self.held
                .heard(word, Instant::now(), |index| seen.contains(index));
        }
    }

    /// Says which hosts stopped answering, once each.
    fn check_silence(&mut self, words: &mut Option<async_nats::Subscriber>, listener: &Listener) {
        // Words already here count first.
        while let Some(Some(word)) = words.as_mut().and_then(|words| words.next().now_or_never()) {
            self.heard(&word.payload);
        }
        let now = Instant::now();
        let client = &self.link.client;
        let connects = client.statistics().connects.load(Ordering::Relaxed);
        if connects != self.connects
            || client.connection_state() != async_nats::connection::State::Connected
        {
            // This side was cut off: the hosts' silence says nothing.
            self.connects = connects;
            self.held.excuse(now);
            return;
        }
        let seen = &self.seen;
        for silent in self.held.newly_silent(now, |index| seen.contains(index)) {
            listener.emit(&ClusterEvent::HostSilent {
                tasks: silent.tasks,
                redelivery_in: silent.redelivery_in,
            });
        }
    }

    async fn listen(
        &self,
        subject: &str,
        from: DeliverPolicy,
    ) -> Result<Incoming, wasmproc::Error> {
        let consumer = self
            .link
            .outcomes
            .create_consumer(OrderedConfig {
                filter_subject: subject.to_owned(),
                deliver_policy: from,
                ..Default::default()
            })
            .await
            .map_err(|error| crate::error::nats_error("read outcomes", error))?;
        consumer
            .messages()
            .await
            .map_err(|error| crate::error::nats_error("read outcomes", error))
    }

    /// Publishes the pending tasks in batches sized by their pace.
    fn publish_ready(&mut self) {
        while !self.pending.is_empty() {
            let size = match self.pace {
                Some(pace) => {
                    let per_batch = BATCH_WORK.as_nanos() / pace.as_nanos().max(1);
                    (per_batch as usize).clamp(1, MAX_BATCH)
                }
                None if self.batches < SLOW_START => 1,
                None => return,
            };
            let mut tasks = Vec::with_capacity(size.min(self.pending.len()));
            let mut bytes = 0;
            while tasks.len() < size
                && let Some(task) = self.pending.front()
            {
                let weight = task_weight(task);
                if !tasks.is_empty() && bytes + weight > self.budget {
                    break;
                }
                bytes += weight;
                tasks.push(self.pending.pop_front().expect("a front task"));
            }
            let number = self.batches;
            self.batches += 1;
            let batch = TaskBatch {
                job: self.id.clone(),
                number,
                module: self.module.digest.clone(),
                module_name: self.module.name.clone(),
                tasks,
            };
            let link = self.link.clone();
            let budget = self.budget;
            self.publishing.spawn(async move {
                let (batch, stored) = store_large_inputs(&link, batch, budget).await?;
                let subject = names::task_subject(&batch.job);
                let id = format!("{}.{}", batch.job, batch.number);
                publish_until_stored(&link, &subject, &id, wire::encode(&batch)).await?;
                Ok(stored)
            });
        }
    }

    /// Takes the outcomes in one message: the first of each index, with
    /// stored ones fetched.
    async fn receive(&mut self, payload: &[u8]) -> Vec<(u64, Outcome)> {
        let batch: OutcomeBatch = match wire::decode("outcome", payload) {
            Ok(batch) => batch,
            Err(_) => return Vec::new(),
        };
        let first = batch.outcomes.first().map(|(index, _)| *index);
        let mut fresh = Vec::with_capacity(batch.outcomes.len());
        let mut total = Duration::ZERO;
        for (index, outcome) in batch.outcomes {
            if index >= self.submitted || !self.seen.insert(index) {
                continue;
            }
            let outcome = match outcome {
                WireOutcome::Inline(outcome) => *outcome,
                WireOutcome::Stored(key) => self.fetch_stored(&key).await,
            };
            total += outcome.duration;
            fresh.push((index, outcome));
        }
        // Its host is alive (even if these are a rerun's duplicates).
        if let Some(first) = first {
            let seen = &self.seen;
            self.held
                .ended(first, Instant::now(), |index| seen.contains(index));
        }
        if !fresh.is_empty() {
            self.received += fresh.len() as u64;
            let mean = total / fresh.len() as u32;
            self.pace = Some(match self.pace {
                Some(pace) => (pace * 3 + mean) / 4,
                None => mean,
            });
        }
        fresh
    }

    async fn fetch_stored(&self, key: &str) -> Outcome {
        let stored = Link::read_object(&self.link.blobs, key).await;
        let _ = self.link.blobs.delete(key).await;
        match stored.and_then(|bytes| wire::decode::<Outcome>("stored outcome", &bytes)) {
            Ok(outcome) => outcome,
            Err(error) => Outcome::not_run(ExitStatus::WorkerLost, error.to_string()),
        }
    }

    /// Every submitted task without an outcome yet, ended with `status`.
    /// (Scans only what was sent since the last call: after a failure,
    /// each batch sent is answered at once.)
    fn unfinished(&mut self, status: ExitStatus, why: &str) -> Vec<(u64, Outcome)> {
        let mut ended = Vec::new();
        let from = std::mem::replace(&mut self.settled_below, self.submitted);
        for index in from..self.submitted {
            if !self.seen.contains(index) {
                self.seen.insert(index);
                ended.push((index, Outcome::not_run(status, why)));
            }
        }
        self.received += ended.len() as u64;
        ended
    }

    /// Takes the job's tasks that no host has started off the queue.
    async fn withdraw(&mut self) {
        self.pending.clear();
        self.publishing.abort_all();
        let _ = self
            .link
            .tasks
            .purge()
            .filter(names::task_subject(&self.id))
            .await;
    }
}

/// About how many bytes a task takes in a message.
fn task_weight(task: &WireTask) -> usize {
    let spec = &task.spec;
    let input = spec.input.len() + task.stored_input.as_ref().map_or(0, String::len);
    64 + input + spec.stdin.len() + spec.argv.iter().map(|a| a.len() + 2).sum::<usize>()
}

/// Moves inputs too large for a message to the blob store; returns their
/// keys too.
async fn store_large_inputs(
    link: &Link,
    mut batch: TaskBatch,
    budget: usize,
) -> Result<(TaskBatch, Vec<String>), wasmproc::Error> {
    let mut stored = Vec::new();
    for task in &mut batch.tasks {
        if task.spec.input.len() + task.spec.stdin.len() > budget / 2 {
            let key = format!("{}.in.{}", batch.job, task.index);
            Link::write_object(&link.blobs, &key, &task.spec.input).await?;
            task.spec.input = Vec::new();
            task.stored_input = Some(key.clone());
            stored.push(key);
        }
    }
    Ok((batch, stored))
}
