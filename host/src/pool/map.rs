//! The streaming iterators of [`Pool::map`] and [`Pool::map_unordered`].
//!
//! Inputs are pulled lazily, a chunk at a time, while fewer than a window
//! of tasks are in flight; outcomes come back on a channel. The ordered
//! iterator parks early finishers in a buffer until their turn, which the
//! window bounds too.

use std::collections::BTreeMap;

use crossbeam_channel::{Receiver, Sender};

use super::Pool;
use super::job::{Job, Reply};
use crate::cancel::CancelToken;
use crate::outcome::Outcome;
use crate::task::Task;

/// Feeds inputs to the pool and collects outcomes, for both iterators.
struct Feeder<'p, I> {
    pool: &'p Pool,
    inputs: Option<I>,
    submitted: usize,
    in_flight: usize,
    chunksize: usize,
    results: Sender<(usize, Outcome)>,
    arrivals: Receiver<(usize, Outcome)>,
    cancel: CancelToken,
}

impl<'p, I: Iterator<Item = Task>> Feeder<'p, I> {
    fn new(pool: &'p Pool, inputs: I) -> Self {
        // Unbounded on purpose: workers must never block on delivering an
        // outcome, and the window already bounds what can pile up here.
        let (results, arrivals) = crossbeam_channel::unbounded();
        Feeder {
            pool,
            inputs: Some(inputs),
            submitted: 0,
            in_flight: 0,
            chunksize: 1,
            results,
            arrivals,
            cancel: pool.cancel_parent().child(),
        }
    }

    /// Submits chunks while the window has room and inputs remain; but
    /// only once half the window has drained, so that inputs go out in
    /// batches and the workers' queue rarely runs dry.
    fn top_up(&mut self) {
        let window = self.pool.window() * self.chunksize;
        if self.in_flight > window / 2 {
            return;
        }
        while self.in_flight + self.chunksize <= window.max(self.chunksize) {
            let Some(inputs) = self.inputs.as_mut() else {
                return;
            };
            let tasks: Vec<Task> = inputs
                .by_ref()
                .take(self.chunksize)
                .map(|task| task.with_defaults(&self.pool.shared.limits, &self.pool.shared.caps))
                .collect();
            if tasks.len() < self.chunksize {
                self.inputs = None;
            }
            if tasks.is_empty() {
                return;
            }
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
                // A closed pool answered these tasks `Cancelled`; pull no
                // more inputs.
                self.inputs = None;
            }
        }
    }

    /// The next outcome to arrive, if any task is still out.
    fn next_arrival(&mut self) -> Option<(usize, Outcome)> {
        if self.in_flight == 0 {
            return None;
        }
        // We hold a sender ourselves, so this never disconnects.
        let arrival = self.arrivals.recv().ok()?;
        self.in_flight -= 1;
        Some(arrival)
    }
}

impl<I> Drop for Feeder<'_, I> {
    fn drop(&mut self) {
        // Nobody will read the rest: end what is still queued or running.
        self.cancel.cancel();
    }
}

/// Outcomes of [`Pool::map`] and [`Pool::map_tasks`], in input order.
pub struct MapResults<'p, I> {
    feeder: Feeder<'p, I>,
    next: usize,
    early: BTreeMap<usize, Outcome>,
}

impl<'p, I: Iterator<Item = Task>> MapResults<'p, I> {
    pub(super) fn new(pool: &'p Pool, inputs: I) -> Self {
        MapResults {
            feeder: Feeder::new(pool, inputs),
            next: 0,
            early: BTreeMap::new(),
        }
    }

    /// Runs up to `size` consecutive typed tasks in one instance, one after
    /// another, instead of one instance each. For tiny tasks this saves the
    /// instantiation; the price is isolation between the tasks of a chunk
    /// (a static written by one is seen by the next). A task that traps or
    /// hits a limit still gets its own status, and the chunk goes on in a
    /// fresh instance. Commands always get an instance each. By default 1.
    #[must_use]
    pub fn chunksize(mut self, size: usize) -> Self {
        self.feeder.chunksize = size.max(1);
        self
    }
}

impl<I: Iterator<Item = Task>> Iterator for MapResults<'_, I> {
    type Item = Outcome;

    fn next(&mut self) -> Option<Outcome> {
        loop {
            if let Some(outcome) = self.early.remove(&self.next) {
                self.next += 1;
                return Some(outcome);
            }
            self.feeder.top_up();
            let (index, outcome) = self.feeder.next_arrival()?;
            self.early.insert(index, outcome);
            // Take whatever else has arrived without waiting for it.
            while let Ok((index, outcome)) = self.feeder.arrivals.try_recv() {
                self.feeder.in_flight -= 1;
                self.early.insert(index, outcome);
            }
        }
    }
}

/// Outcomes of [`Pool::map_unordered`] and [`Pool::map_tasks_unordered`]:
/// `(input index, outcome)` in the order tasks end.
pub struct UnorderedResults<'p, I> {
    feeder: Feeder<'p, I>,
}

impl<'p, I: Iterator<Item = Task>> UnorderedResults<'p, I> {
    pub(super) fn new(pool: &'p Pool, inputs: I) -> Self {
        UnorderedResults {
            feeder: Feeder::new(pool, inputs),
        }
    }

    /// As [`MapResults::chunksize`].
    #[must_use]
    pub fn chunksize(mut self, size: usize) -> Self {
        self.feeder.chunksize = size.max(1);
        self
    }
}

impl<I: Iterator<Item = Task>> Iterator for UnorderedResults<'_, I> {
    type Item = (usize, Outcome);

    fn next(&mut self) -> Option<(usize, Outcome)> {
        self.feeder.top_up();
        self.feeder.next_arrival()
    }
}
