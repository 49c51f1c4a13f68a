//! The streaming iterators of [`Pool::map`], [`Pool::map_unordered`] and
//! [`Pool::map_stream`].
//!
//! Inputs are taken a batch at a time while the window has room; outcomes
//! come back on a channel, each already transformed on the pool thread that
//! ended its task. The window bounds the tasks in flight *and* the finished
//! outcomes the ordered iterator holds back until their turn, so a slow
//! first task never lets memory grow.
//!
//! Batches adapt to the tasks' length: one trip through the queue carries
//! many short tasks (the queue and its wake-ups cost more than the task),
//! but a long task goes alone, so that no task waits behind a busy worker
//! while another worker is idle.
//!
//! Inputs come from a [`TaskSource`]: an iterator is pulled when the window
//! has room (a pull that blocks holds up the results), a [`TaskStream`] is
//! taken from as tasks arrive, while results already done are handed out.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TryRecvError, select};

use super::Pool;
use super::queue::{Job, Reply, Sink};
use crate::cancel::CancelToken;
use crate::error::{Error, ErrorKind};
use crate::outcome::Outcome;
use crate::status::ExitStatus;
use crate::task::Task;

/// Where a map's tasks come from: any iterator of tasks, or the receiving
/// end of [`Pool::map_stream`].
pub trait TaskSource: source::Pull {}

impl<I: Iterator<Item = Task>> TaskSource for I {}
impl TaskSource for TaskStream {}

mod source {
    use super::{Receiver, Task, TaskStream, TryRecvError};

    /// One attempt at the next task.
    // Returned and matched at once, never stored: boxing the task would
    // only add an allocation per task.
    #[allow(clippy::large_enum_variant)]
    pub enum Pulled {
        Task(Task),
        /// None is ready yet; it may come.
        NotYet,
        End,
    }

    /// How the feeder takes tasks. Sealed: only the sources of this module.
    pub trait Pull {
        /// The next task: an iterator computes it, a stream gives the one
        /// that is ready, if any.
        fn pull(&mut self) -> Pulled;

        /// For a source whose tasks arrive by themselves, the channel to
        /// wait on beside the results.
        fn arrivals(&self) -> Option<&Receiver<Vec<Task>>> {
            None
        }

        /// Keeps tasks received while waiting on [`arrivals`](Pull::arrivals),
        /// to be pulled next.
        fn received(&mut self, _tasks: Vec<Task>) {}

        /// Whether tasks are ready to be pulled without waiting.
        fn has_ready(&self) -> bool {
            false
        }

        /// The tasks that have arrived and not been pulled (a cancelled
        /// map answers them without running them); none for an iterator,
        /// whose tasks are only made when pulled.
        fn take_arrived(&mut self) -> Vec<Task> {
            Vec::new()
        }
    }

    impl<I: Iterator<Item = Task>> Pull for I {
        fn pull(&mut self) -> Pulled {
            self.next().map_or(Pulled::End, Pulled::Task)
        }
    }

    impl Pull for TaskStream {
        fn pull(&mut self) -> Pulled {
            loop {
                if let Some(task) = self.ready.next() {
                    return Pulled::Task(task);
                }
                match self.tasks.try_recv() {
                    Ok(tasks) => self.ready = tasks.into_iter(),
                    Err(TryRecvError::Empty) => return Pulled::NotYet,
                    Err(TryRecvError::Disconnected) => return Pulled::End,
                }
            }
        }

        fn arrivals(&self) -> Option<&Receiver<Vec<Task>>> {
            Some(&self.tasks)
        }

        fn received(&mut self, tasks: Vec<Task>) {
            let mut ready: Vec<Task> = std::mem::take(&mut self.ready).collect();
            ready.extend(tasks);
            self.ready = ready.into_iter();
        }

        fn has_ready(&self) -> bool {
            self.ready.len() > 0
        }

        fn take_arrived(&mut self) -> Vec<Task> {
            let mut arrived: Vec<Task> = std::mem::take(&mut self.ready).collect();
            while let Ok(tasks) = self.tasks.try_recv() {
                arrived.extend(tasks);
            }
            arrived
        }
    }
}

