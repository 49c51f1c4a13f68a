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
    /// A token cancelled with its parent (a pool's shutdown cancels each
    /// task's own token this way).
    parent: Option<Arc<CancelShared>>,
}

impl CancelShared {
    fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
            || self.parent.as_ref().is_some_and(|p| p.is_cancelled())
    }

    /// Resolves once this token or an ancestor is cancelled.
    async fn cancelled(&self) {
        loop {
            // Register interest before checking the flags, so a `cancel`
            // between the check and the wait is not missed.
            let own = self.notify.notified();
            let parent = async {
                match &self.parent {
                    Some(parent) => Box::pin(parent.cancelled()).await,
                    None => std::future::pending().await,
                }
            };
            if self.is_cancelled() {
                return;
            }
            tokio::select! {
                () = own => {}
                () = parent => return,
            }
        }
    }
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

    /// A new token that is cancelled when this one is, and can also be
    /// cancelled on its own without touching this one.
    pub fn child(&self) -> CancelToken {
        CancelToken {
            shared: Some(Arc::new(CancelShared {
                parent: self.shared.clone(),
                ..CancelShared::default()
            })),
        }
    }

    /// Cancels every task that runs with this token, a clone or a child of
    /// it.
    pub fn cancel(&self) {
        if let Some(shared) = &self.shared {
            shared.cancelled.store(true, Ordering::SeqCst);
            shared.notify.notify_waiters();
        }
    }

    /// Whether this token or one it is a child of was cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.shared
            .as_ref()
            .is_some_and(|shared| shared.is_cancelled())
    }

    /// Resolves once the token is cancelled; never, for [`never`](Self::never).
    pub(crate) async fn cancelled(&self) {
        match &self.shared {
            Some(shared) => shared.cancelled().await,
            None => std::future::pending().await,
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

    #[test]
    fn a_child_follows_its_parent_but_not_the_reverse() {
        let parent = CancelToken::new();
        let child = parent.child();
        let sibling = parent.child();
        child.cancel();
        assert!(child.is_cancelled());
        assert!(!parent.is_cancelled() && !sibling.is_cancelled());
        parent.cancel();
        assert!(sibling.is_cancelled());
    }

    #[test]
    fn waiting_wakes_on_a_parent_cancel() {
        let parent = CancelToken::new();
        let child = parent.child();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let cancelling = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            parent.cancel();
        });
        runtime.block_on(child.cancelled());
        cancelling.join().unwrap();
        assert!(child.is_cancelled());
    }
}
