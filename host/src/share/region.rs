//! [`SharedRegion`]: named bytes of a fixed size, mapped into the host and
//! every worker granted them, with atomic words and futex-style waits.
//!
//! The bytes live in a file mapped shared (in `/dev/shm` where there is
//! one, else the temporary directory), so a worker process maps the same
//! pages the host does, on every OS. Waits are kept in the host process:
//! a wait or notify from a worker process travels to it.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use event_listener::{Event, EventListener, IntoNotification, Listener};
use memmap2::MmapMut;
use wasmproc_abi::sync::{HOLDER_MASK, Wait};

use super::holders;
use crate::error::{Error, ErrorKind};
use crate::limits::human;
use crate::mutex::{Mutex, MutexGuard};

/// Named bytes of a fixed size shared by the host and the tasks it is
/// granted to ([`Task::share`](crate::Task::share)), in thread and process
/// isolation alike: `multiprocessing`'s `shared_memory`, `Value` and
/// `Array`.
///
/// Words are reached as std atomics at aligned offsets
/// ([`u32_at`](SharedRegion::u32_at), [`u64_at`](SharedRegion::u64_at));
/// bytes are copied in and out ([`read`](SharedRegion::read),
/// [`write`](SharedRegion::write)); [`wait`](SharedRegion::wait) and
/// [`notify`](SharedRegion::notify) sleep and wake on a 32-bit word, the
/// way a futex does. [`Lock`](crate::Lock) and the other ready-made
/// primitives are built on these. Clones share the region; it is removed
/// when the last handle (and the last worker mapping it) is gone.
///
/// ```
/// use std::sync::atomic::Ordering;
/// let counts = wasmproc::SharedRegion::new(64)?;
/// counts.u64_at(8)?.fetch_add(5, Ordering::SeqCst);
/// assert_eq!(counts.u64_at(8)?.load(Ordering::SeqCst), 5);
/// assert!(counts.u64_at(60).is_err()); // past the end
/// assert!(counts.u64_at(4).is_err()); // not aligned to 8
/// # Ok::<(), wasmproc::Error>(())
/// ```
#[derive(Clone)]
pub struct SharedRegion {
    pub(crate) inner: Arc<Mapping>,
}

/// One mapping of a region's file, and the waiters on its words.
pub(crate) struct Mapping {
    /// The start of the mapping, taken from `map` (which keeps it mapped)
    /// with write access.
    base: *mut u8,
    len: usize,
    _map: MmapMut,
    /// The file, removed when the host's last handle goes.
    file: Backing,
    /// An event per word that has had a waiter.
    waits: Mutex<HashMap<u64, Arc<Event>>>,
}

enum Backing {
    /// The host made the file and removes it on drop.
    Owned(tempfile::TempPath),
    /// A worker process mapped the host's file.
    Borrowed(std::path::PathBuf),
}

// SAFETY: `base` points into `_map`, which the struct owns and which stays
// mapped at the same address until the struct drops. Every access through
// `base` is atomic (`AtomicU8`, `AtomicU32`, `AtomicU64`), so sharing it
// between threads is as sound as sharing those atomics; the other fields
// are `Send + Sync` already.
unsafe impl Send for Mapping {}
// SAFETY: as for `Send` above.
unsafe impl Sync for Mapping {}

impl std::fmt::Debug for SharedRegion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedRegion")
            .field("len", &self.inner.len)
            .field("path", &self.inner.path())
            .finish()
    }
}

impl PartialEq for SharedRegion {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

fn setup(what: &str, error: std::io::Error) -> Error {
    Error::new(
        ErrorKind::Setup,
        format!("cannot {what} a shared region: {error}"),
    )
    .caused_by(error)
}

impl SharedRegion {
    /// A region of `size` bytes, all zero.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::BadInvocation`] for a size of zero;
    /// [`ErrorKind::Setup`] when the OS refuses the file or the mapping.
    pub fn new(size: usize) -> Result<SharedRegion, Error> {
        if size == 0 {
            return Err(Error::new(
                ErrorKind::BadInvocation,
                "a shared region needs at least one byte: give it a size above 0",
            ));
        }
        // Pages in /dev/shm stay in memory; elsewhere the OS's page cache
        // keeps them, and the file is never synced on purpose.
        let shm = Path::new("/dev/shm");
        let dir = if shm.is_dir() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        let file = tempfile::Builder::new()
            .prefix("wasmproc-region-")
            .tempfile_in(&dir)
            .map_err(|error| setup("create the file of", error))?;
        file.as_file()
            .set_len(size as u64)
            .map_err(|error| setup("size", error))?;
        let (file, path) = file.into_parts();
        let mapping = Mapping::map(&file, size, Backing::Owned(path))?;
        Ok(SharedRegion {
            inner: Arc::new(mapping),
        })
    }