use source::Pulled;

/// The receiving end of [`Pool::map_stream`]: tasks as their producer
/// sends them.
pub struct TaskStream {
    tasks: Receiver<Vec<Task>>,
    /// Tasks received together, not yet pulled.
    ready: std::vec::IntoIter<Task>,
}

/// The sending end of [`Pool::map_stream`]: send tasks from any thread;
/// dropping every sender ends the stream. Cheap to clone.
#[derive(Clone)]
pub struct TaskSender {
    tasks: Sender<Vec<Task>>,
}

impl TaskSender {
    /// Sends a task to the map, waiting while as many sends as the map's
    /// window holds wait to be taken.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::PoolClosed`] when the map's results were dropped: nobody
    /// takes tasks any more.
    pub fn send(&self, task: Task) -> Result<(), Error> {
        self.send_all(vec![task])
    }

    /// Sends several tasks at once, in order: for a producer that has many
    /// ready (lines in a read buffer), one hand-over instead of one each.
    /// Waits as [`send`](TaskSender::send) does.
    ///
    /// # Errors
    ///
    /// As [`send`](TaskSender::send).
    pub fn send_all(&self, tasks: Vec<Task>) -> Result<(), Error> {
        if tasks.is_empty() {
            return Ok(());
        }
        self.tasks.send(tasks).map_err(|_| {
            Error::new(
                ErrorKind::PoolClosed,
                "the map's results were dropped: it takes no more tasks",
            )
        })
    }
}

impl std::fmt::Debug for TaskSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TaskSender")
    }
}

/// A new stream of tasks, with room for `bound` waiting ones.
pub(super) fn task_stream(bound: usize) -> (TaskSender, TaskStream) {
    let (tasks, receiver) = crossbeam_channel::bounded(bound.max(1));
    let stream = TaskStream {
        tasks: receiver,
        ready: Vec::new().into_iter(),
    };
    (TaskSender { tasks }, stream)
}

impl TaskStream {
    /// A stream of tasks and its sender, for a back end that feeds a map of
    /// its own ([`Executor::map_stream_with`](crate::Executor::map_stream_with)):
    /// sends wait while `bound` hand-overs wait to be taken.
    pub fn channel(bound: usize) -> (TaskSender, TaskStream) {
        task_stream(bound)
    }

    /// The next tasks sent together, waiting for them; `None` once every
    /// sender is dropped and everything sent was taken.
    pub fn recv(&mut self) -> Option<Vec<Task>> {
        let ready: Vec<Task> = std::mem::take(&mut self.ready).collect();
        if !ready.is_empty() {
            return Some(ready);
        }
        self.tasks.recv().ok()
    }
}

/// The work one batch aims at: long enough that the queue's cost per
/// batch is small beside it, short enough that a worker holding a batch
/// never keeps the others waiting for long at the end of a map.
const BATCH_WORK: Duration = Duration::from_millis(2);

/// The most tasks one chunk may hold (`chunksize`): one instance runs them
/// in a row, and the window holds chunks, so it must stay addressable.
pub const MAX_CHUNKSIZE: usize = 1 << 16;

/// How often a map that found the pool's queue full looks for room again
/// while it waits for outcomes.
const ROOM_POLL: Duration = Duration::from_millis(1);

/// The most chunks in one batch. The window grows with the batch (it holds
/// as many batches as it held tasks), so this also bounds how far ahead of
/// the results inputs are pulled.
const MAX_BATCH: usize = 32;

/// What a map does with each outcome before it reaches the iterator, on the
/// pool thread that ended the task.
type Transform<T> = dyn Fn(usize, Outcome) -> T + Send + Sync;

/// Where a map's workers deliver: the transform, then the channel to the
/// iterator. Also keeps the recent length of tasks, which sizes batches.
struct Delivery<T> {
    results: Sender<Vec<(usize, T)>>,
    transform: Box<Transform<T>>,
    pace: Pace,
}

