//! Queues, the task's pipe and shared regions: what the host granted this
//! task, opened by name.
//!
//! ```no_run
//! use wasmproc_guest::{pipe, queue, region};
//!
//! #[wasmproc_guest::task]
//! fn worker() -> Result<u64, wasmproc_guest::ShareError> {
//!     let jobs = queue::<u64>("jobs")?;
//!     let counts = region("counts")?;
//!     let progress = pipe()?;
//!     let mut done = 0;
//!     // `get` fails once the host closes the queue and it is drained.
//!     while let Ok(job) = jobs.get() {
//!         counts.fetch_add_u64(0, job)?;
//!         done += 1;
//!         progress.send(&done)?;
//!     }
//!     Ok(done)
//! }
//! ```
//!
//! Every wait (a `get` on an empty queue, a `put` on a full one, a `recv`,
//! a wait on a word) ends when the task's time limit passes or it is
//! cancelled: the host ends the task then, with the usual status.

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use wasmproc_abi::share::{self as abi, atomic};

use crate::ffi::share as ffi;

/// Why a sharing call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ShareError {
    /// The host granted this task no queue, region or pipe by that name.
    NotGranted {
        /// What was asked for: "queue", "region" or "pipe".
        what: &'static str,
        /// The name asked for.
        name: String,
    },
    /// The queue or pipe is closed (and, for a receive, drained).
    Closed,
    /// The message is over the channel's size limit; nothing was sent.
    TooLarge {
        /// The message's length in bytes, as JSON.
        len: usize,
    },
    /// The bytes or the word lie past the end of the region.
    OutOfBounds {
        /// The offset asked for.
        offset: u64,
        /// How many bytes from there.
        len: u64,
        /// The region's size.
        size: u64,
    },
    /// The word's offset is not a multiple of its size.
    Misaligned {
        /// The offset asked for.
        offset: u64,
        /// The word's size in bytes.
        align: u64,
    },
    /// A value did not serialize, or a message did not decode.
    Serde(String),
}

