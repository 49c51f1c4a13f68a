//! The memory limit of one store: growth past it ends the task, and the
//! peak is recorded for the outcome.

use wasmtime::ResourceLimiter;

/// Enforces the memory limit and records the peak.
pub(crate) struct MemoryGuard {
    pub(crate) limit: u64,
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
            peak: 0,
            refused: None,
        }
    }
}

impl ResourceLimiter for MemoryGuard {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let desired_bytes = desired as u64;
        if desired_bytes > self.limit {
            self.refused = Some(desired_bytes);
            // An error, not `Ok(false)`: the guest would see a failed
            // `memory.grow` and could limp on or trap for another reason;
            // the contract is that a memory limit ends the task.
            return Err(wasmtime::Error::new(MemoryLimitHit));
        }
        if maximum.is_none_or(|max| desired <= max) {
            self.peak = self.peak.max(desired_bytes);
        }
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
}
