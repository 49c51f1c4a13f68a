//! The server's places for connections, as permits: one is taken before
//! each accept, so that connections beyond the bound wait in the kernel's
//! backlog, and it is given back when its permit drops.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crate::cancel::CancelToken;
use crate::mutex::{Condvar, Mutex};

/// The places for connections, and how many are taken.
pub(super) struct Slots {
    used: Mutex<usize>,
    capacity: usize,
    changed: Condvar,
}

/// One place, given back when dropped. A connection holds it from before
/// its accept until its record is made.
pub(super) struct Slot {
    slots: Arc<Slots>,
}

impl Slots {
    pub(super) fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Slots {
            used: Mutex::new(0),
            capacity,
            changed: Condvar::new(),
        })
    }

    /// Takes a place, waiting for one; `None` once `stopping` is set.
    pub(super) fn take(self: &Arc<Self>, stopping: &AtomicBool) -> Option<Slot> {
        let mut used = self.used.lock();
        loop {
            if stopping.load(Ordering::SeqCst) {
                return None;
            }
            if *used < self.capacity {
                *used += 1;
                return Some(Slot {
                    slots: Arc::clone(self),
                });
            }
            used = self.changed.wait(used);
        }
    }

    /// How many places are taken.
    pub(super) fn in_use(&self) -> usize {
        *self.used.lock()
    }

    /// Wakes every waiter (a stop: `take` looks at its flag again).
    pub(super) fn wake_all(&self) {
        let _used = self.used.lock();
        self.changed.notify_all();
    }

    /// Waits until no place is taken, up to `deadline` or until `now` is
    /// cancelled; whether none is.
    pub(super) fn wait_all_free(&self, deadline: Instant, now: &CancelToken) -> bool {
        let mut used = self.used.lock();
        while *used > 0 && !now.is_cancelled() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            used = self.changed.wait_timeout(used, left);
        }
        *used == 0
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        *self.slots.used.lock() -= 1;
        self.slots.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_place_comes_back_when_its_slot_drops() {
        let slots = Slots::new(1);
        let running = AtomicBool::new(false);
        let first = slots.take(&running).expect("one place is free");
        assert_eq!(slots.in_use(), 1);
        drop(first);
        assert_eq!(slots.in_use(), 0);
        let stopping = AtomicBool::new(true);
        assert!(slots.take(&stopping).is_none(), "a stop ends the wait");
    }
}
