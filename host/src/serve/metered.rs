//! What a connection moved: the bytes each way, as the store reading and
//! writing its socket reports them (`Meter`), and when bytes last moved
//! (for the first-byte and idle timeouts).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::task::Meter;

/// What one connection moved, and when it last moved anything. Shared by
/// the task's store (through `Meter`) and the server.
pub(super) struct Traffic {
    /// Bytes read from the peer (the guest's stdin).
    pub(super) bytes_in: AtomicU64,
    /// Bytes written to the peer (the guest's stdout).
    pub(super) bytes_out: AtomicU64,
    /// When the connection was accepted.
    pub(super) opened: Instant,
    /// Microseconds after `opened` when bytes last moved either way.
    last_moved: AtomicU64,
}

impl Traffic {
    pub(super) fn new() -> Arc<Traffic> {
        Arc::new(Traffic {
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            opened: Instant::now(),
            last_moved: AtomicU64::new(0),
        })
    }

    /// When bytes last moved either way (or the connection opened).
    pub(super) fn last_moved(&self) -> Instant {
        self.opened + Duration::from_micros(self.last_moved.load(Ordering::Relaxed))
    }

    /// Whether no byte has moved either way yet.
    pub(super) fn silent(&self) -> bool {
        self.bytes_in.load(Ordering::Relaxed) == 0 && self.bytes_out.load(Ordering::Relaxed) == 0
    }

    fn moved(&self, counter: &AtomicU64, bytes: usize) {
        counter.fetch_add(bytes as u64, Ordering::Relaxed);
        let since = u64::try_from(self.opened.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.last_moved.fetch_max(since, Ordering::Relaxed);
    }
}

impl Meter for Traffic {
    fn read(&self, n: usize) {
        self.moved(&self.bytes_in, n);
    }

    fn wrote(&self, n: usize) {
        self.moved(&self.bytes_out, n);
    }
}
