//! Locks, events, semaphores and barriers over 32-bit words of a shared
//! region, written once for the host and the guest SDK.
//!
//! Each side implements [`Words`] over its view of a region (the host over
//! the mapping, the guest over the `region_*` imports); the algorithms here
//! are then the same bits in the same places on both sides, so a host
//! thread and a sandboxed task can take the same lock.
//!
//! # Layouts
//!
//! - A lock is one word: `0` when free, else the holder's id (low 30 bits,
//!   see [`HOLDER_MASK`]) with [`WAITERS`] set while someone may sleep on it.
//! - An event is one word: `0` clear, `1` set.
//! - A semaphore is one word: the count of free permits.
//! - A barrier is three words ([`BARRIER_BYTES`]): the parties arrived so
//!   far, the generation (how many times the barrier has opened), and the
//!   number of parties it waits for.
//!
//! # A holder that ends while holding a lock
//!
//! Locks are robust: when the task holding a lock ends without unlocking it
//! (a trap, a limit, a cancellation, a killed worker process), the host
//! wakes whoever waits on it, and the next locker takes the lock over and is
//! told so ([`Locked::OwnerDied`]), the way a robust POSIX mutex reports
//! `EOWNERDEAD`. The data the lock guards may be half-updated: the new
//! holder decides whether to repair it.

use core::time::Duration;

/// The bits of a lock word that name its holder.
pub const HOLDER_MASK: u32 = (1 << 30) - 1;

/// Set in a lock word while a locker may be asleep waiting for it.
pub const WAITERS: u32 = 1 << 31;

/// How many times a locker re-reads a held lock before it sleeps: a
/// critical section is usually shorter than a trip through the host.
const SPINS: u32 = 64;

/// How a wait on a word ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// A notify woke the waiter (or it woke spuriously).
    Woken,
    /// The word did not hold the expected value.
    NotEqual,
    /// The timeout passed.
    TimedOut,
    /// For a lock word: its holder has ended without unlocking.
    OwnerGone,
}

impl Wait {
    /// The wait's code in the `region_wait` imports.
    pub fn code(self) -> i32 {
        match self {
            Wait::Woken => crate::share::WOKEN,
            Wait::NotEqual => crate::share::NOT_EQUAL,
            Wait::TimedOut => crate::share::TIMED_OUT,
            Wait::OwnerGone => crate::share::OWNER_GONE,
        }
    }

    /// The wait of a `region_wait` code; an unknown code reads as a
    /// spurious wakeup.
    pub fn from_code(code: i32) -> Wait {
        match code {
            crate::share::NOT_EQUAL => Wait::NotEqual,
            crate::share::TIMED_OUT => Wait::TimedOut,
            crate::share::OWNER_GONE => Wait::OwnerGone,
            _ => Wait::Woken,
        }
    }
}

/// Sequentially consistent operations on the 32-bit words of one region,
/// at offsets the caller has checked (in bounds, aligned to 4).
pub trait Words {
    /// Reads the word at `at`.
    fn load(&self, at: u64) -> u32;
    /// Writes the word at `at`.
    fn store(&self, at: u64, value: u32);
    /// Adds `delta` (wrapping); returns the old value.
    fn fetch_add(&self, at: u64, delta: u32) -> u32;
    /// Writes `value`; returns the old value.
    fn swap(&self, at: u64, value: u32) -> u32;
    /// Writes `new` if the word holds `current`: `Ok(current)`, else
    /// `Err(actual)`.
    fn compare_exchange(&self, at: u64, current: u32, new: u32) -> Result<u32, u32>;
    /// Sleeps while the word holds `expected`, for at most `timeout`
    /// (`None`: as long as the caller may run).
    fn wait(&self, at: u64, expected: u32, timeout: Option<Duration>) -> Wait;
    /// As [`wait`](Words::wait) for a lock word, returning
    /// [`Wait::OwnerGone`] when the holder `expected` names has ended.
    fn lock_wait(&self, at: u64, expected: u32, timeout: Option<Duration>) -> Wait;
    /// Wakes up to `count` waiters on the word; returns how many woke.
    fn notify(&self, at: u64, count: u32) -> u32;
    /// The id the caller holds locks under: non-zero, within
    /// [`HOLDER_MASK`], unique among the live holders.
    fn holder(&self) -> u32;
    /// A monotonic clock, for timeouts spanning several waits.
    fn now(&self) -> Duration;
}

/// What time is left of `timeout` started at `start`; `None` waits on.
fn left(words: &impl Words, start: Duration, timeout: Option<Duration>) -> Option<Duration> {
    timeout.map(|timeout| timeout.saturating_sub(words.now().saturating_sub(start)))
}

