//! Cancelling a task from another thread.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Ends a task early, from any thread: a task that has not started never
/// starts, and a running one ends with `Cancelled` within about a
/// millisecond, also while it is blocked in a host call (sleeping, reading
/// stdin). Clones share the signal.
///
/// ```no_run
/// use std::time::Duration;
/// use wasmproc::{CancelToken, ExitStatus, Runtime, Task};
///
/// let module = Runtime::new()?.load("worker.wasm")?;
/// let token = CancelToken::new();
/// let canceller = token.clone();
/// std::thread::spawn(move || {
///     std::thread::sleep(Duration::from_millis(100));
///     canceller.cancel();
/// });
/// let outcome = module.run_with(&Task::command(), &token);
/// assert_eq!(outcome.status, ExitStatus::Cancelled);
/// # Ok::<(), wasmproc::Error>(())
/// ```
#[derive(Clone, Default)]
pub struct CancelToken {
    shared: Option<Arc<CancelShared>>,
}

#[derive(Default)]
struct CancelShared {
    cancelled: AtomicBool,
    notify: tokio::sync::Notify,
}

impl std::fmt::Debug for CancelToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CancelToken")
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

impl CancelToken {
    /// A token that can be cancelled.
    pub fn new() -> Self {
        CancelToken {
            shared: Some(Arc::default()),
        }
    }

    /// A token that never fires and costs nothing to check.
    pub(crate) fn never() -> Self {
        CancelToken { shared: None }
    }

    /// Cancels every task that runs with this token (or a clone of it).
    pub fn cancel(&self) {
        if let Some(shared) = &self.shared {
            shared.cancelled.store(true, Ordering::SeqCst);
            shared.notify.notify_waiters();
        }
    }

    /// Whether [`cancel`](CancelToken::cancel) was called.
    pub fn is_cancelled(&self) -> bool {
        self.shared
            .as_ref()
            .is_some_and(|shared| shared.cancelled.load(Ordering::SeqCst))
    }

    /// Resolves once the token is cancelled; never, for [`never`](Self::never).
    pub(crate) async fn cancelled(&self) {
        let Some(shared) = &self.shared else {
            return std::future::pending().await;
        };
        loop {
            // Register interest before checking the flag, so a `cancel`
            // between the check and the wait is not missed.
            let notified = shared.notify.notified();
            if shared.cancelled.load(Ordering::SeqCst) {
                return;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_the_signal() {
        let token = CancelToken::new();
        let clone = token.clone();
        assert!(!clone.is_cancelled());
        token.cancel();
        assert!(clone.is_cancelled());
        assert!(!CancelToken::never().is_cancelled());
    }
}
