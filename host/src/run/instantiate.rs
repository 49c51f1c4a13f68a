//! Instantiation that waits for the instance pool's slots instead of
//! failing when they are momentarily all taken.
//!
//! A task holds an instance permit before it gets here, so the pool has an
//! instance place for it; its memories, tables, GC heap and fiber stack are
//! slots of their own, which can still be short for a moment:
//!
//! - when a wasmtime module is dropped, the pool takes each memory slot
//!   that module last used back out for as long as it takes to unmap the
//!   module's memory image from it (with a large image, a while);
//! - a slot freed by an instance that just ended is reset (its pages
//!   decommitted) before it is free again;
//! - an instance may use more than one memory slot (several memories, or
//!   a GC heap, itself a memory), and the pool counts about two per place
//!   (see `engine::engine_config`).
//!
//! wasmtime reports each as a `PoolConcurrencyLimitError`; a task then
//! waits and tries again, never failing for it. Other errors (a module the
//! pool can never hold, a memory limit) end the task as before.

use std::time::Duration;

use wasmtime::{Instance, InstancePre, PoolConcurrencyLimitError, Store};

use crate::store::HostState;

/// The first wait after the pool refused a slot.
const FIRST_WAIT: Duration = Duration::from_millis(1);

/// The longest wait between two tries: short next to a task, so a freed
/// slot is taken soon.
const LONGEST_WAIT: Duration = Duration::from_millis(50);

/// Instantiates `pre` in `store`, waiting with backoff while the pool is
/// momentarily out of slots. The caller races this future against the
/// task's deadline and its cancel signal (`driver::race`), which bound the
/// wait: a task that times out or is cancelled while waiting ends so.
pub(super) async fn instantiate(
    pre: &InstancePre<HostState>,
    store: &mut Store<HostState>,
) -> wasmtime::Result<Instance> {
    let mut slots = SlotWait::default();
    loop {
        match pre.instantiate_async(&mut *store).await {
            Err(error) => slots.retry_after(error).await?,
            instance => return instance,
        }
    }
}

/// Instantiates the component `pre` in `store`, waiting as [`instantiate`]
/// does: a component's core instances, memories and tables come from the
/// same pool.
pub(super) async fn instantiate_component(
    pre: &wasmtime::component::InstancePre<HostState>,
    store: &mut Store<HostState>,
) -> wasmtime::Result<wasmtime::component::Instance> {
    let mut slots = SlotWait::default();
    loop {
        match pre.instantiate_async(&mut *store).await {
            Err(error) => slots.retry_after(error).await?,
            instance => return instance,
        }
    }
}

/// The wait between tries while the pool is out of slots: doubling from
/// [`FIRST_WAIT`] up to [`LONGEST_WAIT`].
struct SlotWait {
    next: Duration,
}

impl Default for SlotWait {
    fn default() -> Self {
        SlotWait { next: FIRST_WAIT }
    }
}

impl SlotWait {
    /// Waits before the next try when `error` is the pool being momentarily
    /// out of slots; any other error is given back, ending the tries.
    async fn retry_after(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        if error.downcast_ref::<PoolConcurrencyLimitError>().is_none() {
            return Err(error);
        }
        tokio::time::sleep(self.next).await;
        self.next = (self.next * 2).min(LONGEST_WAIT);
        Ok(())
    }
}
