//! Thread workers: each pool thread runs the jobs it takes from the queue
//! in this process, each task in a fresh instance (or a chunk in one).

use crossbeam_channel::Receiver;

use super::queue::{Idle, Job};

use crate::module::Module;
use crate::run::run_chunk;

/// Serves jobs until the queue closes.
pub(super) fn serve(module: &Module, queue: &Receiver<Job>, idle: &Idle) {
    while let Ok(job) = idle.waiting(|| queue.recv()) {
        let outcomes = run_chunk(module, &job.tasks, &job.cancel);
        for ((reply, outcome), task) in job.replies.into_iter().zip(outcomes).zip(&job.tasks) {
            task.hang_up();
            reply.send(outcome);
        }
    }
}
