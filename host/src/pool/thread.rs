//! Thread workers: each pool thread runs the jobs it takes from the queue
//! in this process, each task in a fresh instance (or a chunk in one),
//! delivering each outcome as soon as its chunk ends.

use std::time::Duration;

use crossbeam_channel::Receiver;

use super::queue::{Idle, Job, Sink};

use crate::module::Module;
use crate::run::run_chunk;

/// Serves jobs until the queue closes.
pub(super) fn work(module: &Module, queue: &Receiver<Job>, idle: &Idle) {
    while let Ok(job) = idle.waiting(|| queue.recv()).map(Job::taken) {
        if let Some((sink, indexes)) = job.one_sink() {
            run_for_sink(module, &job, &*sink, &indexes);
            continue;
        }
        let mut replies = job.replies.into_iter();
        for chunk in job.tasks.chunks(job.chunk.max(1)) {
            let outcomes = run_chunk(module, chunk, &job.cancel);
            // The replies go last in the zip: it stops at the first side
            // that ends, and a reply taken then would be lost.
            for ((outcome, task), reply) in outcomes.into_iter().zip(chunk).zip(replies.by_ref()) {
                task.hang_up();
                reply.send(outcome);
            }
        }
    }
}

/// How long a map's finished outcomes may wait in a worker to be delivered
/// together: a fraction of a batch's work, and far less than a person
/// watching results would notice.
const DELIVER_WITHIN: Duration = Duration::from_micros(500);

/// Runs a map's batch, delivering its outcomes in groups rather than one
/// by one: each delivery may wake the map's reader, which for tiny tasks
/// costs more than the task.
fn run_for_sink(module: &Module, job: &Job, sink: &dyn Sink, indexes: &[usize]) {
    let mut indexes = indexes.iter();
    let mut done = Vec::with_capacity(indexes.len());
    // The time the outcomes held here took to make: each outcome's own
    // duration, so that the clock is not read again per task.
    let mut held = Duration::ZERO;
    for chunk in job.tasks.chunks(job.chunk.max(1)) {
        let outcomes = run_chunk(module, chunk, &job.cancel);
        for ((outcome, task), index) in outcomes.into_iter().zip(chunk).zip(indexes.by_ref()) {
            task.hang_up();
            held += outcome.duration;
            done.push((*index, outcome));
        }
        if held >= DELIVER_WITHIN {
            sink.deliver_all(std::mem::take(&mut done));
            held = Duration::ZERO;
        }
    }
    if !done.is_empty() {
        sink.deliver_all(done);
    }
}