impl<T: Send + 'static> Sink for Delivery<T> {
    fn deliver(&self, index: usize, outcome: Outcome) {
        self.deliver_all(vec![(index, outcome)]);
    }

    fn deliver_all(&self, outcomes: Vec<(usize, Outcome)>) {
        let items = outcomes
            .into_iter()
            .map(|(index, outcome)| {
                self.pace.record(outcome.duration);
                (index, (self.transform)(index, outcome))
            })
            .collect();
        // A dropped receiver means nobody wants the results any more.
        let _ = self.results.send(items);
    }
}

/// A moving average of how long a map's tasks take, in nanoseconds; 0
/// until the first ends. Written by every worker without a lock: a lost
/// update only makes the average a little older.
#[derive(Default)]
struct Pace(AtomicU64);

impl Pace {
    fn record(&self, took: Duration) {
        let took = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX).max(1);
        let old = self.0.load(Ordering::Relaxed);
        let new = if old == 0 {
            took
        } else {
            old - old / 8 + took / 8
        };
        self.0.store(new.max(1), Ordering::Relaxed);
    }

    /// How many chunks of `chunksize` tasks make one batch.
    fn batch(&self, chunksize: usize) -> usize {
        let task = self.0.load(Ordering::Relaxed);
        if task == 0 {
            // Nothing has ended yet: the tasks may be long.
            return 1;
        }
        let chunk = task.saturating_mul(chunksize as u64);
        let fits = BATCH_WORK.as_nanos() as u64 / chunk;
        (fits as usize).clamp(1, MAX_BATCH)
    }
}

/// Feeds inputs to the pool and collects outcomes, for both iterators.
struct Feeder<'p, S, T> {
    pool: &'p Pool,
    source: S,
    ended: bool,
    submitted: usize,
    in_flight: usize,
    chunksize: usize,
    /// Chunks per batch, as last measured.
    batch: usize,
    delivery: Arc<Delivery<T>>,
    arrivals: Receiver<Vec<(usize, T)>>,
    /// Outcomes received together, not yet handed out.
    received: std::vec::IntoIter<(usize, T)>,
    cancel: CancelToken,
    /// Wakes a wait for tasks when the map is cancelled: a cancelled map
    /// takes no more tasks (they would only end `Cancelled`).
    cancelled: Receiver<()>,
    /// The last top-up stopped at a full queue with tasks still ready:
    /// waits for outcomes check the queue again every [`ROOM_POLL`].
    waiting_for_room: bool,
    _watch: Option<crate::cancel::Watch>,
    _cancel_on_drop: CancelOnDrop,
}

