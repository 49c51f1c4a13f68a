//! [`Lock`], [`Event`], [`Semaphore`] and [`Barrier`] on the host's side:
//! the algorithms of `wasmproc_abi::sync` over a region's mapping, so that
//! host threads and tasks (with `wasmproc_guest::sync`) use the same
//! objects.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use wasmproc_abi::sync::{self as algo, Crossed, Locked, Wait, Words};

use super::SharedRegion;
use super::holders::Holder;
use super::region::Mapping;
use crate::error::Error;

/// A region's words seen from a host thread that holds locks as `holder`.
struct HostWords<'a> {
    mapping: &'a Mapping,
    holder: u32,
}

fn clock() -> Duration {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed()
}

impl Words for HostWords<'_> {
    fn load(&self, at: u64) -> u32 {
        self.mapping.word32(at).load(SEQ)
    }
    fn store(&self, at: u64, value: u32) {
        self.mapping.word32(at).store(value, SEQ)
    }
    fn fetch_add(&self, at: u64, delta: u32) -> u32 {
        self.mapping.word32(at).fetch_add(delta, SEQ)
    }
    fn swap(&self, at: u64, value: u32) -> u32 {
        self.mapping.word32(at).swap(value, SEQ)
    }
    fn compare_exchange(&self, at: u64, current: u32, new: u32) -> Result<u32, u32> {
        self.mapping
            .word32(at)
            .compare_exchange(current, new, SEQ, SEQ)
    }
    fn wait(&self, at: u64, expected: u32, timeout: Option<Duration>) -> Wait {
        self.mapping.wait_blocking(at, expected, timeout, false)
    }
    fn lock_wait(&self, at: u64, expected: u32, timeout: Option<Duration>) -> Wait {
        self.mapping.wait_blocking(at, expected, timeout, true)
    }
    fn notify(&self, at: u64, count: u32) -> u32 {
        self.mapping.notify(at, count)
    }
    fn holder(&self) -> u32 {
        self.holder
    }
    fn now(&self) -> Duration {
        clock()
    }
}

const SEQ: std::sync::atomic::Ordering = std::sync::atomic::Ordering::SeqCst;

/// A place in a region: the region and a checked offset.
#[derive(Debug, Clone)]
struct Place {
    region: SharedRegion,
    offset: u64,
}

impl Place {
    fn new(region: &SharedRegion, offset: usize, len: u64) -> Result<Place, Error> {
        region.inner.check(offset as u64, len, 4)?;
        Ok(Place {
            region: region.clone(),
            offset: offset as u64,
        })
    }

    fn words(&self, holder: u32) -> HostWords<'_> {
        HostWords {
            mapping: &self.region.inner,
            holder,
        }
    }
}

/// A lock shared by the host and tasks: `multiprocessing.Lock`, robust
/// against holders that die.
///
/// A task reaches it by the name it is granted under
/// ([`Task::share`](crate::Task::share)) with `wasmproc_guest::sync::Lock`.
/// When a task ends while holding it (a trap, a limit, a cancellation, a
/// killed worker process), the next locker takes it over and is told with
/// [`OwnerDied`]: what the lock guards may be half-updated, and that locker
/// decides how to repair it. A lock is not re-entrant: locking it twice
/// from one holder waits forever (or until the task's timeout).
///
/// ```
/// let lock = wasmproc::Lock::new()?;
/// {
///     let _held = lock.lock().expect("no holder died");
///     assert!(lock.try_lock().is_none());
/// }
/// assert!(lock.try_lock().is_some());
/// # Ok::<(), wasmproc::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Lock {
    place: Place,
}

/// Proof that the host holds a [`Lock`]; unlocks when dropped.
#[must_use = "the lock is released as soon as the guard is dropped"]
#[derive(Debug)]
pub struct LockGuard<'a> {
    lock: &'a Lock,
    holder: Holder,
}

/// The lock was taken over from a holder that ended without unlocking it;
/// the guard inside holds it now.
#[derive(Debug)]
pub struct OwnerDied<'a>(LockGuard<'a>);

