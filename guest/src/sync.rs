//! Locks, events, semaphores and barriers shared with the host and other
//! tasks: the same objects as the host's `wasmproc::Lock` and the like,
//! running the same algorithms (`wasmproc_abi::sync`) over a region's words.
//!
//! ```no_run
//! use wasmproc_guest::sync::Lock;
//!
//! #[wasmproc_guest::task]
//! fn shout(word: String) -> Result<(), wasmproc_guest::ShareError> {
//!     let print = Lock::open("print")?;
//!     // A holder that died is reported, and the lock is ours all the same.
//!     let _held = print.lock().unwrap_or_else(|died| died.into_guard());
//!     println!("{word}!");
//!     Ok(())
//! }
//! ```

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use wasmproc_abi::share::atomic;
use wasmproc_abi::sync::{self as algo, Crossed, Locked, Wait, Words};

use crate::ffi::share as ffi;
use crate::share::{Region, ShareError, nanos as timeout_nanos, region};

/// A region's words, reached through the host.
struct GuestWords(i32);

impl Words for GuestWords {
    fn load(&self, at: u64) -> u32 {
        ffi::atomic32(self.0, atomic::LOAD, at, 0, 0)
    }
    fn store(&self, at: u64, value: u32) {
        ffi::atomic32(self.0, atomic::STORE, at, value, 0);
    }
    fn fetch_add(&self, at: u64, delta: u32) -> u32 {
        ffi::atomic32(self.0, atomic::FETCH_ADD, at, delta, 0)
    }
    fn swap(&self, at: u64, value: u32) -> u32 {
        ffi::atomic32(self.0, atomic::SWAP, at, value, 0)
    }
    fn compare_exchange(&self, at: u64, current: u32, new: u32) -> Result<u32, u32> {
        let old = ffi::atomic32(self.0, atomic::COMPARE_EXCHANGE, at, current, new);
        if old == current { Ok(old) } else { Err(old) }
    }
    fn wait(&self, at: u64, expected: u32, timeout: Option<Duration>) -> Wait {
        Wait::from_code(ffi::region_wait(
            self.0,
            at,
            expected,
            timeout_nanos(timeout),
        ))
    }
    fn lock_wait(&self, at: u64, expected: u32, timeout: Option<Duration>) -> Wait {
        Wait::from_code(ffi::region_lock_wait(
            self.0,
            at,
            expected,
            timeout_nanos(timeout),
        ))
    }
    fn notify(&self, at: u64, count: u32) -> u32 {
        ffi::region_notify(self.0, at, count)
    }
    fn holder(&self) -> u32 {
        ffi::holder_id()
    }
    fn now(&self) -> Duration {
        static START: OnceLock<Instant> = OnceLock::new();
        START.get_or_init(Instant::now).elapsed()
    }
}

/// A checked place in a region.
#[derive(Debug, Clone, Copy)]
struct Place {
    region: Region,
    offset: u64,
}

impl Place {
    fn new(region: &Region, offset: u64, len: u64) -> Result<Place, ShareError> {
        region.check(offset, len, 4)?;
        Ok(Place {
            region: *region,
            offset,
        })
    }

    fn open(name: &str, len: u64) -> Result<Place, ShareError> {
        Place::new(&region(name)?, 0, len)
    }

    fn words(&self) -> GuestWords {
        GuestWords(self.region.handle)
    }
}

/// A lock shared with the host and other tasks, robust against holders
/// that die: when a task ends while holding it, the next locker gets it
/// with [`OwnerDied`].
#[derive(Debug, Clone, Copy)]
pub struct Lock {
    place: Place,
}

/// Proof that this task holds a [`Lock`]; unlocks when dropped.
#[must_use = "the lock is released as soon as the guard is dropped"]
#[derive(Debug)]
pub struct LockGuard<'a> {
    lock: &'a Lock,
}

/// The lock was taken over from a holder that ended without unlocking it;
/// what it guards may be half-updated. The guard inside holds the lock.
#[derive(Debug)]
pub struct OwnerDied<'a>(LockGuard<'a>);

impl<'a> OwnerDied<'a> {
    /// The guard: this task holds the lock.
    pub fn into_guard(self) -> LockGuard<'a> {
        self.0
    }
}

/// What locking gives: the guard, or the guard wrapped in [`OwnerDied`].
pub type LockResult<'a> = Result<LockGuard<'a>, OwnerDied<'a>>;

impl Lock {
    /// The lock the host shared under `name`.
    ///
    /// # Errors
    ///
    /// [`ShareError::NotGranted`] when there is none.
    pub fn open(name: &str) -> Result<Lock, ShareError> {
        Ok(Lock {
            place: Place::open(name, 4)?,
        })
    }

    /// The lock word at `offset` of `region`.
    ///
    /// # Errors
    ///
    /// [`ShareError::OutOfBounds`], [`ShareError::Misaligned`].
    pub fn at(region: &Region, offset: u64) -> Result<Lock, ShareError> {
        Ok(Lock {
            place: Place::new(region, offset, 4)?,
        })
    }

