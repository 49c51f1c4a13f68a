//! What a pool's queue carries (tasks for one worker to run back to back,
//! and where each one's outcome goes), and who waits on it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::handle::HandleState;
use crate::cancel::CancelToken;
use crate::outcome::Outcome;
use crate::task::Task;

/// Tasks for one worker to run back to back, with where their outcomes go.
pub(crate) struct Job {
    pub(crate) tasks: Vec<Task>,
    /// One per task, in the same order.
    pub(crate) replies: Vec<Reply>,
    pub(crate) cancel: CancelToken,
    /// How many consecutive tasks share one instance (a map's chunk size);
    /// 1: each task gets a fresh one. A job of several chunks is a batch:
    /// one trip through the queue for many short tasks.
    pub(crate) chunk: usize,
}

impl Job {
    /// Marks the job's tasks taken by a worker (before it looks at their
    /// cancellation): a cancel no longer ends them at once, but where they
    /// run.
    pub(crate) fn taken(self) -> Self {
        for reply in &self.replies {
            if let Reply::Handle(state) = reply {
                state.mark_taken();
            }
        }
        self
    }

    /// A job of one task.
    pub(crate) fn single(task: Task, reply: Reply, cancel: CancelToken) -> Self {
        Job {
            tasks: vec![task],
            replies: vec![reply],
            cancel,
            chunk: 1,
        }
    }

    /// When every task's outcome goes to one map's sink (a map's batch):
    /// the sink and each task's index, so that a worker can deliver the
    /// outcomes together.
    pub(crate) fn one_sink(&self) -> Option<(Arc<dyn Sink>, Vec<usize>)> {
        let mut shared: Option<&Arc<dyn Sink>> = None;
        let mut indexes = Vec::with_capacity(self.replies.len());
        for reply in &self.replies {
            let Reply::Stream { index, sink } = reply else {
                return None;
            };
            if shared.is_some_and(|shared| !Arc::ptr_eq(shared, sink)) {
                return None;
            }
            shared = Some(sink);
            indexes.push(*index);
        }
        Some((Arc::clone(shared?), indexes))
    }
}

/// Where a map's outcomes go: delivered on the pool thread that ends each
/// task, so that what the map does with an outcome (its transform) runs
/// there, in parallel, not on the thread that reads the results.
pub(crate) trait Sink: Send + Sync {
    /// Delivers the outcome of the map's task `index`.
    fn deliver(&self, index: usize, outcome: Outcome);

    /// Delivers several outcomes with their indexes at once: one wake-up
    /// of the map's reader instead of one per task.
    fn deliver_all(&self, outcomes: Vec<(usize, Outcome)>);
}

/// Where one task's outcome goes.
pub(crate) enum Reply {
    /// To the task's [`TaskHandle`](super::TaskHandle).
    Handle(Arc<HandleState>),
    /// To a map's stream, with the task's input index.
    Stream { index: usize, sink: Arc<dyn Sink> },
    /// To a function, called on the thread that ends the task (a server's
    /// bookkeeping: it must be quick).
    Call(Box<dyn FnOnce(Outcome) + Send>),
}

impl Reply {
    /// Delivers the task's one outcome.
    pub(crate) fn send(self, outcome: Outcome) {
        match self {
            Reply::Handle(state) => state.finish(outcome),
            Reply::Stream { index, sink } => sink.deliver(index, outcome),
            Reply::Call(then) => then(outcome),
        }
    }
}

/// How many workers wait for a job.
#[derive(Clone, Default)]
pub(crate) struct Idle(Arc<AtomicUsize>);

impl Idle {
    /// Counts this worker as idle while `wait` runs.
    pub(crate) fn waiting<T>(&self, wait: impl FnOnce() -> T) -> T {
        let _idle = self.mark();
        wait()
    }

    /// Counts this worker as idle until the mark drops.
    pub(crate) fn mark(&self) -> IdleMark {
        self.0.fetch_add(1, Ordering::SeqCst);
        IdleMark(Arc::clone(&self.0))
    }

    pub(crate) fn any(&self) -> bool {
        self.0.load(Ordering::SeqCst) > 0
    }
}

/// One worker counted idle, until dropped.
pub(crate) struct IdleMark(Arc<AtomicUsize>);

impl Drop for IdleMark {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
