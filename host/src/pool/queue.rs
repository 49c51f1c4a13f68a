//! What a pool's queue carries (tasks for one worker to run back to back,
//! and where each one's outcome goes), and who waits on it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crossbeam_channel::Sender;

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
}

/// Where one task's outcome goes.
pub(crate) enum Reply {
    /// To the task's [`TaskHandle`](super::TaskHandle).
    Handle(Arc<HandleState>),
    /// To a map's stream, with the task's input index.
    Stream {
        index: usize,
        results: Sender<(usize, Outcome)>,
    },
    /// To a function, called on the thread that ends the task (a server's
    /// bookkeeping: it must be quick).
    Call(Box<dyn FnOnce(Outcome) + Send>),
}

impl Reply {
    /// Delivers the task's one outcome.
    pub(crate) fn send(self, outcome: Outcome) {
        match self {
            Reply::Handle(state) => state.finish(outcome),
            // A dropped receiver means nobody wants the result any more.
            Reply::Stream { index, results } => {
                let _ = results.send((index, outcome));
            }
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
        self.0.fetch_add(1, Ordering::SeqCst);
        let got = wait();
        self.0.fetch_sub(1, Ordering::SeqCst);
        got
    }

    pub(crate) fn any(&self) -> bool {
        self.0.load(Ordering::SeqCst) > 0
    }
}