impl<'a> OwnerDied<'a> {
    /// The guard: the caller holds the lock.
    pub fn into_guard(self) -> LockGuard<'a> {
        self.0
    }
}

impl std::fmt::Display for OwnerDied<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the lock's previous holder ended without unlocking it")
    }
}

impl std::error::Error for OwnerDied<'_> {}

/// What locking gives: the guard, or the guard wrapped in [`OwnerDied`].
pub type LockResult<'a> = Result<LockGuard<'a>, OwnerDied<'a>>;

impl Lock {
    /// The region the words live in, and their offset there.
    pub(super) fn place(&self) -> (&SharedRegion, u64) {
        (&self.place.region, self.place.offset)
    }

    /// A lock in a small region of its own.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Setup`](crate::ErrorKind::Setup) when the OS refuses the region.
    pub fn new() -> Result<Lock, Error> {
        Lock::at(&SharedRegion::new(4)?, 0)
    }

    /// The lock word at `offset` of `region` (4 bytes, aligned to 4), for
    /// locks that live beside the data they guard.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::BadInvocation`](crate::ErrorKind::BadInvocation) for an
    /// offset out of bounds or misaligned.
    pub fn at(region: &SharedRegion, offset: usize) -> Result<Lock, Error> {
        Ok(Lock {
            place: Place::new(region, offset, 4)?,
        })
    }

    /// The region the lock lives in.
    pub fn region(&self) -> &SharedRegion {
        &self.place.region
    }

    /// Waits for the lock and takes it.
    pub fn lock(&self) -> LockResult<'_> {
        self.lock_within(None).expect("no timeout")
    }

    /// Takes the lock if it is free now.
    pub fn try_lock(&self) -> Option<LockResult<'_>> {
        self.lock_within(Some(Duration::ZERO))
    }

    /// Waits at most `timeout` for the lock; `None` if it stayed held.
    pub fn lock_timeout(&self, timeout: Duration) -> Option<LockResult<'_>> {
        self.lock_within(Some(timeout))
    }

    fn lock_within(&self, timeout: Option<Duration>) -> Option<LockResult<'_>> {
        let holder = Holder::new();
        let taken = algo::lock(&self.place.words(holder.id()), self.place.offset, timeout);
        // A guard only for a lock taken: dropping one unlocks.
        let guard = || LockGuard { lock: self, holder };
        match taken {
            Locked::Acquired => Some(Ok(guard())),
            Locked::OwnerDied => Some(Err(OwnerDied(guard()))),
            Locked::TimedOut => None,
        }
    }
}

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        let place = &self.lock.place;
        algo::unlock(&place.words(self.holder.id()), place.offset);
    }
}

/// A flag tasks and host threads wait on: `multiprocessing.Event`.
#[derive(Debug, Clone)]
pub struct Event {
    place: Place,
}

impl Event {
    /// The region the words live in, and their offset there.
    pub(super) fn place(&self) -> (&SharedRegion, u64) {
        (&self.place.region, self.place.offset)
    }

    /// An event, clear, in a small region of its own.
    ///
    /// # Errors
    ///
    /// As for [`Lock::new`].
    pub fn new() -> Result<Event, Error> {
        Event::at(&SharedRegion::new(4)?, 0)
    }

    /// The event word at `offset` of `region` (4 bytes, aligned to 4).
    ///
    /// # Errors
    ///
    /// As for [`Lock::at`].
    pub fn at(region: &SharedRegion, offset: usize) -> Result<Event, Error> {
        Ok(Event {
            place: Place::new(region, offset, 4)?,
        })
    }

    /// Sets the flag and wakes every waiter.
    pub fn set(&self) {
        algo::event_set(&self.place.words(0), self.place.offset)
    }

    /// Clears the flag.
    pub fn clear(&self) {
        self.place.words(0).store(self.place.offset, 0)
    }

    /// Whether the flag is set.
    pub fn is_set(&self) -> bool {
        self.place.words(0).load(self.place.offset) != 0
    }

    /// Waits until the flag is set.
    pub fn wait(&self) {
        algo::event_wait(&self.place.words(0), self.place.offset, None);
    }

    /// Waits at most `timeout`; whether the flag is set.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        algo::event_wait(&self.place.words(0), self.place.offset, Some(timeout))
    }
}