    /// Maps the region a host made, from its file (a worker process's side).
    pub(crate) fn open(path: &Path, size: usize) -> Result<SharedRegion, Error> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|error| setup("open the file of", error))?;
        let mapping = Mapping::map(&file, size, Backing::Borrowed(path.to_path_buf()))?;
        Ok(SharedRegion {
            inner: Arc::new(mapping),
        })
    }

    /// The region's size in bytes.
    pub fn len(&self) -> usize {
        self.inner.len
    }

    /// Always `false`: a region has at least one byte.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Copies `buf.len()` bytes starting at `offset` into `buf`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::BadInvocation`] when the bytes lie past the end.
    pub fn read(&self, offset: usize, buf: &mut [u8]) -> Result<(), Error> {
        self.inner.check(offset as u64, buf.len() as u64, 1)?;
        self.inner.copy_out(offset, buf);
        Ok(())
    }

    /// Copies `bytes` into the region starting at `offset`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::BadInvocation`] when the bytes lie past the end.
    pub fn write(&self, offset: usize, bytes: &[u8]) -> Result<(), Error> {
        self.inner.check(offset as u64, bytes.len() as u64, 1)?;
        self.inner.copy_in(offset, bytes);
        Ok(())
    }

    /// The whole region, copied out.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut bytes = vec![0; self.inner.len];
        self.inner.copy_out(0, &mut bytes);
        bytes
    }

    /// The 32-bit word at `offset`, as an atomic every worker sees.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::BadInvocation`] when `offset` is not a multiple of 4 or
    /// the word lies past the end.
    pub fn u32_at(&self, offset: usize) -> Result<&AtomicU32, Error> {
        self.inner.check(offset as u64, 4, 4)?;
        Ok(self.inner.word32(offset as u64))
    }

    /// The 64-bit word at `offset`, as an atomic every worker sees.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::BadInvocation`] when `offset` is not a multiple of 8 or
    /// the word lies past the end.
    pub fn u64_at(&self, offset: usize) -> Result<&AtomicU64, Error> {
        self.inner.check(offset as u64, 8, 8)?;
        Ok(self.inner.word64(offset as u64))
    }

    /// Sleeps while the 32-bit word at `offset` holds `expected`, for at
    /// most `timeout`: `true` when woken by a [`notify`](Self::notify) (or
    /// spuriously, as futexes may), `false` when the word held another value
    /// or the timeout passed. Callers re-check the word and loop.
    ///
    /// # Errors
    ///
    /// As for [`u32_at`](Self::u32_at).
    pub fn wait(
        &self,
        offset: usize,
        expected: u32,
        timeout: Option<Duration>,
    ) -> Result<bool, Error> {
        self.inner.check(offset as u64, 4, 4)?;
        Ok(self
            .inner
            .wait_blocking(offset as u64, expected, timeout, false)
            == Wait::Woken)
    }

    /// Wakes up to `count` waiters sleeping on the 32-bit word at `offset`,
    /// in this process and in worker processes; returns how many woke.
    ///
    /// # Errors
    ///
    /// As for [`u32_at`](Self::u32_at).
    pub fn notify(&self, offset: usize, count: u32) -> Result<u32, Error> {
        self.inner.check(offset as u64, 4, 4)?;
        Ok(self.inner.notify(offset as u64, count))
    }
}

/// Checks that `len` bytes at `offset` lie inside `size` bytes and that
/// `offset` is a multiple of `align`.
pub(crate) fn check_span(size: u64, offset: u64, len: u64, align: u64) -> Result<(), Error> {
    let end = offset.checked_add(len);
    if end.is_none_or(|end| end > size) {
        return Err(Error::new(
            ErrorKind::BadInvocation,
            format!(
                "offset {offset} + {len} bytes lies outside the shared region of {} \
                 (offsets run from 0 to {})",
                human(size),
                size.saturating_sub(1)
            ),
        ));
    }
    if !offset.is_multiple_of(align) {
        return Err(Error::new(
            ErrorKind::BadInvocation,
            format!(
                "offset {offset} is not aligned for a {}-bit word: use a multiple of {align}",
                align * 8
            ),
        ));
    }
    Ok(())
}

impl Mapping {
    fn map(file: &std::fs::File, len: usize, file_name: Backing) -> Result<Mapping, Error> {
        // SAFETY: memmap2 asks that nobody change the file under a mapping
        // in ways the program does not expect. The file is wasmproc's own,
        // shared on purpose with worker processes that map it the same way,
        // and every access to the mapped bytes is atomic (see `Send` above),
        // so changes from elsewhere are expected and well-defined.
        let mut map = unsafe { memmap2::MmapOptions::new().len(len).map_mut(file) }
            .map_err(|error| setup("map", error))?;
        Ok(Mapping {
            base: map.as_mut_ptr(),
            len,
            _map: map,
            file: file_name,
            waits: Mutex::new(HashMap::new()),
        })
    }

    /// The file behind the mapping, for worker processes to map.
    pub(crate) fn path(&self) -> &Path {
        match &self.file {
            Backing::Owned(path) => path,
            Backing::Borrowed(path) => path,
        }
    }

