//! Places in an engine's instance pool, as permits of a semaphore: runs
//! beyond the pool's size wait for a place instead of failing to
//! instantiate.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The free places of one engine's instance pool.
pub(crate) struct InstancePermits {
    free: Arc<Semaphore>,
}

/// One place in the instance pool, given back when dropped. Keep it for as
/// long as the instance (its store) lives.
pub(crate) type InstancePermit = OwnedSemaphorePermit;

impl InstancePermits {
    pub(crate) fn new(count: u32) -> Self {
        InstancePermits {
            free: Arc::new(Semaphore::new(count as usize)),
        }
    }

    /// A free place now, without waiting.
    pub(crate) fn try_acquire(&self) -> Option<InstancePermit> {
        Arc::clone(&self.free).try_acquire_owned().ok()
    }

    /// Waits for a free place. Callers race this against their cancel
    /// signal, so a cancelled task stops waiting at once.
    pub(crate) async fn acquire(&self) -> InstancePermit {
        Arc::clone(&self.free)
            .acquire_owned()
            .await
            .expect("the semaphore is never closed")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_place_comes_back_when_its_permit_drops() {
        let permits = InstancePermits::new(1);
        let first = permits.try_acquire().expect("one place is free");
        assert!(permits.try_acquire().is_none(), "the only place is taken");
        drop(first);
        assert!(permits.try_acquire().is_some());
    }
}