impl<'p, S: TaskSource, T: Send + 'static> Feeder<'p, S, T> {
    fn new(pool: &'p Pool, source: S, transform: Box<Transform<T>>) -> Self {
        // Unbounded on purpose: workers must never block on delivering an
        // outcome, and the window already bounds what can pile up here.
        let (results, arrivals) = crossbeam_channel::unbounded();
        let cancel = pool.cancel_parent().child();
        let (wake, cancelled) = crossbeam_channel::bounded(1);
        let watch = cancel.watch(&wake);
        let cancel_on_drop = cancel.clone();
        Feeder {
            pool,
            source,
            ended: false,
            submitted: 0,
            in_flight: 0,
            chunksize: 1,
            batch: 1,
            waiting_for_room: false,
            delivery: Arc::new(Delivery {
                results,
                transform,
                pace: Pace::default(),
            }),
            arrivals,
            received: Vec::new().into_iter(),
            cancel,
            cancelled,
            _watch: watch,
            _cancel_on_drop: CancelOnDrop(cancel_on_drop),
        }
    }

    /// The same feeder, not yet started, with another transform.
    fn with_transform<U: Send + 'static>(self, transform: Box<Transform<U>>) -> Feeder<'p, S, U> {
        debug_assert_eq!(
            self.submitted, 0,
            "a map's transform is set before it starts"
        );
        let mut feeder = Feeder::new(self.pool, self.source, transform);
        feeder.chunksize = self.chunksize;
        feeder
    }

    /// How many tasks one submission carries.
    fn unit(&self) -> usize {
        self.chunksize.saturating_mul(self.batch)
    }

    fn window(&self) -> usize {
        self.pool.window().saturating_mul(self.unit())
    }

    /// Whether another batch fits beside the tasks in flight and the
    /// `held` outcomes not yet handed out.
    fn has_room(&self, held: usize) -> bool {
        self.in_flight + held + self.unit() <= self.window()
    }

    /// Submits batches while the window has room and tasks are ready; but
    /// only once half the window has drained, so that inputs go out in
    /// bulk and the workers' queue rarely runs dry.
    fn top_up(&mut self, held: usize) {
        if self.in_flight + held > self.window() / 2 {
            return;
        }
        self.batch = self.delivery.pace.batch(self.chunksize);
        self.waiting_for_room = false;
        while !self.ended && self.has_room(held) {
            // A full queue would block here, and outcomes that have already
            // arrived would wait behind the slowest task queued. While some
            // of this map's tasks are out, their outcomes wake the map and
            // it tries again; with none out, waiting for room is all there
            // is to do.
            if self.in_flight > 0 && self.pool.queue_is_full() {
                self.waiting_for_room = true;
                return;
            }
            let unit = self.unit();
            // Grown as tasks come: a large unit is only an upper bound.
            let mut tasks: Vec<Task> = Vec::with_capacity(unit.min(MAX_BATCH));
            while tasks.len() < unit {
                match self.source.pull() {
                    Pulled::Task(task) => tasks.push(task),
                    Pulled::NotYet => break,
                    Pulled::End => {
                        self.ended = true;
                        break;
                    }
                }
            }
            if tasks.is_empty() {
                return;
            }
            let short = tasks.len() < unit;
            self.submit(tasks);
            if short {
                // The source had no more ready: wait for results or tasks.
                return;
            }
        }
    }

    fn submit(&mut self, tasks: Vec<Task>) {
        let defaults = &self.pool.shared;
        let tasks: Vec<Task> = tasks
            .into_iter()
            .map(|task| task.with_defaults(&defaults.limits, &defaults.caps, &defaults.grants))
            .collect();
        let sink: Arc<dyn Sink> = self.delivery.clone();
        let replies = (self.submitted..self.submitted + tasks.len())
            .map(|index| Reply::Stream {
                index,
                sink: Arc::clone(&sink),
            })
            .collect();
        self.submitted += tasks.len();
        self.in_flight += tasks.len();
        let job = Job {
            tasks,
            replies,
            cancel: self.cancel.clone(),
            chunk: self.chunksize,
        };
        if self.pool.enqueue(job).is_err() {
            // A closed pool answered these tasks `Cancelled`; take no more.
            self.ended = true;
        }
    }

    /// The next outcome to arrive; `None` once every task has one and the
    /// source has ended. While waiting, takes a task from a streaming
    /// source if the window has room, and returns `Some(None)` so that the
    /// caller submits it.
    fn next_arrival(&mut self, held: usize) -> Option<Option<(usize, T)>> {
        if let Some(arrival) = self.arrived() {
            return Some(Some(arrival));
        }
        if self.cancel.is_cancelled() && !self.ended {
            self.ended = true;
            self.cancel_arrived();
            if let Some(arrival) = self.arrived() {
                return Some(Some(arrival));
            }
        }
        let ready = !self.ended && self.source.has_ready();
        let waiting_for_tasks = !self.ended && !ready && self.has_room(held);
        let stream = self.source.arrivals().filter(|_| waiting_for_tasks);
        if self.in_flight == 0 {
            if ready {
                return Some(None);
            }
            if stream.is_none() || self.ended {
                return None;
            }
            // Nothing is out: only new tasks (or a cancellation) come next.
            select! {
                recv(stream.expect("a stream")) -> tasks => match tasks {
                    Ok(tasks) => self.source.received(tasks),
                    Err(_) => self.ended = true,
                },
                recv(self.cancelled) -> _ => {}
            }
            return Some(None);
        }
        // A full queue says nothing when it frees up (another map's job may
        // be what a worker took), so a map that stopped at it looks again
        // soon rather than only at its own next outcome.
        let room = if self.waiting_for_room {
            crossbeam_channel::after(ROOM_POLL)
        } else {
            crossbeam_channel::never()
        };
        let arrival = match stream {
            None => select! {
                recv(self.arrivals) -> arrival => arrival.ok(),
                recv(room) -> _ => return Some(None),
            },
            Some(stream) => select! {
                recv(self.arrivals) -> arrival => arrival.ok(),
                recv(room) -> _ => return Some(None),
                recv(stream) -> tasks => {
                    match tasks {
                        Ok(tasks) => self.source.received(tasks),
                        Err(_) => self.ended = true,
                    }
                    return Some(None);
                }
                recv(self.cancelled) -> _ => return Some(None),
            },
        };
        // The delivery holds a sender, so the results never disconnect.
        self.received = arrival?.into_iter();
        Some(self.arrived())
    }

    /// Answers the tasks that arrived from a stream and were never
    /// submitted, `Cancelled`: each task sent to a map gets its outcome.
    fn cancel_arrived(&mut self) {
        let arrived = self.source.take_arrived();
        if arrived.is_empty() {
            return;
        }
        let outcomes = (self.submitted..)
            .zip(arrived)
            .map(|(index, _)| {
                let outcome = Outcome::failed(
                    ExitStatus::Cancelled,
                    "the map was cancelled before the task started",
                );
                (index, outcome)
            })
            .collect::<Vec<_>>();
        self.submitted += outcomes.len();
        self.in_flight += outcomes.len();
        self.delivery.deliver_all(outcomes);
    }

    /// An outcome that has already arrived, without waiting.
    fn arrived(&mut self) -> Option<(usize, T)> {
        let arrival = match self.received.next() {
            Some(arrival) => arrival,
            None => {
                self.received = self.arrivals.try_recv().ok()?.into_iter();
                self.received.next()?
            }
        };
        self.in_flight -= 1;
        Some(arrival)
    }
}

