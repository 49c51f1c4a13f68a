//! Cancelling a task from another thread.
//!
//! Waiters are woken, never polling: async code awaits
//! [`CancelToken::cancelled`], and threads that block on channels register
//! a wake-up channel with [`CancelToken::watch`]. Every cancel also wakes
//! the channels registered with [`watch_any_cancel`] (the epoch tickers,
//! which then interrupt busy guests).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crossbeam_channel::Sender;

use crate::mutex::Mutex;

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
    /// Channels to wake when this token (or a descendant watched through
    /// it) is cancelled, by watch id.
    watchers: Mutex<Vec<(u64, Sender<()>)>>,
}

/// A registration made by [`CancelToken::watch`]; dropping it ends it.
pub(crate) struct Watch {
    id: u64,
    /// The token and its ancestors, each holding the registration.
    chain: Vec<Arc<CancelShared>>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        for shared in &self.chain {
            shared.watchers.lock().retain(|(id, _)| *id != self.id);
        }
    }
}

/// The channels every cancel in the process wakes, by registration id.
static ANY_CANCEL: Mutex<Vec<(u64, Sender<()>)>> = Mutex::new(Vec::new());

static NEXT_WATCH_ID: AtomicU64 = AtomicU64::new(0);

/// A registration made by [`watch_any_cancel`]; dropping it ends it.
pub(crate) struct AnyCancelWatch {
    id: u64,
}

impl Drop for AnyCancelWatch {
    fn drop(&mut self) {
        ANY_CANCEL.lock().retain(|(id, _)| *id != self.id);
    }
}

/// Sends `()` on `wake` whenever any token in the process is cancelled,
/// until the returned registration is dropped. For the epoch ticker: a
/// guest busy in its own code sees its cancel only at the epoch's next
/// tick, and the ticker does not tick unless something needs it to.
pub(crate) fn watch_any_cancel(wake: &Sender<()>) -> AnyCancelWatch {
    let id = NEXT_WATCH_ID.fetch_add(1, Ordering::Relaxed);
    ANY_CANCEL.lock().push((id, wake.clone()));
    AnyCancelWatch { id }
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
            for (_, wake) in shared.watchers.lock().iter() {
                // A full channel already holds a wake-up; a closed one has
                // nobody left to wake.
                let _ = wake.try_send(());
            }
            // After the flag: whoever is woken sees the token cancelled.
            for (_, wake) in ANY_CANCEL.lock().iter() {
                let _ = wake.try_send(());
            }
        }
    }

    /// Whether `other` is this token or a clone of it.
    pub(crate) fn same_as(&self, other: &CancelToken) -> bool {
        match (&self.shared, &other.shared) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        }
    }

    /// Sends `()` on `wake` when this token or an ancestor is cancelled (at
    /// once if it already is), until the returned registration is dropped.
    /// For threads that block on channels: they add `wake`'s receiver to
    /// their select instead of polling the token.
    pub(crate) fn watch(&self, wake: &Sender<()>) -> Option<Watch> {
        let shared = self.shared.as_ref()?;
        let id = NEXT_WATCH_ID.fetch_add(1, Ordering::Relaxed);
        let mut chain = Vec::new();
        let mut link = Some(shared);
        while let Some(shared) = link {
            shared.watchers.lock().push((id, wake.clone()));
            chain.push(Arc::clone(shared));
            link = shared.parent.as_ref();
        }
        // Checked after registering: a cancel in between is seen here, or
        // it found the registration; either way the wake-up is sent.
        if self.is_cancelled() {
            let _ = wake.try_send(());
        }
        Some(Watch { id, chain })
    }

    /// Whether this token or one it is a child of was cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.shared
            .as_ref()
            .is_some_and(|shared| shared.is_cancelled())
    }

    /// Resolves once the token (or an ancestor) is cancelled: for async
    /// code that waits on a cancel (any executor).
    pub async fn cancelled(&self) {
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
    fn a_watch_wakes_on_its_own_or_a_parent_cancel_until_dropped() {
        let parent = CancelToken::new();
        let child = parent.child();
        let (wake, woken) = crossbeam_channel::bounded(1);
        let watch = child.watch(&wake).expect("a cancellable token");
        assert!(woken.try_recv().is_err());
        parent.cancel();
        assert!(
            woken.try_recv().is_ok(),
            "the parent's cancel reaches the child's watcher"
        );

        let other = CancelToken::new();
        let watch_other = other.watch(&wake);
        drop(watch_other);
        other.cancel();
        assert!(woken.try_recv().is_err(), "a dropped watch wakes nobody");
        drop(watch);

        let (late_wake, late) = crossbeam_channel::bounded(1);
        let _already = parent.child().watch(&late_wake);
        assert!(
            late.try_recv().is_ok(),
            "watching a cancelled token wakes at once"
        );
        assert!(CancelToken::never().watch(&late_wake).is_none());
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

    #[test]
    fn every_cancel_wakes_the_watchers_of_any_cancel_until_dropped() {
        let (wake, woken) = crossbeam_channel::bounded(1);
        let watch = watch_any_cancel(&wake);
        CancelToken::new().child().cancel();
        assert!(woken.try_recv().is_ok());
        drop(watch);
        // Other tests' cancels may still be on their way; none after this.
        let _ = woken.try_recv();
        CancelToken::new().cancel();
        assert!(woken.try_recv().is_err());
    }
}