/// A counter of permits: `multiprocessing.Semaphore`.
#[derive(Debug, Clone)]
pub struct Semaphore {
    place: Place,
}

impl Semaphore {
    /// The region the words live in, and their offset there.
    pub(super) fn place(&self) -> (&SharedRegion, u64) {
        (&self.place.region, self.place.offset)
    }

    /// A semaphore with `permits` free, in a small region of its own.
    ///
    /// # Errors
    ///
    /// As for [`Lock::new`].
    pub fn new(permits: u32) -> Result<Semaphore, Error> {
        let semaphore = Semaphore::at(&SharedRegion::new(4)?, 0)?;
        semaphore.place.words(0).store(0, permits);
        Ok(semaphore)
    }

    /// The semaphore word at `offset` of `region` (4 bytes, aligned to 4),
    /// with the permits it holds now.
    ///
    /// # Errors
    ///
    /// As for [`Lock::at`].
    pub fn at(region: &SharedRegion, offset: usize) -> Result<Semaphore, Error> {
        Ok(Semaphore {
            place: Place::new(region, offset, 4)?,
        })
    }

    /// Waits for a permit and takes it.
    pub fn acquire(&self) {
        algo::semaphore_acquire(&self.place.words(0), self.place.offset, None);
    }

    /// Takes a permit if one is free now.
    pub fn try_acquire(&self) -> bool {
        algo::semaphore_acquire(
            &self.place.words(0),
            self.place.offset,
            Some(Duration::ZERO),
        )
    }

    /// Waits at most `timeout` for a permit; whether it took one.
    pub fn acquire_timeout(&self, timeout: Duration) -> bool {
        algo::semaphore_acquire(&self.place.words(0), self.place.offset, Some(timeout))
    }

    /// Gives a permit back.
    pub fn release(&self) {
        algo::semaphore_release(&self.place.words(0), self.place.offset)
    }

    /// The permits free now.
    pub fn available(&self) -> u32 {
        self.place.words(0).load(self.place.offset)
    }
}

/// A meeting point for a fixed number of parties: `multiprocessing.Barrier`.
#[derive(Debug, Clone)]
pub struct Barrier {
    place: Place,
}

impl Barrier {
    /// The region the words live in, and their offset there.
    pub(super) fn place(&self) -> (&SharedRegion, u64) {
        (&self.place.region, self.place.offset)
    }

    /// A barrier for `parties` (host threads and tasks together), in a
    /// small region of its own.
    ///
    /// # Errors
    ///
    /// As for [`Lock::new`].
    pub fn new(parties: u32) -> Result<Barrier, Error> {
        Barrier::at(&SharedRegion::new(algo::BARRIER_BYTES)?, 0, parties)
    }

    /// The barrier at `offset` of `region` ([`BARRIER_BYTES`] bytes,
    /// aligned to 4), reset for `parties`.
    ///
    /// [`BARRIER_BYTES`]: wasmproc_abi::sync::BARRIER_BYTES
    ///
    /// # Errors
    ///
    /// As for [`Lock::at`].
    pub fn at(region: &SharedRegion, offset: usize, parties: u32) -> Result<Barrier, Error> {
        let place = Place::new(region, offset, algo::BARRIER_BYTES as u64)?;
        algo::barrier_reset(&place.words(0), place.offset, parties);
        Ok(Barrier { place })
    }

    /// Waits until every party has arrived: `true` for the one that
    /// arrived last (Python's `wait()` returning 0).
    pub fn wait(&self) -> bool {
        algo::barrier_wait(&self.place.words(0), self.place.offset, None) == Crossed::Leader
    }

    /// Waits at most `timeout`: `None` if it passed first (the barrier is
    /// then broken for this round, as Python's `BrokenBarrierError` says).
    pub fn wait_timeout(&self, timeout: Duration) -> Option<bool> {
        match algo::barrier_wait(&self.place.words(0), self.place.offset, Some(timeout)) {
            Crossed::Leader => Some(true),
            Crossed::Follower => Some(false),
            Crossed::TimedOut => None,
        }
    }
}
