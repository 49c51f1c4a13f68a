//! The handle of one submitted task.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::cancel::CancelToken;
use crate::mutex::{Condvar, Mutex, MutexGuard};
use crate::outcome::Outcome;
use crate::status::ExitStatus;

/// A submitted task: wait for its outcome, or cancel it.
///
/// The outcome is set exactly once; every accessor returns that same
/// outcome. Dropping the handle does not cancel the task.
///
/// In async code, await it: a `TaskHandle` is a [`Future`] of the task's
/// [`Outcome`] (any executor; nothing blocks). [`on_done`](Self::on_done)
/// (or [`Pool::submit_with_callback`](crate::Pool::submit_with_callback))
/// calls a function with the outcome instead, as `apply_async`'s callbacks
/// do.
///
/// ```
/// # use wasmproc::{Pool, Runtime, Task};
/// # let runtime = Runtime::builder().no_cache().build()?;
/// # let module = runtime.load_bytes("t.wat", br#"(module
/// #   (import "wasmproc_v1" "input_len" (func $len (result i32)))
/// #   (import "wasmproc_v1" "input_read" (func $read (param i32)))
/// #   (import "wasmproc_v1" "output_write" (func $write (param i32 i32)))
/// #   (memory (export "memory") 1)
/// #   (func (export "wasmproc_task:echo") (result i32)
/// #     (call $read (i32.const 0)) (call $write (i32.const 0) (call $len)) (i32.const 0)))"#)?;
/// let pool = Pool::builder(&module).workers(2).build()?;
/// let handle = pool.submit(Task::call("echo", &7)?)?;
/// // In an async fn: `let outcome = handle.await;`
/// let (done, finished) = std::sync::mpsc::channel();
/// handle.on_done(move |outcome| done.send(outcome.decode::<u32>().unwrap()).unwrap());
/// assert_eq!(finished.recv().unwrap(), 7);
/// # Ok::<(), wasmproc::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct TaskHandle {
    state: Arc<HandleState>,
}

#[derive(Debug)]
pub(crate) struct HandleState {
    outcome: OnceLock<Outcome>,
    /// Who waits other than on `done`: futures and callbacks.
    lock: Mutex<Waiting>,
    done: Condvar,
    cancel: CancelToken,
    /// For a task in this process's pool queue: whether a worker has taken
    /// it (`None` for a task run elsewhere, whose start is not known here).
    taken: Option<AtomicBool>,
}

/// A callback for the outcome ([`TaskHandle::on_done`]).
type Callback = Box<dyn FnOnce(&Outcome) + Send>;

#[derive(Default)]
struct Waiting {
    wakers: Vec<Waker>,
    callbacks: Vec<Callback>,
}

impl std::fmt::Debug for Waiting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Waiting")
            .field("wakers", &self.wakers.len())
            .field("callbacks", &self.callbacks.len())
            .finish()
    }
}

impl HandleState {
    pub(crate) fn new(cancel: CancelToken) -> Self {
        HandleState {
            outcome: OnceLock::new(),
            lock: Mutex::new(Waiting::default()),
            done: Condvar::new(),
            cancel,
            taken: None,
        }
    }

    /// The state of a task queued in a pool of this process: cancelled
    /// before a worker takes it, it ends at once ([`TaskHandle::cancel`]).
    pub(crate) fn queued(cancel: CancelToken) -> Self {
        HandleState {
            taken: Some(AtomicBool::new(false)),
            ..HandleState::new(cancel)
        }
    }

    /// A worker has taken the task from the queue: from now on a cancel
    /// ends it where it runs.
    pub(crate) fn mark_taken(&self) {
        if let Some(taken) = &self.taken {
            taken.store(true, Ordering::SeqCst);
        }
    }

    fn waiting(&self) -> MutexGuard<'_, Waiting> {
        self.lock.lock()
    }

    pub(crate) fn finish(&self, outcome: Outcome) {
        if self.outcome.set(outcome).is_err() {
            return;
        }
        // Taking the lock orders this notification after any waiter's check
        // of `outcome`, so no waiter sleeps through it (and no future or
        // callback registers after the list is taken).
        let waiting = std::mem::take(&mut *self.waiting());
        self.done.notify_all();
        for waker in waiting.wakers {
            waker.wake();
        }
        let outcome = self.outcome.get().expect("just set");
        for callback in waiting.callbacks {
            callback(outcome);
        }
    }
}

