//! The imports for talking and sharing: channels (queues and the task's
//! pipe) and shared regions, in the module [`IMPORT_MODULE`](crate::IMPORT_MODULE).
//!
//! Any language can call them; `wasmproc-guest` wraps them for Rust.
//! Pointers and lengths are `i32` (guest memory offsets), offsets into a
//! region and timeouts are `i64`. A timeout is in nanoseconds: negative
//! waits for as long as the task may run, `0` does not wait.
//!
//! Nothing is granted by default: a name the host did not grant the task
//! opens to [`NOT_GRANTED`].
//!
//! # Channels
//!
//! - `queue_open(name_ptr, name_len) -> i32`: a handle to the queue the host
//!   granted under that name, or [`NOT_GRANTED`].
//! - `pipe_open() -> i32`: a handle to the task's end of its pipe, or
//!   [`NOT_GRANTED`] when the task was given none.
//! - `channel_send(handle, ptr, len, timeout_ns) -> i32`: puts the message
//!   (JSON bytes) on the channel: `0`, or [`FULL`] (timed out while the
//!   channel stayed full), [`CLOSED`], [`TOO_LARGE`], [`BAD_HANDLE`]. In a
//!   worker process a send without a timeout (of up to 64 KiB) goes ahead
//!   of its answer: it returns `0` at once, and should the channel turn out
//!   closed, the message is dropped and the task's next send there fails
//!   with [`CLOSED`]. The task's outcome is reported only once its sends
//!   are in their channels.
//! - `channel_recv(handle, timeout_ns) -> i64`: takes the next message and
//!   holds it for `message_read`; returns its length, or [`EMPTY`] (timed
//!   out), [`CLOSED`] (closed and drained), [`BAD_HANDLE`].
//! - `message_read(ptr)`: copies the held message (the length
//!   `channel_recv` returned) to `ptr`.
//! - `channel_close(handle) -> i32`: closes the channel for everyone: sends
//!   fail, receives drain what is left, then fail with [`CLOSED`].
//!
//! # Regions
//!
//! - `region_open(name_ptr, name_len) -> i32`: a handle, or [`NOT_GRANTED`].
//! - `region_size(handle) -> i64`: the region's size in bytes.
//! - `region_read(handle, offset, ptr, len)` and
//!   `region_write(handle, offset, ptr, len)`: copy bytes out of and into
//!   the region.
//! - `region_atomic32(handle, op, offset, a, b) -> i64` and
//!   `region_atomic64(handle, op, offset, a, b) -> i64`: one of the
//!   [`atomic`] operations on the aligned word at `offset`; returns the
//!   word's previous value (zero-extended for 32 bits).
//! - `region_wait(handle, offset, expected, timeout_ns) -> i32`: sleeps
//!   while the 32-bit word at `offset` holds `expected` (futex-style):
//!   [`WOKEN`], [`NOT_EQUAL`] or [`TIMED_OUT`]. Wakeups may be spurious.
//! - `region_notify(handle, offset, count) -> i32`: wakes up to `count`
//!   waiters on that word; returns how many woke (in a worker process,
//!   where the wake is sent without waiting for it: `count`).
//! - `region_lock_wait(handle, offset, expected, timeout_ns) -> i32`: as
//!   `region_wait`, for a lock word (see [`crate::sync`]); returns
//!   [`OWNER_GONE`] at once when the holder named in `expected` has ended.
//! - `holder_id() -> i32`: the id this task holds locks under.
//!
//! An offset outside the region, or not aligned to the word's size, is a
//! bug in the caller: the host ends the task with a trap whose message
//! names the region, the offset and the size. The SDK checks first and
//! returns an error instead.

/// `queue_open(name_ptr: i32, name_len: i32) -> i32`
pub const QUEUE_OPEN: &str = "queue_open";
/// `pipe_open() -> i32`
pub const PIPE_OPEN: &str = "pipe_open";
/// `channel_send(handle: i32, ptr: i32, len: i32, timeout_ns: i64) -> i32`
pub const CHANNEL_SEND: &str = "channel_send";
/// `channel_recv(handle: i32, timeout_ns: i64) -> i64`
pub const CHANNEL_RECV: &str = "channel_recv";
/// `message_read(ptr: i32)`
pub const MESSAGE_READ: &str = "message_read";
/// `channel_close(handle: i32) -> i32`
pub const CHANNEL_CLOSE: &str = "channel_close";
/// `region_open(name_ptr: i32, name_len: i32) -> i32`
pub const REGION_OPEN: &str = "region_open";
/// `region_size(handle: i32) -> i64`
pub const REGION_SIZE: &str = "region_size";
/// `region_read(handle: i32, offset: i64, ptr: i32, len: i32)`
pub const REGION_READ: &str = "region_read";
/// `region_write(handle: i32, offset: i64, ptr: i32, len: i32)`
pub const REGION_WRITE: &str = "region_write";
/// `region_atomic32(handle: i32, op: i32, offset: i64, a: i32, b: i32) -> i64`
pub const REGION_ATOMIC32: &str = "region_atomic32";
/// `region_atomic64(handle: i32, op: i32, offset: i64, a: i64, b: i64) -> i64`
pub const REGION_ATOMIC64: &str = "region_atomic64";
/// `region_wait(handle: i32, offset: i64, expected: i32, timeout_ns: i64) -> i32`
pub const REGION_WAIT: &str = "region_wait";
/// `region_notify(handle: i32, offset: i64, count: i32) -> i32`: `count`
/// is unsigned (a negative value wakes every waiter); the answer is the
/// count asked for, capped at `i32::MAX`.
pub const REGION_NOTIFY: &str = "region_notify";
/// `region_lock_wait(handle: i32, offset: i64, expected: i32, timeout_ns: i64) -> i32`
pub const REGION_LOCK_WAIT: &str = "region_lock_wait";
/// `holder_id() -> i32`
pub const HOLDER_ID: &str = "holder_id";

/// No queue, pipe or region of that name was granted to the task.
pub const NOT_GRANTED: i32 = -1;
/// The channel is closed (and, for a receive, drained).
pub const CLOSED: i32 = -2;
/// The message is over the channel's size limit; nothing was sent.
pub const TOO_LARGE: i32 = -3;
/// A send timed out: the channel stayed full.
pub const FULL: i32 = -4;
/// A receive timed out: the channel stayed empty.
pub const EMPTY: i32 = -5;
/// The handle names no open channel or region of this task.
pub const BAD_HANDLE: i32 = -6;

/// `region_wait`: a notify woke the waiter (or it woke spuriously).
pub const WOKEN: i32 = 0;
/// `region_wait`: the word did not hold the expected value.
pub const NOT_EQUAL: i32 = 1;
/// `region_wait`: the timeout passed.
pub const TIMED_OUT: i32 = 2;
/// `region_lock_wait`: the lock's holder has ended without unlocking.
pub const OWNER_GONE: i32 = 3;

/// The operations of `region_atomic32` and `region_atomic64`. All are
/// sequentially consistent; each returns the word's previous value.
pub mod atomic {
    /// Reads the word (`a` and `b` unused).
    pub const LOAD: i32 = 0;
    /// Writes `a`.
    pub const STORE: i32 = 1;
    /// Adds `a`, wrapping.
    pub const FETCH_ADD: i32 = 2;
    /// Writes `a`, returning the old value.
    pub const SWAP: i32 = 3;
    /// Writes `b` if the word holds `a`; the returned previous value says
    /// whether it did (it equals `a`).
    pub const COMPARE_EXCHANGE: i32 = 4;
    /// Subtracts `a`, wrapping.
    pub const FETCH_SUB: i32 = 5;
}