/// Cancels a map's token when its iterator is dropped: nobody will read the
/// rest, so what is still queued or running ends.
struct CancelOnDrop(CancelToken);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

fn identity() -> Box<Transform<Outcome>> {
    Box::new(|_, outcome| outcome)
}

/// Outcomes of [`Pool::map`], [`Pool::map_tasks`] and [`Pool::map_stream`],
/// in input order: [`Outcome`]s, or what [`transform`](MapResults::transform)
/// makes of them.
pub struct MapResults<'p, S, T = Outcome> {
    feeder: Feeder<'p, S, T>,
    /// The outcomes that arrived before their turn, from `next` on.
    early: Early<T>,
}

impl<'p, S: TaskSource> MapResults<'p, S> {
    pub(super) fn new(pool: &'p Pool, source: S) -> Self {
        MapResults {
            feeder: Feeder::new(pool, source, identity()),
            early: Early::default(),
        }
    }

    /// Applies `transform` to each outcome, with its input index, on the
    /// pool thread that ended the task, and yields what it returns. Work
    /// per outcome (decoding a result, rendering a line) then runs in
    /// parallel on the workers instead of on the thread that reads the
    /// results. Call it before taking the first result.
    #[must_use]
    pub fn transform<T, F>(self, transform: F) -> MapResults<'p, S, T>
    where
        T: Send + 'static,
        F: Fn(usize, Outcome) -> T + Send + Sync + 'static,
    {
        MapResults {
            feeder: self.feeder.with_transform(Box::new(transform)),
            early: Early::default(),
        }
    }
}

impl<S: TaskSource, T: Send + 'static> MapResults<'_, S, T> {
    /// This map's canceller, for another thread: cancelling it ends the
    /// map's queued and running tasks (each `Cancelled`, as when the
    /// results are dropped) and the map takes no more; the pool's other
    /// work goes on. The results still yield each task's one outcome,
    /// then end.
    pub fn cancel_token(&self) -> CancelToken {
        self.feeder.cancel.clone()
    }

