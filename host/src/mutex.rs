//! A mutex and a condition variable that ignore poisoning (tokio's
//! `loom/std/mutex.rs` pattern), so that no call site repeats
//! `lock().unwrap_or_else(|p| p.into_inner())`.
//!
//! Ignoring poison is sound here because every lock in the crate guards
//! bookkeeping (lists, counters, maps, a writer), and each change under
//! a lock is one push, pop, insert, flag or write: a holder that panics
//! leaves the data as valid as before or after that one change, never
//! half-made. Guest code never runs under these locks (ARCHITECTURE.md:
//! "No lock is held across a guest call"), so a guest cannot be the panic
//! either. Propagating the poison would instead turn one panic (say, in a
//! caller's `on_connection` callback) into a panic in every later thread
//! that takes the lock: a pool or server that stops working.

use std::time::Duration;

pub(crate) use std::sync::MutexGuard;

/// A mutual-exclusion lock whose [`lock`](Mutex::lock) ignores poisoning.
#[derive(Debug, Default)]
pub(crate) struct Mutex<T: ?Sized>(std::sync::Mutex<T>);

impl<T> Mutex<T> {
    pub(crate) const fn new(value: T) -> Self {
        Mutex(std::sync::Mutex::new(value))
    }
}

impl<T: ?Sized> Mutex<T> {
    /// Locks, waiting for the lock; a poisoned lock is taken as it is
    /// (see the module's docs for why that is sound).
    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        lock(&self.0)
    }
}

/// Locks a standard mutex the same way, for the few that public types hold
/// (a caller's writer or reader, a server's socket).
pub(crate) fn lock<T: ?Sized>(mutex: &std::sync::Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A condition variable over a [`Mutex`]'s guard, ignoring poisoning as
/// the mutex does.
#[derive(Debug, Default)]
pub(crate) struct Condvar(std::sync::Condvar);

impl Condvar {
    pub(crate) const fn new() -> Self {
        Condvar(std::sync::Condvar::new())
    }

    /// Waits for a notification (or a spurious wake-up).
    pub(crate) fn wait<'a, T>(&self, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        self.0
            .wait(guard)
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Waits for a notification, at most `timeout`.
    pub(crate) fn wait_timeout<'a, T>(
        &self,
        guard: MutexGuard<'a, T>,
        timeout: Duration,
    ) -> MutexGuard<'a, T> {
        self.0
            .wait_timeout(guard, timeout)
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .0
    }

    pub(crate) fn notify_one(&self) {
        self.0.notify_one();
    }

    pub(crate) fn notify_all(&self) {
        self.0.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poisoned_lock_is_still_taken() {
        let mutex = std::sync::Arc::new(Mutex::new(1));
        let theirs = std::sync::Arc::clone(&mutex);
        let _ = std::thread::spawn(move || {
            let _guard = theirs.lock();
            panic!("poisons the lock");
        })
        .join();
        *mutex.lock() += 1;
        assert_eq!(*mutex.lock(), 2);
    }
}
