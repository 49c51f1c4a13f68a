//! The streaming iterators of [`Pool::map`], [`Pool::map_unordered`] and
//! [`Pool::map_stream`].
//!
//! Inputs are taken a chunk at a time while the window has room; outcomes
//! come back on a channel. The window bounds the tasks in flight *and* the
//! finished outcomes the ordered iterator holds back until their turn, so
//! a slow first task never lets memory grow.
//!
//! Inputs come from a [`TaskSource`]: an iterator is pulled when the window
//! has room (a pull that blocks holds up the results), a [`TaskStream`] is
//! taken from as tasks arrive, while results already done are handed out.

use std::collections::BTreeMap;

use crossbeam_channel::{Receiver, Sender, TryRecvError, select};

use super::Pool;
use super::queue::{Job, Reply};
use crate::cancel::CancelToken;
use crate::error::{Error, ErrorKind};
use crate::outcome::Outcome;
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
        fn arrivals(&self) -> Option<&Receiver<Task>> {
            None
        }
    }

    impl<I: Iterator<Item = Task>> Pull for I {
        fn pull(&mut self) -> Pulled {
            self.next().map_or(Pulled::End, Pulled::Task)
        }
    }

    impl Pull for TaskStream {
        fn pull(&mut self) -> Pulled {
            match self.tasks.try_recv() {
                Ok(task) => Pulled::Task(task),
                Err(TryRecvError::Empty) => Pulled::NotYet,
                Err(TryRecvError::Disconnected) => Pulled::End,
            }
        }

        fn arrivals(&self) -> Option<&Receiver<Task>> {
            Some(&self.tasks)
        }
    }
}

use source::Pulled;

/// The receiving end of [`Pool::map_stream`]: tasks as their producer
/// sends them.
pub struct TaskStream {
    tasks: Receiver<Task>,
}

/// The sending end of [`Pool::map_stream`]: send tasks from any thread;
/// dropping every sender ends the stream. Cheap to clone.
#[derive(Clone)]
pub struct TaskSender {
    tasks: Sender<Task>,
}