    /// Waits for the lock (as long as the task may run) and takes it.
    pub fn lock(&self) -> LockResult<'_> {
        self.lock_within(None).expect("no timeout")
    }

    /// Takes the lock if it is free now.
    pub fn try_lock(&self) -> Option<LockResult<'_>> {
        self.lock_within(Some(Duration::ZERO))
    }

    /// Waits at most `timeout` for the lock.
    pub fn lock_timeout(&self, timeout: Duration) -> Option<LockResult<'_>> {
        self.lock_within(Some(timeout))
    }

    fn lock_within(&self, timeout: Option<Duration>) -> Option<LockResult<'_>> {
        // A guard only for a lock taken: dropping one unlocks.
        let guard = || LockGuard { lock: self };
        match algo::lock(&self.place.words(), self.place.offset, timeout) {
            Locked::Acquired => Some(Ok(guard())),
            Locked::OwnerDied => Some(Err(OwnerDied(guard()))),
            Locked::TimedOut => None,
        }
    }
}

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        algo::unlock(&self.lock.place.words(), self.lock.place.offset);
    }
}

/// A flag shared with the host and other tasks.
#[derive(Debug, Clone, Copy)]
pub struct Event {
    place: Place,
}

impl Event {
    /// The event the host shared under `name`.
    ///
    /// # Errors
    ///
    /// [`ShareError::NotGranted`] when there is none.
    pub fn open(name: &str) -> Result<Event, ShareError> {
        Ok(Event {
            place: Place::open(name, 4)?,
        })
    }

    /// The event word at `offset` of `region`.
    ///
    /// # Errors
    ///
    /// [`ShareError::OutOfBounds`], [`ShareError::Misaligned`].
    pub fn at(region: &Region, offset: u64) -> Result<Event, ShareError> {
        Ok(Event {
            place: Place::new(region, offset, 4)?,
        })
    }

    /// Sets the flag and wakes every waiter.
    pub fn set(&self) {
        algo::event_set(&self.place.words(), self.place.offset)
    }

    /// Clears the flag.
    pub fn clear(&self) {
        self.place.words().store(self.place.offset, 0)
    }

    /// Whether the flag is set.
    pub fn is_set(&self) -> bool {
        self.place.words().load(self.place.offset) != 0
    }

    /// Waits until the flag is set (as long as the task may run).
    pub fn wait(&self) {
        algo::event_wait(&self.place.words(), self.place.offset, None);
    }

    /// Waits at most `timeout`; whether the flag is set.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        algo::event_wait(&self.place.words(), self.place.offset, Some(timeout))
    }
}

/// A counter of permits shared with the host and other tasks.
#[derive(Debug, Clone, Copy)]
pub struct Semaphore {
    place: Place,
}

impl Semaphore {
    /// The semaphore the host shared under `name`.
    ///
    /// # Errors
    ///
    /// [`ShareError::NotGranted`] when there is none.
    pub fn open(name: &str) -> Result<Semaphore, ShareError> {
        Ok(Semaphore {
            place: Place::open(name, 4)?,
        })
    }

    /// Waits for a permit (as long as the task may run) and takes it.
    pub fn acquire(&self) {
        algo::semaphore_acquire(&self.place.words(), self.place.offset, None);
    }

    /// Takes a permit if one is free now.
    pub fn try_acquire(&self) -> bool {
        algo::semaphore_acquire(&self.place.words(), self.place.offset, Some(Duration::ZERO))
    }

    /// Waits at most `timeout` for a permit; whether it took one.
    pub fn acquire_timeout(&self, timeout: Duration) -> bool {
        algo::semaphore_acquire(&self.place.words(), self.place.offset, Some(timeout))
    }

    /// Gives a permit back.
    pub fn release(&self) {
        algo::semaphore_release(&self.place.words(), self.place.offset)
    }
}

/// A meeting point for a fixed number of parties (set by the host).
#[derive(Debug, Clone, Copy)]
pub struct Barrier {
    place: Place,
}

impl Barrier {
    /// The barrier the host shared under `name`.
    ///
    /// # Errors
    ///
    /// [`ShareError::NotGranted`] when there is none.
    pub fn open(name: &str) -> Result<Barrier, ShareError> {
        Ok(Barrier {
            place: Place::open(name, algo::BARRIER_BYTES as u64)?,
        })
    }

    /// Waits until every party has arrived: `true` for the one that
    /// arrived last.
    pub fn wait(&self) -> bool {
        algo::barrier_wait(&self.place.words(), self.place.offset, None) == Crossed::Leader
    }

    /// Waits at most `timeout`: `None` if it passed first (the barrier is
    /// then broken for this round).
    pub fn wait_timeout(&self, timeout: Duration) -> Option<bool> {
        match algo::barrier_wait(&self.place.words(), self.place.offset, Some(timeout)) {
            Crossed::Leader => Some(true),
            Crossed::Follower => Some(false),
            Crossed::TimedOut => None,
        }
    }
}