/// How a lock attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Locked {
    /// The caller holds the lock.
    Acquired,
    /// The caller holds the lock, taken over from a holder that ended
    /// without unlocking it: what it guards may be half-updated.
    OwnerDied,
    /// The timeout passed first.
    TimedOut,
}

/// Takes the lock word at `at`, waiting at most `timeout`.
pub fn lock(words: &impl Words, at: u64, timeout: Option<Duration>) -> Locked {
    let me = words.holder();
    if words.compare_exchange(at, 0, me).is_ok() {
        return Locked::Acquired;
    }
    let start = words.now();
    let spins = if timeout == Some(Duration::ZERO) {
        0
    } else {
        SPINS
    };
    let mut spun = 0;
    loop {
        let word = words.load(at);
        if word & HOLDER_MASK == 0 {
            // Keep the waiters bit: others may still sleep on the word, and
            // this holder's unlock must wake one.
            if words
                .compare_exchange(at, word, me | (word & WAITERS))
                .is_ok()
            {
                return Locked::Acquired;
            }
            continue;
        }
        if spun < spins {
            spun += 1;
            core::hint::spin_loop();
            continue;
        }
        let expected = word | WAITERS;
        if word & WAITERS == 0 && words.compare_exchange(at, word, expected).is_err() {
            continue;
        }
        match words.lock_wait(at, expected, left(words, start, timeout)) {
            Wait::OwnerGone => {
                if words.compare_exchange(at, expected, me | WAITERS).is_ok() {
                    return Locked::OwnerDied;
                }
            }
            Wait::TimedOut => return Locked::TimedOut,
            Wait::Woken | Wait::NotEqual => {}
        }
    }
}

/// Releases the lock word at `at`, waking one waiter if any sleeps.
pub fn unlock(words: &impl Words, at: u64) {
    if words.swap(at, 0) & WAITERS != 0 {
        words.notify(at, 1);
    }
}

/// Sets the event word at `at` and wakes every waiter.
pub fn event_set(words: &impl Words, at: u64) {
    if words.swap(at, 1) == 0 {
        words.notify(at, u32::MAX);
    }
}

/// Waits until the event word at `at` is set; `false` if `timeout` passed
/// first.
pub fn event_wait(words: &impl Words, at: u64, timeout: Option<Duration>) -> bool {
    let start = words.now();
    loop {
        if words.load(at) != 0 {
            return true;
        }
        if words.wait(at, 0, left(words, start, timeout)) == Wait::TimedOut {
            return words.load(at) != 0;
        }
    }
}

/// Takes one permit of the semaphore word at `at`; `false` if `timeout`
/// passed first.
pub fn semaphore_acquire(words: &impl Words, at: u64, timeout: Option<Duration>) -> bool {
    let start = words.now();
    loop {
        let free = words.load(at);
        if free > 0 {
            if words.compare_exchange(at, free, free - 1).is_ok() {
                return true;
            }
            continue;
        }
        if words.wait(at, 0, left(words, start, timeout)) == Wait::TimedOut {
            return false;
        }
    }
}

/// Gives one permit back to the semaphore word at `at`.
pub fn semaphore_release(words: &impl Words, at: u64) {
    words.fetch_add(at, 1);
    words.notify(at, 1);
}

/// How a barrier wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Crossed {
    /// The barrier opened; this caller arrived last (Python's `wait()`
    /// returning 0).
    Leader,
    /// The barrier opened.
    Follower,
    /// The timeout passed first: the barrier is broken for this
    /// generation, as Python's `BrokenBarrierError` says.
    TimedOut,
}

/// The bytes a barrier takes: three words.
pub const BARRIER_BYTES: usize = 12;

/// Sets up the barrier at `at` for `parties` callers.
pub fn barrier_reset(words: &impl Words, at: u64, parties: u32) {
    words.store(at, 0);
    words.store(at + 8, parties);
}

/// Waits at the barrier at `at` until as many callers as it was set up for
/// have arrived.
pub fn barrier_wait(words: &impl Words, at: u64, timeout: Option<Duration>) -> Crossed {
    let generation_at = at + 4;
    let parties = words.load(at + 8);
    let generation = words.load(generation_at);
    if words.fetch_add(at, 1) + 1 >= parties {
        // Reset the count before opening: whoever sees the new generation
        // also sees a fresh count.
        words.store(at, 0);
        words.fetch_add(generation_at, 1);
        words.notify(generation_at, u32::MAX);
        return Crossed::Leader;
    }
    let start = words.now();
    loop {
        if words.load(generation_at) != generation {
            return Crossed::Follower;
        }
        let wait = words.wait(generation_at, generation, left(words, start, timeout));
        if wait == Wait::TimedOut && words.load(generation_at) == generation {
            return Crossed::TimedOut;
        }
    }
}