impl TaskSender {
    /// Sends a task to the map, waiting while as many tasks as the map's
    /// window holds wait to be taken.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::PoolClosed`] when the map's results were dropped: nobody
    /// takes tasks any more.
    pub fn send(&self, task: Task) -> Result<(), Error> {
        self.tasks.send(task).map_err(|_| {
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
    (TaskSender { tasks }, TaskStream { tasks: receiver })
}

/// Feeds inputs to the pool and collects outcomes, for both iterators.
struct Feeder<'p, S> {
    pool: &'p Pool,
    source: S,
    ended: bool,
    /// A task taken while waiting, to go out first.
    taken: Option<Task>,
    submitted: usize,
    in_flight: usize,
    chunksize: usize,
    results: Sender<(usize, Outcome)>,
    arrivals: Receiver<(usize, Outcome)>,
    cancel: CancelToken,
    /// Wakes a wait for tasks when the map is cancelled: a cancelled map
    /// takes no more tasks (they would only end `Cancelled`).
    cancelled: Receiver<()>,
    _watch: Option<crate::cancel::Watch>,
}

impl<'p, S: TaskSource> Feeder<'p, S> {
    fn new(pool: &'p Pool, source: S) -> Self {
        // Unbounded on purpose: workers must never block on delivering an
        // outcome, and the window already bounds what can pile up here.
        let (results, arrivals) = crossbeam_channel::unbounded();
        let cancel = pool.cancel_parent().child();
        let (wake, cancelled) = crossbeam_channel::bounded(1);
        let watch = cancel.watch(&wake);
        Feeder {
            pool,
            source,
            ended: false,
            taken: None,
            submitted: 0,
            in_flight: 0,
            chunksize: 1,
            results,
            arrivals,
            cancel,
            cancelled,
            _watch: watch,
        }
    }

    fn window(&self) -> usize {
        (self.pool.window() * self.chunksize).max(self.chunksize)
    }

    /// Whether another chunk fits beside the tasks in flight and the
    /// `held` outcomes not yet handed out.
    fn has_room(&self, held: usize) -> bool {
        self.in_flight + held + self.chunksize <= self.window()
    }

    /// Submits chunks while the window has room and tasks are ready; but
    /// only once half the window has drained, so that inputs go out in
    /// batches and the workers' queue rarely runs dry.
    fn top_up(&mut self, held: usize) {
        if self.in_flight + held > self.window() / 2 {
            return;
        }
        while !self.ended && self.has_room(held) {
            let mut tasks: Vec<Task> = self.taken.take().into_iter().collect();
            while tasks.len() < self.chunksize {
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
            let short = tasks.len() < self.chunksize;
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
        let replies = (self.submitted..self.submitted + tasks.len())
            .map(|index| Reply::Stream {
                index,
                results: self.results.clone(),
            })
            .collect();
        self.submitted += tasks.len();
        self.in_flight += tasks.len();
        let job = Job {
            tasks,
            replies,
            cancel: self.cancel.clone(),
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
    fn next_arrival(&mut self, held: usize) -> Option<Option<(usize, Outcome)>> {
        if self.cancel.is_cancelled() {
            self.ended = true;
            self.taken = None;
        }
        let waiting_for_tasks = !self.ended && self.taken.is_none() && self.has_room(held);
        let stream = self.source.arrivals().filter(|_| waiting_for_tasks);
        if self.in_flight == 0 {
            if self.taken.is_some() {
                return Some(None);
            }
            if stream.is_none() || self.ended {
                return None;
            }
            // Nothing is out: only a new task (or a cancellation) comes next.
            select! {
                recv(stream.expect("a stream")) -> task => match task {
                    Ok(task) => self.taken = Some(task),
                    Err(_) => self.ended = true,
                },
                recv(self.cancelled) -> _ => {}
            }
            return Some(None);
        }
        let arrival = match stream {
            None => self.arrivals.recv().ok(),
            Some(stream) => select! {
                recv(self.arrivals) -> arrival => arrival.ok(),
                recv(stream) -> task => {
                    match task {
                        Ok(task) => self.taken = Some(task),
                        Err(_) => self.ended = true,
                    }
                    return Some(None);
                }
                recv(self.cancelled) -> _ => return Some(None),
            },
        };
        // We hold a sender ourselves, so the results never disconnect.
        let arrival = arrival?;
        self.in_flight -= 1;
        Some(Some(arrival))
    }
}

impl<S> Drop for Feeder<'_, S> {
    fn drop(&mut self) {
        // Nobody will read the rest: end what is still queued or running.
        self.cancel.cancel();
    }
}

/// Outcomes of [`Pool::map`], [`Pool::map_tasks`] and [`Pool::map_stream`],
/// in input order.
pub struct MapResults<'p, S> {
    feeder: Feeder<'p, S>,
    next: usize,
    early: BTreeMap<usize, Outcome>,
}

impl<'p, S: TaskSource> MapResults<'p, S> {
    pub(super) fn new(pool: &'p Pool, source: S) -> Self {
        MapResults {
            feeder: Feeder::new(pool, source),
            next: 0,
            early: BTreeMap::new(),
        }
    }

    /// Runs up to `size` consecutive typed tasks in one instance, one after
    /// another, instead of one instance each. For tiny tasks this saves the
    /// instantiation; the price is isolation between the tasks of a chunk
    /// (a static written by one is seen by the next). A task that traps or
    /// hits a limit still gets its own status, and the chunk goes on in a
    /// fresh instance. Commands always get an instance each. From a
    /// [`TaskStream`], a chunk holds what has arrived, up to `size`. By
    /// default 1.
    #[must_use]
    pub fn chunksize(mut self, size: usize) -> Self {
        self.feeder.chunksize = size.max(1);
        self
    }
}

impl<S: TaskSource> Iterator for MapResults<'_, S> {
    type Item = Outcome;

    fn next(&mut self) -> Option<Outcome> {
        loop {
            if let Some(outcome) = self.early.remove(&self.next) {
                self.next += 1;
                return Some(outcome);
            }
            self.feeder.top_up(self.early.len());
            let Some((index, outcome)) = self.feeder.next_arrival(self.early.len())? else {
                continue;
            };
            self.early.insert(index, outcome);
            // Take whatever else has arrived without waiting for it.
            while let Ok((index, outcome)) = self.feeder.arrivals.try_recv() {
                self.feeder.in_flight -= 1;
                self.early.insert(index, outcome);
            }
        }
    }
}

/// Outcomes of [`Pool::map_unordered`], [`Pool::map_tasks_unordered`] and
/// [`Pool::map_stream_unordered`]: `(input index, outcome)` in the order
/// tasks end.
pub struct UnorderedResults<'p, S> {
    feeder: Feeder<'p, S>,
}

impl<'p, S: TaskSource> UnorderedResults<'p, S> {
    pub(super) fn new(pool: &'p Pool, source: S) -> Self {
        UnorderedResults {
            feeder: Feeder::new(pool, source),
        }
    }

    /// As [`MapResults::chunksize`].
    #[must_use]
    pub fn chunksize(mut self, size: usize) -> Self {
        self.feeder.chunksize = size.max(1);
        self
    }
}

impl<S: TaskSource> Iterator for UnorderedResults<'_, S> {
    type Item = (usize, Outcome);

    fn next(&mut self) -> Option<(usize, Outcome)> {
        loop {
            self.feeder.top_up(0);
            if let Some(arrival) = self.feeder.next_arrival(0)? {
                return Some(arrival);
            }
        }
    }
}