impl fmt::Display for ShareError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShareError::NotGranted { what, name } => write!(
                f,
                "no {what} named `{name}` was shared with this task: the host grants it with \
                 Task::share(\"{name}\", ...)"
            ),
            ShareError::Closed => f.write_str("the channel is closed"),
            ShareError::TooLarge { len } => {
                write!(
                    f,
                    "the message ({len} bytes) is over the channel's size limit"
                )
            }
            ShareError::OutOfBounds { offset, len, size } => write!(
                f,
                "offset {offset} + {len} bytes lies outside the region of {size} bytes"
            ),
            ShareError::Misaligned { offset, align } => write!(
                f,
                "offset {offset} is not aligned for a {}-bit word: use a multiple of {align}",
                align * 8
            ),
            ShareError::Serde(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for ShareError {}

/// Nanoseconds for the imports: negative waits as long as the task may run.
pub(crate) fn nanos(timeout: Option<Duration>) -> i64 {
    timeout.map_or(-1, |t| i64::try_from(t.as_nanos()).unwrap_or(i64::MAX))
}

/// A channel handle: a queue, or the task's end of its pipe.
#[derive(Debug, Clone, Copy)]
struct Channel(i32);

impl Channel {
    /// Sends; `Ok(false)` when the timeout passed with the channel full.
    fn send<T: Serialize + ?Sized>(
        self,
        value: &T,
        timeout: Option<Duration>,
    ) -> Result<bool, ShareError> {
        let message =
            serde_json::to_vec(value).map_err(|error| ShareError::Serde(error.to_string()))?;
        match ffi::channel_send(self.0, &message, nanos(timeout)) {
            0 => Ok(true),
            abi::FULL => Ok(false),
            abi::TOO_LARGE => Err(ShareError::TooLarge { len: message.len() }),
            _ => Err(ShareError::Closed),
        }
    }

    /// Receives; `Ok(None)` when the timeout passed with the channel empty.
    fn recv<T: DeserializeOwned>(self, timeout: Option<Duration>) -> Result<Option<T>, ShareError> {
        match ffi::channel_recv(self.0, nanos(timeout)) {
            Ok(message) => serde_json::from_slice(&message)
                .map(Some)
                .map_err(|error| ShareError::Serde(format!("a message did not decode: {error}"))),
            Err(abi::EMPTY) => Ok(None),
            Err(_) => Err(ShareError::Closed),
        }
    }
}

/// A queue the host shared with this task: `multiprocessing.Queue`.
#[derive(Debug)]
pub struct Queue<T> {
    channel: Channel,
    _values: PhantomData<fn(T) -> T>,
}

impl<T> Clone for Queue<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Queue<T> {}

/// Opens the queue the host shared under `name`.
///
/// # Errors
///
/// [`ShareError::NotGranted`] when the host shared no queue by that name.
pub fn queue<T: Serialize + DeserializeOwned>(name: &str) -> Result<Queue<T>, ShareError> {
    match ffi::queue_open(name) {
        handle if handle >= 0 => Ok(Queue {
            channel: Channel(handle),
            _values: PhantomData,
        }),
        _ => Err(ShareError::NotGranted {
            what: "queue",
            name: name.to_owned(),
        }),
    }
}

impl<T: Serialize + DeserializeOwned> Queue<T> {
    /// Puts `value`, waiting while the queue is full.
    ///
    /// # Errors
    ///
    /// [`ShareError::Closed`], [`ShareError::TooLarge`], [`ShareError::Serde`].
    pub fn put(&self, value: &T) -> Result<(), ShareError> {
        self.channel.send(value, None).map(drop)
    }

    /// Puts `value` if there is room now; `false` when the queue is full.
    ///
    /// # Errors
    ///
    /// As for [`put`](Queue::put).
    pub fn try_put(&self, value: &T) -> Result<bool, ShareError> {
        self.channel.send(value, Some(Duration::ZERO))
    }

    /// Puts `value`, waiting at most `timeout` for room.
    ///
    /// # Errors
    ///
    /// As for [`put`](Queue::put).
    pub fn put_timeout(&self, value: &T, timeout: Duration) -> Result<bool, ShareError> {
        self.channel.send(value, Some(timeout))
    }

    /// Takes the oldest value, waiting while the queue is empty.
    ///
    /// # Errors
    ///
    /// [`ShareError::Closed`] once the queue is closed and drained;
    /// [`ShareError::Serde`] for a value that is not a `T`.
    pub fn get(&self) -> Result<T, ShareError> {
        self.channel.recv(None)?.ok_or(ShareError::Closed)
    }

    /// Takes the oldest value if there is one now.
    ///
    /// # Errors
    ///
    /// As for [`get`](Queue::get).
    pub fn try_get(&self) -> Result<Option<T>, ShareError> {
        self.channel.recv(Some(Duration::ZERO))
    }

    /// Takes the oldest value, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// As for [`get`](Queue::get).
    pub fn get_timeout(&self, timeout: Duration) -> Result<Option<T>, ShareError> {
        self.channel.recv(Some(timeout))
    }

    /// Closes the queue for everyone (the host and every task).
    pub fn close(&self) {
        ffi::channel_close(self.channel.0);
    }
}

/// This task's end of the pipe to whoever submitted it:
/// `multiprocessing.Pipe`.
#[derive(Debug, Clone, Copy)]
pub struct Pipe {
    channel: Channel,
}

/// Opens this task's end of its pipe.
///
/// # Errors
///
/// [`ShareError::NotGranted`] when the task was given no pipe.
pub fn pipe() -> Result<Pipe, ShareError> {
    match ffi::pipe_open() {
        handle if handle >= 0 => Ok(Pipe {
            channel: Channel(handle),
        }),
        _ => Err(ShareError::NotGranted {
            what: "pipe",
            name: "pipe".to_owned(),
        }),
    }
}

impl Pipe {
    /// Sends `value` to the other end, waiting while the pipe is full.
    ///
    /// # Errors
    ///
    /// [`ShareError::Closed`] once the other end is gone;
    /// [`ShareError::TooLarge`], [`ShareError::Serde`].
    pub fn send<T: Serialize + ?Sized>(&self, value: &T) -> Result<(), ShareError> {
        self.channel.send(value, None).map(drop)
    }

    /// Receives the next value, waiting for one.
    ///
    /// # Errors
    ///
    /// [`ShareError::Closed`] once the other end is gone and drained;
    /// [`ShareError::Serde`] for a value that is not a `T`.
    pub fn recv<T: DeserializeOwned>(&self) -> Result<T, ShareError> {
        self.channel.recv(None)?.ok_or(ShareError::Closed)
    }

    /// Receives, waiting at most `timeout`; `None` when nothing came.
    ///
    /// # Errors
    ///
    /// As for [`recv`](Pipe::recv).
    pub fn recv_timeout<T: DeserializeOwned>(
        &self,
        timeout: Duration,
    ) -> Result<Option<T>, ShareError> {
        self.channel.recv(Some(timeout))
    }
}

/// A shared region the host granted this task: bytes every worker sees,
/// with atomic words and futex-style waits.
#[derive(Debug, Clone, Copy)]
pub struct Region {
    pub(crate) handle: i32,
    size: u64,
}

/// Opens the region the host shared under `name`. A lock, event, semaphore
/// or barrier the host shared is a region too: its words start at 0.
///
/// # Errors
///
/// [`ShareError::NotGranted`] when the host shared no region by that name.
pub fn region(name: &str) -> Result<Region, ShareError> {
    match ffi::region_open(name) {
        handle if handle >= 0 => Ok(Region {
            handle,
            size: ffi::region_size(handle) as u64,
        }),
        _ => Err(ShareError::NotGranted {
            what: "region",
            name: name.to_owned(),
        }),
    }
}

macro_rules! words {
    ($bits:literal, $ty:ty,
     $load:ident, $store:ident, $add:ident, $sub:ident, $swap:ident, $cas:ident) => {
        #[doc = concat!("Reads the ", $bits, "-bit word at `offset`.")]
        ///
        /// # Errors
        ///
        /// [`ShareError::OutOfBounds`], [`ShareError::Misaligned`].
        pub fn $load(&self, offset: u64) -> Result<$ty, ShareError> {
            self.op::<$ty>(offset, atomic::LOAD, 0, 0)
        }

        #[doc = concat!("Writes the ", $bits, "-bit word at `offset`.")]
        ///
        /// # Errors
        ///
        /// As for the load.
        pub fn $store(&self, offset: u64, value: $ty) -> Result<(), ShareError> {
            self.op::<$ty>(offset, atomic::STORE, value, 0).map(drop)
        }

        #[doc = concat!("Adds to the ", $bits, "-bit word at `offset` (wrapping); returns the old value.")]
        ///
        /// # Errors
        ///
        /// As for the load.
        pub fn $add(&self, offset: u64, delta: $ty) -> Result<$ty, ShareError> {
            self.op::<$ty>(offset, atomic::FETCH_ADD, delta, 0)
        }

        #[doc = concat!("Subtracts from the ", $bits, "-bit word at `offset` (wrapping); returns the old value.")]
        ///
        /// # Errors
        ///
        /// As for the load.
        pub fn $sub(&self, offset: u64, delta: $ty) -> Result<$ty, ShareError> {
            self.op::<$ty>(offset, atomic::FETCH_SUB, delta, 0)
        }

        #[doc = concat!("Writes the ", $bits, "-bit word at `offset`; returns the old value.")]
        ///
        /// # Errors
        ///
        /// As for the load.
        pub fn $swap(&self, offset: u64, value: $ty) -> Result<$ty, ShareError> {
            self.op::<$ty>(offset, atomic::SWAP, value, 0)
        }

        #[doc = concat!("Writes `new` to the ", $bits, "-bit word at `offset` if it holds `current`: `Ok(current)`, else `Err(actual)`.")]
        ///
        /// # Errors
        ///
        /// As for the load.
        pub fn $cas(
            &self,
            offset: u64,
            current: $ty,
            new: $ty,
        ) -> Result<Result<$ty, $ty>, ShareError> {
            let old = self.op::<$ty>(offset, atomic::COMPARE_EXCHANGE, current, new)?;
            Ok(if old == current { Ok(old) } else { Err(old) })
        }
    };
}

/// A word type the region's atomics work on.
trait Word: Copy {
    const BYTES: u64;
    fn call(handle: i32, op: i32, offset: u64, a: Self, b: Self) -> Self;
}

impl Word for u32 {
    const BYTES: u64 = 4;
    fn call(handle: i32, op: i32, offset: u64, a: u32, b: u32) -> u32 {
        ffi::atomic32(handle, op, offset, a, b)
    }
}

impl Word for u64 {
    const BYTES: u64 = 8;
    fn call(handle: i32, op: i32, offset: u64, a: u64, b: u64) -> u64 {
        ffi::atomic64(handle, op, offset, a, b)
    }
}

impl Region {
    /// The region's size in bytes.
    pub fn len(&self) -> u64 {
        self.size
    }

    /// Always `false`: a region has at least one byte.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Checks `len` bytes at `offset`, aligned to `align`, as the host
    /// would: an error here instead of a trap there.
    pub(crate) fn check(&self, offset: u64, len: u64, align: u64) -> Result<(), ShareError> {
        if offset.checked_add(len).is_none_or(|end| end > self.size) {
            return Err(ShareError::OutOfBounds {
                offset,
                len,
                size: self.size,
            });
        }
        if !offset.is_multiple_of(align) {
            return Err(ShareError::Misaligned { offset, align });
        }
        Ok(())
    }

    fn op<W: Word>(&self, offset: u64, op: i32, a: W, b: W) -> Result<W, ShareError> {
        self.check(offset, W::BYTES, W::BYTES)?;
        Ok(W::call(self.handle, op, offset, a, b))
    }

    /// Copies `buf.len()` bytes at `offset` out of the region.
    ///
    /// # Errors
    ///
    /// [`ShareError::OutOfBounds`].
    pub fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), ShareError> {
        self.check(offset, buf.len() as u64, 1)?;
        ffi::region_read(self.handle, offset, buf);
        Ok(())
    }

    /// Copies `bytes` into the region at `offset`.
    ///
    /// # Errors
    ///
    /// [`ShareError::OutOfBounds`].
    pub fn write(&self, offset: u64, bytes: &[u8]) -> Result<(), ShareError> {
        self.check(offset, bytes.len() as u64, 1)?;
        ffi::region_write(self.handle, offset, bytes);
        Ok(())
    }

    words!(
        "32",
        u32,
        load_u32,
        store_u32,
        fetch_add_u32,
        fetch_sub_u32,
        swap_u32,
        compare_exchange_u32
    );
    words!(
        "64",
        u64,
        load_u64,
        store_u64,
        fetch_add_u64,
        fetch_sub_u64,
        swap_u64,
        compare_exchange_u64
    );

    /// Sleeps while the 32-bit word at `offset` holds `expected`, for at
    /// most `timeout` (`None`: as long as the task may run): `true` when
    /// woken (perhaps spuriously), `false` when the word held another value
    /// or the timeout passed.
    ///
    /// # Errors
    ///
    /// [`ShareError::OutOfBounds`], [`ShareError::Misaligned`].
    pub fn wait_u32(
        &self,
        offset: u64,
        expected: u32,
        timeout: Option<Duration>,
    ) -> Result<bool, ShareError> {
        self.check(offset, 4, 4)?;
        Ok(ffi::region_wait(self.handle, offset, expected, nanos(timeout)) == abi::WOKEN)
    }

    /// Wakes up to `count` waiters on the 32-bit word at `offset`, in any
    /// worker or the host; returns `count` (capped at `i32::MAX`), the same
    /// in both isolations: a worker process does not wait to learn how many
    /// woke.
    ///
    /// # Errors
    ///
    /// [`ShareError::OutOfBounds`], [`ShareError::Misaligned`].
    pub fn notify(&self, offset: u64, count: u32) -> Result<u32, ShareError> {
        self.check(offset, 4, 4)?;
        Ok(ffi::region_notify(self.handle, offset, count))
    }
}
