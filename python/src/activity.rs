//! What a pool is running for Python: its maps and submitted tasks not yet
//! ended, so that an abandoned map can cancel its tasks at once.
//!
//! The library cancels a map's tasks when its results are dropped, but the
//! results live on the map's collector thread, which waits for the map's
//! next outcome: with long tasks in flight, an abandoned `imap` would keep
//! the workers busy until one of them ended. The library's public cancel
//! for a whole pool, [`Pool::cancel_all`], ends them at once, and is exactly
//! right when that map is the only work in the pool. Otherwise it would end
//! others' tasks too, so the map falls back to the library's cancel on its
//! next outcome.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use wasmproc::Pool;

/// The live work of one pool, by id.
#[derive(Default)]
pub(crate) struct Activity {
    live: Mutex<BTreeSet<u64>>,
    next_id: AtomicU64,
}

impl Activity {
    /// Registers new work; it is live until the returned [`Busy`] drops.
    pub(crate) fn begin(self: &Arc<Self>) -> Busy {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.live().insert(id);
        Busy {
            activity: Arc::clone(self),
            id,
        }
    }

    /// Cancels every task of `pool` if the work `id` is all that is live
    /// (the check and the cancel under one lock: work that begins
    /// meanwhile waits, and then runs under the pool's new cancel token).
    /// Returns whether it cancelled.
    pub(crate) fn cancel_if_alone(&self, id: u64, pool: &Pool) -> bool {
        let live = self.live();
        let alone = live.len() == 1 && live.contains(&id);
        if alone {
            pool.cancel_all();
        }
        alone
    }

    fn live(&self) -> MutexGuard<'_, BTreeSet<u64>> {
        // The set stays consistent whatever panicked while holding it.
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One piece of live work (a map, a submitted task); dropping it ends it.
pub(crate) struct Busy {
    activity: Arc<Activity>,
    id: u64,
}

impl Busy {
    /// The work's id, for [`Activity::cancel_if_alone`].
    pub(crate) fn id(&self) -> u64 {
        self.id
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.activity.live().remove(&self.id);
    }
}