impl TaskHandle {
    pub(crate) fn new(state: Arc<HandleState>) -> Self {
        TaskHandle { state }
    }

    /// A handle for a task that runs elsewhere, and the [`Completion`]
    /// through which its back end ends it (see [`Executor`](crate::Executor)).
    pub fn pending() -> (TaskHandle, Completion) {
        let state = Arc::new(HandleState::new(CancelToken::new()));
        let handle = TaskHandle {
            state: Arc::clone(&state),
        };
        (handle, Completion { state })
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
        let state = &*self.state;
        state.cancel.cancel();
        // Still queued: it ends now, so that its waiters need not wait for
        // a worker to come free. A worker that takes it after the cancel
        // (which it then sees: the cancel is stored before `taken` is read,
        // and a worker stores `taken` before it reads the cancel) runs
        // nothing, and its outcome comes second and is dropped.
        if state
            .taken
            .as_ref()
            .is_some_and(|taken| !taken.load(Ordering::SeqCst))
        {
            state.finish(Outcome::not_run(
                ExitStatus::Cancelled,
                "the task was cancelled before it started",
            ));
        }
    }

    /// Calls `callback` with the task's outcome once it has ended: on the
    /// pool thread that ends it (keep it short), or at once on this thread
    /// if it already has. Successes and failures alike come here: look at
    /// [`Outcome::status`] (`apply_async`'s `callback` and `error_callback`
    /// in one).
    pub fn on_done(&self, callback: impl FnOnce(&Outcome) + Send + 'static) {
        let state = &*self.state;
        {
            let mut waiting = state.waiting();
            if state.outcome.get().is_none() {
                waiting.callbacks.push(Box::new(callback));
                return;
            }
        }
        callback(state.outcome.get().expect("checked"));
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
        let mut guard = state.waiting();
        loop {
            if let Some(outcome) = state.outcome.get() {
                return Some(outcome);
            }
            guard = match deadline {
                None => state.done.wait(guard),
                Some(deadline) => {
                    let left = deadline.checked_duration_since(Instant::now())?;
                    state.done.wait_timeout(guard, left)
                }
            };
        }
    }
}

/// The task's outcome, without blocking a thread: `handle.await`.
/// The side of a [`TaskHandle`] that ends it, held by a back end that runs
/// the task elsewhere (a cluster): it sets the outcome once, and it sees the
/// handle's cancel. Dropped without an outcome, it ends the task
/// `WorkerLost`: no task is left waiting forever.
#[derive(Debug)]
pub struct Completion {
    state: Arc<HandleState>,
}

impl Completion {
    /// Ends the task with `outcome`, waking whoever waits on its handle.
    pub fn finish(self, outcome: Outcome) {
        self.state.finish(outcome);
    }

    /// Cancelled when the handle is ([`TaskHandle::cancel`]): the back end
    /// watches it and withdraws the task.
    pub fn cancel_token(&self) -> &CancelToken {
        &self.state.cancel
    }
}

impl Drop for Completion {
    fn drop(&mut self) {
        if self.state.outcome.get().is_none() {
            self.state.finish(Outcome::not_run(
                crate::status::ExitStatus::WorkerLost,
                "the back end running the task dropped it without an outcome",
            ));
        }
    }
}

impl Future for TaskHandle {
    type Output = Outcome;

    fn poll(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Outcome> {
        let state = &*self.state;
        if let Some(outcome) = state.outcome.get() {
            return Poll::Ready(outcome.clone());
        }
        let mut waiting = state.waiting();
        // Checked again under the lock: `finish` takes the wakers under it.
        if let Some(outcome) = state.outcome.get() {
            return Poll::Ready(outcome.clone());
        }
        if !waiting.wakers.iter().any(|w| w.will_wake(context.waker())) {
            waiting.wakers.push(context.waker().clone());
        }
        Poll::Pending
    }
}