    /// Runs up to `size` consecutive typed tasks in one instance, one after
    /// another, instead of one instance each. For tiny tasks this saves the
    /// instantiation; the price is isolation between the tasks of a chunk
    /// (a static written by one is seen by the next). A task that traps or
    /// hits a limit still gets its own status, and the chunk goes on in a
    /// fresh instance. Commands always get an instance each. In worker
    /// processes a chunk crosses to one worker whole and shares an
    /// instance there too; each task keeps its own time limit, as in a
    /// thread worker. From a
    /// [`TaskStream`], a chunk holds what has arrived, up to `size`. By
    /// default 1; at most [`MAX_CHUNKSIZE`] (a larger size is taken as
    /// that).
    #[must_use]
    pub fn chunksize(mut self, size: usize) -> Self {
        self.feeder.chunksize = size.clamp(1, MAX_CHUNKSIZE);
        self
    }
}

impl<S: TaskSource, T: Send + 'static> Iterator for MapResults<'_, S, T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        loop {
            if let Some(item) = self.early.take_next() {
                return Some(item);
            }
            self.feeder.top_up(self.early.held);
            let Some((index, item)) = self.feeder.next_arrival(self.early.held)? else {
                continue;
            };
            self.early.insert(index, item);
            // Take whatever else has arrived without waiting for it.
            while let Some((index, item)) = self.feeder.arrived() {
                self.early.insert(index, item);
            }
        }
    }
}

/// Outcomes waiting for their turn: slot `i` holds index `next + i`. The
/// window bounds how far ahead an index can be, so a ring of slots beats a
/// sorted map.
struct Early<T> {
    next: usize,
    slots: VecDeque<Option<T>>,
    held: usize,
}

impl<T> Default for Early<T> {
    fn default() -> Self {
        Early {
            next: 0,
            slots: VecDeque::new(),
            held: 0,
        }
    }
}

impl<T> Early<T> {
    fn insert(&mut self, index: usize, item: T) {
        let at = index - self.next;
        if self.slots.len() <= at {
            self.slots.resize_with(at + 1, || None);
        }
        self.slots[at] = Some(item);
        self.held += 1;
    }

    fn take_next(&mut self) -> Option<T> {
        let item = self.slots.front_mut()?.take()?;
        self.slots.pop_front();
        self.next += 1;
        self.held -= 1;
        Some(item)
    }
}

/// Outcomes of [`Pool::map_unordered`], [`Pool::map_tasks_unordered`] and
/// [`Pool::map_stream_unordered`]: `(input index, outcome)` in the order
/// tasks end, or what [`transform`](UnorderedResults::transform) makes of
/// the outcome.
pub struct UnorderedResults<'p, S, T = Outcome> {
    feeder: Feeder<'p, S, T>,
}

impl<'p, S: TaskSource> UnorderedResults<'p, S> {
    pub(super) fn new(pool: &'p Pool, source: S) -> Self {
        UnorderedResults {
            feeder: Feeder::new(pool, source, identity()),
        }
    }

    /// As [`MapResults::transform`].
    #[must_use]
    pub fn transform<T, F>(self, transform: F) -> UnorderedResults<'p, S, T>
    where
        T: Send + 'static,
        F: Fn(usize, Outcome) -> T + Send + Sync + 'static,
    {
        UnorderedResults {
            feeder: self.feeder.with_transform(Box::new(transform)),
        }
    }
}

impl<S: TaskSource, T: Send + 'static> UnorderedResults<'_, S, T> {
    /// As [`MapResults::cancel_token`].
    pub fn cancel_token(&self) -> CancelToken {
        self.feeder.cancel.clone()
    }

    /// As [`MapResults::chunksize`].
    #[must_use]
    pub fn chunksize(mut self, size: usize) -> Self {
        self.feeder.chunksize = size.clamp(1, MAX_CHUNKSIZE);
        self
    }
}

impl<S: TaskSource, T: Send + 'static> Iterator for UnorderedResults<'_, S, T> {
    type Item = (usize, T);

    fn next(&mut self) -> Option<(usize, T)> {
        loop {
            self.feeder.top_up(0);
            if let Some(arrival) = self.feeder.next_arrival(0)? {
                return Some(arrival);
            }
        }
    }
}
