//! The memory limit of one store: growth past it ends the task, and the
//! peak is recorded for the outcome. The limit is the task's, over all its
//! memories together (a module may have several, a component one per core
//! instance, and a GC heap is one more), not each memory's.

use wasmtime::ResourceLimiter;

/// Enforces the memory limit and records the peak.
pub(crate) struct MemoryGuard {
    pub(crate) limit: u64,
    /// The bytes of all the store's memories together (a memory's size
    /// counts from its creation, which wasmtime reports as a growth from
    /// 0, and memories live as long as the store).
    total: u64,
    /// The most `total` has been.
    pub(crate) peak: u64,
    /// The size the guest asked for past the limit, if it did.
    pub(crate) refused: Option<u64>,
}

/// The error a refused memory growth traps with.
#[derive(Debug)]
struct MemoryLimitHit;

impl std::fmt::Display for MemoryLimitHit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("memory limit exceeded")
    }
}

impl std::error::Error for MemoryLimitHit {}

impl MemoryGuard {
    pub(crate) fn new(limit: u64) -> Self {
        MemoryGuard {
            limit,
            total: 0,
            peak: 0,
            refused: None,
        }
    }
}

impl ResourceLimiter for MemoryGuard {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if maximum.is_some_and(|max| desired > max) {
            // Past the memory's own maximum: wasmtime refuses the growth
            // itself (the guest's `memory.grow` returns -1), so it adds
            // nothing.
            return Ok(true);
        }
        let growth = desired.saturating_sub(current) as u64;
        let wanted = self.total.saturating_add(growth);
        if wanted > self.limit {
            self.refused = Some(wanted);
            // An error, not `Ok(false)`: the guest would see a failed
            // `memory.grow` and could limp on or trap for another reason;
            // the contract is that a memory limit ends the task.
            return Err(wasmtime::Error::new(MemoryLimitHit));
        }
        // Counted once allowed: the growth can still fail after this (the
        // system refusing the pages), which leaves `total` above the real
        // size, never below it, so the limit holds either way.
        self.total = wanted;
        self.peak = self.peak.max(wanted);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        _desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_guard_refuses_past_the_limit_and_tracks_the_peak() {
        let mut guard = MemoryGuard::new(128 << 10);
        assert!(guard.memory_growing(0, 64 << 10, None).unwrap());
        assert!(guard.memory_growing(64 << 10, 128 << 10, None).unwrap());
        assert!(guard.memory_growing(128 << 10, 192 << 10, None).is_err());
        assert_eq!(guard.peak, 128 << 10);
        assert_eq!(guard.refused, Some(192 << 10));
    }

    #[test]
    fn memory_guard_limits_the_memories_together() {
        let mut guard = MemoryGuard::new(128 << 10);
        // Two memories created at 64 KiB each: the task holds 128 KiB.
        assert!(guard.memory_growing(0, 64 << 10, None).unwrap());
        assert!(guard.memory_growing(0, 64 << 10, None).unwrap());
        assert_eq!(guard.peak, 128 << 10);
        // Either growing by a page is past the task's limit.
        assert!(guard.memory_growing(64 << 10, 128 << 10, None).is_err());
        assert_eq!(guard.refused, Some(192 << 10));
    }

    #[test]
    fn a_growth_past_the_memorys_own_maximum_counts_nothing() {
        let mut guard = MemoryGuard::new(128 << 10);
        assert!(guard.memory_growing(0, 64 << 10, Some(64 << 10)).unwrap());
        // wasmtime refuses this one itself.
        assert!(
            guard
                .memory_growing(64 << 10, 128 << 10, Some(64 << 10))
                .unwrap()
        );
        assert!(guard.memory_growing(0, 64 << 10, None).unwrap());
        assert_eq!(guard.peak, 128 << 10);
    }
}
