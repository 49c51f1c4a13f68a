//! The handle of one submitted task.

use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::cancel::CancelToken;
use crate::outcome::Outcome;

/// A submitted task: wait for its outcome, or cancel it.
///
/// The outcome is set exactly once; every accessor returns that same
/// outcome. Dropping the handle does not cancel the task.
#[derive(Debug, Clone)]
pub struct TaskHandle {
    state: Arc<HandleState>,
}

#[derive(Debug)]
pub(crate) struct HandleState {
    outcome: OnceLock<Outcome>,
    lock: Mutex<()>,
    done: Condvar,
    cancel: CancelToken,
}

impl HandleState {
    pub(crate) fn new(cancel: CancelToken) -> Self {
        HandleState {
            outcome: OnceLock::new(),
            lock: Mutex::new(()),
            done: Condvar::new(),
            cancel,
        }
    }

    pub(crate) fn finish(&self, outcome: Outcome) {
        let _ = self.outcome.set(outcome);
        // Taking the lock orders this notification after any waiter's check
        // of `outcome`, so no waiter sleeps through it.
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        self.done.notify_all();
    }
}

impl TaskHandle {
    pub(crate) fn new(state: Arc<HandleState>) -> Self {
        TaskHandle { state }
    }

    /// Blocks until the task has ended, and returns its outcome.
    pub fn wait(&self) -> &Outcome {
        loop {
            if let Some(outcome) = self.wait_until(None) {
                return outcome;
            }
        }
    }

    /// Blocks for at most `timeout`; `None` if the task is still queued or
    /// running then. The task itself goes on: this only stops the waiting
    /// (cancel it, or give it a time limit, to end it).
    pub fn wait_timeout(&self, timeout: Duration) -> Option<&Outcome> {
        self.wait_until(Instant::now().checked_add(timeout))
    }

    /// The outcome, if the task has ended.
    pub fn try_get(&self) -> Option<&Outcome> {
        self.state.outcome.get()
    }

    /// Whether the task has ended.
    pub fn is_finished(&self) -> bool {
        self.state.outcome.get().is_some()
    }

    /// Cancels the task: if it is queued it never starts, if it is running
    /// it ends within milliseconds, also when blocked in a host call. Either
    /// way its outcome is `Cancelled` (unless it ended first).
    pub fn cancel(&self) {
        self.state.cancel.cancel();
    }

    /// Waits for the task and takes its outcome.
    pub fn into_outcome(self) -> Outcome {
        self.wait();
        match Arc::try_unwrap(self.state) {
            Ok(state) => state.outcome.into_inner().expect("waited for"),
            // A clone of the handle (or the worker, for an instant) still
            // holds the state.
            Err(shared) => shared.outcome.get().expect("waited for").clone(),
        }
    }

    fn wait_until(&self, deadline: Option<Instant>) -> Option<&Outcome> {
        let state = &*self.state;
        let mut guard = state.lock.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(outcome) = state.outcome.get() {
                return Some(outcome);
            }
            guard = match deadline {
                None => state.done.wait(guard).unwrap_or_else(|p| p.into_inner()),
                Some(deadline) => {
                    let left = deadline.checked_duration_since(Instant::now())?;
                    state
                        .done
                        .wait_timeout(guard, left)
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
            };
        }
    }
}