    /// Checks that `len` bytes at `offset` lie inside the region and that
    /// `offset` is a multiple of `align`.
    pub(crate) fn check(&self, offset: u64, len: u64, align: u64) -> Result<(), Error> {
        check_span(self.len as u64, offset, len, align)
    }

    fn byte(&self, offset: usize) -> &AtomicU8 {
        debug_assert!(offset < self.len);
        // SAFETY: `offset < len` (checked by callers), so the byte lies in
        // the live mapping; `AtomicU8` has alignment 1; all accesses to the
        // mapping are atomic, so no non-atomic access races with this one.
        unsafe { AtomicU8::from_ptr(self.base.add(offset)) }
    }

    /// The word at a checked offset (in bounds, a multiple of 4).
    pub(crate) fn word32(&self, offset: u64) -> &AtomicU32 {
        debug_assert!(offset.is_multiple_of(4) && offset + 4 <= self.len as u64);
        // SAFETY: the word lies inside the live mapping (checked by
        // callers), the mapping starts page-aligned so a multiple-of-4
        // offset is 4-aligned, and every access to the mapping is atomic.
        unsafe { AtomicU32::from_ptr(self.base.add(offset as usize).cast()) }
    }

    /// The word at a checked offset (in bounds, a multiple of 8).
    pub(crate) fn word64(&self, offset: u64) -> &AtomicU64 {
        debug_assert!(offset.is_multiple_of(8) && offset + 8 <= self.len as u64);
        // SAFETY: as for `word32`, with 8 for 4.
        unsafe { AtomicU64::from_ptr(self.base.add(offset as usize).cast()) }
    }

    /// Copies bytes out, each read atomically (relaxed: ordering is the
    /// business of the words and locks around the copy).
    pub(crate) fn copy_out(&self, offset: usize, buf: &mut [u8]) {
        for (i, byte) in buf.iter_mut().enumerate() {
            *byte = self.byte(offset + i).load(Ordering::Relaxed);
        }
    }

    /// Copies bytes in, each written atomically.
    pub(crate) fn copy_in(&self, offset: usize, bytes: &[u8]) {
        for (i, byte) in bytes.iter().enumerate() {
            self.byte(offset + i).store(*byte, Ordering::Relaxed);
        }
    }

    fn waits(&self) -> MutexGuard<'_, HashMap<u64, Arc<Event>>> {
        self.waits.lock()
    }

    fn event(&self, offset: u64) -> Arc<Event> {
        Arc::clone(self.waits().entry(offset).or_default())
    }

    /// Registers a waiter on the word at `offset`, unless the word has moved
    /// on from `expected` (or, for a lock word, its holder has ended): the
    /// listener is made before the checks, so a notify that follows them is
    /// never missed.
    fn listen(&self, offset: u64, expected: u32, lock: bool) -> Result<EventListener, Wait> {
        let listener = self.event(offset).listen();
        if self.word32(offset).load(Ordering::SeqCst) != expected {
            return Err(Wait::NotEqual);
        }
        if lock && !holders::is_live(expected & HOLDER_MASK) {
            return Err(Wait::OwnerGone);
        }
        Ok(listener)
    }

    /// Waits on a checked word from a host thread.
    pub(crate) fn wait_blocking(
        &self,
        offset: u64,
        expected: u32,
        timeout: Option<Duration>,
        lock: bool,
    ) -> Wait {
        let listener = match self.listen(offset, expected, lock) {
            Ok(listener) => listener,
            Err(wait) => return wait,
        };
        match timeout {
            None => {
                listener.wait();
                Wait::Woken
            }
            Some(timeout) => match listener.wait_timeout(timeout) {
                Some(()) => Wait::Woken,
                None => Wait::TimedOut,
            },
        }
    }

    /// Waits on a checked word from a guest: the task's timeout or
    /// cancellation drops this future, and the waiter with it.
    pub(crate) async fn wait_async(
        &self,
        offset: u64,
        expected: u32,
        timeout: Option<Duration>,
        lock: bool,
    ) -> Wait {
        let listener = match self.listen(offset, expected, lock) {
            Ok(listener) => listener,
            Err(wait) => return wait,
        };
        match timeout {
            None => {
                listener.await;
                Wait::Woken
            }
            Some(timeout) => match tokio::time::timeout(timeout, listener).await {
                Ok(()) => Wait::Woken,
                Err(_) => Wait::TimedOut,
            },
        }
    }

    /// Wakes up to `count` waiters on a checked word.
    pub(crate) fn notify(&self, offset: u64, count: u32) -> u32 {
        let event = self.waits().get(&offset).cloned();
        event.map_or(0, |event| {
            u32::try_from(event.notify((count as usize).additional())).unwrap_or(u32::MAX)
        })
    }

    /// Wakes every waiter on every word: a holder has ended, and whoever
    /// waits on a lock it held must look again.
    pub(crate) fn wake_all(&self) {
        for event in self.waits().values() {
            event.notify(usize::MAX);
        }
    }
}
