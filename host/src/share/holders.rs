//! Lock holders: who may hold a lock right now.
//!
//! Every running task, and every host lock acquisition, holds locks under an
//! id of its own. The register of live ids is what makes locks robust: a
//! waiter on a lock whose holder is no longer live takes it over (see
//! `wasmproc_abi::sync`). Ids are 30 bits, reused only once their holder
//! has ended.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU32, Ordering};

use wasmproc_abi::sync::HOLDER_MASK;

use crate::mutex::{Mutex, MutexGuard};

static NEXT: AtomicU32 = AtomicU32::new(1);
static LIVE: Mutex<BTreeSet<u32>> = Mutex::new(BTreeSet::new());

fn live() -> MutexGuard<'static, BTreeSet<u32>> {
    LIVE.lock()
}

/// A live holder id; dropping it ends the holder.
#[derive(Debug)]
pub(crate) struct Holder(u32);

impl Holder {
    /// A fresh id, live until the holder is dropped.
    pub(crate) fn new() -> Holder {
        let mut live = live();
        loop {
            let id = NEXT.fetch_add(1, Ordering::Relaxed) & HOLDER_MASK;
            if id != 0 && live.insert(id) {
                return Holder(id);
            }
        }
    }

    /// The id, as lock words store it.
    pub(crate) fn id(&self) -> u32 {
        self.0
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        live().remove(&self.0);
    }
}

/// Whether the holder `id` is still live.
pub(crate) fn is_live(id: u32) -> bool {
    live().contains(&id)
}
