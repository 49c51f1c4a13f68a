//! The host side of the sharing imports (`wasmproc_abi::share`): a task's
//! handles to the queues, pipe and regions it was granted, and the host
//! functions over them.
//!
//! Waits (a receive on an empty channel, a send to a full one, a wait on a
//! word) are async host functions: the task's deadline and cancel signal
//! race them in `run::driver` like any other call, so no task stays stuck
//! on a queue. Everything else is a plain call, cheap enough for a guest to
//! count with atomics in a loop.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use wasmproc_abi::share::{self as abi, atomic};
use wasmtime::{Caller, Linker};

use super::HostState;
use super::sdk::{guest_memory, offset, read_guest};
use crate::share::{
    Channel, Granted, Grants, Holder, PIPE, RecvError, RemoteLink, SendError, Window, check_span,
};

/// A task's handles, opened by name from its grants. A name opened again
/// gets the handle it got the first time, so a task holds at most one
/// handle per grant however often it opens them.
#[derive(Default)]
pub(crate) struct ShareState {
    grants: Grants,
    channels: Vec<Endpoint>,
    windows: Vec<OpenWindow>,
    /// The handle of each channel opened, by name (`None`: the pipe).
    channel_handles: HashMap<Option<String>, i32>,
    /// The handle of each region opened, by name.
    window_handles: HashMap<String, i32>,
    /// The message the last `channel_recv` took, until `message_read`.
    held: Vec<u8>,
    /// The task's lock-holder id, made on first use; it ends with the store.
    holder: Option<Holder>,
}

/// Where a channel handle sends and receives.
#[derive(Clone)]
enum Endpoint {
    /// One queue for both, or the two directions of a pipe.
    Local { send: Channel, recv: Channel },
    /// A channel the pool's process holds (in a worker process).
    Remote { grant: u32, max_message: usize },
}

/// An open region: the granted window, its name (for errors), and its
/// index (for waits carried out by the pool's process).
struct OpenWindow {
    window: Window,
    name: String,
    grant: u32,
}

impl ShareState {
    pub(crate) fn new(grants: Grants) -> ShareState {
        ShareState {
            grants,
            channels: Vec::new(),
            windows: Vec::new(),
            channel_handles: HashMap::new(),
            window_handles: HashMap::new(),
            held: Vec::new(),
            holder: None,
        }
    }

    fn remote(&self) -> Option<&RemoteLink> {
        self.grants.remote.as_ref()
    }

    /// The id the task holds locks under: the pool's, in a worker process;
    /// else one made on first use.
    fn holder_id(&mut self) -> u32 {
        match &self.grants.remote {
            Some(remote) => remote.holder,
            None => self.holder.get_or_insert_with(Holder::new).id(),
        }
    }
}

impl Drop for ShareState {
    fn drop(&mut self) {
        // The holder ends first, then its waiters look again: a lock it
        // still holds is taken over by the next locker.
        if self.holder.take().is_some() {
            for grant in self.grants.named.values() {
                if let Granted::Window(window) = &grant.0 {
                    window.region.inner.wake_all();
                }
            }
        }
    }
}

/// A guest's bad region access: a trap whose message names the region.
fn region_trap(name: &str, error: crate::error::Error) -> wasmtime::Error {
    wasmtime::format_err!("shared region `{name}`: {error}")
}

/// The timeout of a wait: negative waits as long as the task may run.
fn timeout_of(nanos: i64) -> Option<Duration> {
    u64::try_from(nanos).ok().map(Duration::from_nanos)
}

/// A channel handle's endpoint and the task's link to its pool, taken out
/// of the store so that a wait holds no borrow of it.
pub(crate) struct ChannelOp {
    endpoint: Endpoint,
    link: Option<RemoteLink>,
}

/// The open channel `handle`, or `None` for a bad handle.
pub(crate) fn channel_op(share: &ShareState, handle: i32) -> Option<ChannelOp> {
    let endpoint = share.channels.get(usize::try_from(handle).ok()?).cloned()?;
    Some(ChannelOp {
        endpoint,
        link: share.remote().cloned(),
    })
}

impl ChannelOp {
    /// The longest message the channel takes.
    pub(crate) fn max_message(&self) -> usize {
        match &self.endpoint {
            Endpoint::Local { send, .. } => send.max_message(),
            Endpoint::Remote { max_message, .. } => *max_message,
        }
    }

    /// Sends `message` (`channel_send`): 0 or the code.
    pub(crate) async fn send(self, message: Vec<u8>, timeout_ns: i64) -> i32 {
        if message.len() > self.max_message() {
            return abi::TOO_LARGE;
        }
        let timeout = timeout_of(timeout_ns);
        let sent = match (self.endpoint, self.link) {
            (Endpoint::Local { send, .. }, _) => send.send_within(message, timeout).await,
            (Endpoint::Remote { grant, .. }, Some(link)) => {
                link.to.send(grant, message, timeout).await
            }
            (Endpoint::Remote { .. }, None) => return abi::BAD_HANDLE,
        };
        send_code(sent)
    }

    /// Takes the next message (`channel_recv`): the bytes or the code.
    pub(crate) async fn recv(self, timeout_ns: i64) -> Result<Vec<u8>, i32> {
        let timeout = timeout_of(timeout_ns);
        let received = match (self.endpoint, self.link) {
            (Endpoint::Local { recv, .. }, _) => recv.recv_within(timeout).await,
            (Endpoint::Remote { grant, .. }, Some(link)) => link.to.recv(grant, timeout).await,
            (Endpoint::Remote { .. }, None) => return Err(abi::BAD_HANDLE),
        };
        received.map_err(|error| match error {
            RecvError::Closed => abi::CLOSED,
            RecvError::Empty => abi::EMPTY,
        })
    }

    /// Closes the channel for everyone (`channel_close`): 0.
    pub(crate) fn close(self) -> i32 {
        match (self.endpoint, self.link) {
            (Endpoint::Local { send, .. }, _) => send.close(),
            (Endpoint::Remote { grant, .. }, Some(link)) => link.to.close(grant),
            (Endpoint::Remote { .. }, None) => {}
        }
        0
    }
}

/// Opens the queue granted under `name` (`queue_open`): its handle, the
/// same each time, or `NOT_GRANTED`.
pub(crate) fn queue_open(share: &mut ShareState, name: String) -> i32 {
    if let Some(handle) = share.channel_handles.get(&Some(name.clone())) {
        return *handle;
    }
    let endpoint = match share.grants.named.get(&name).map(|g| &g.0) {
        Some(Granted::Channel(channel)) => Endpoint::Local {
            send: channel.clone(),
            recv: channel.clone(),
        },
        Some(Granted::RemoteChannel { max_message }) => Endpoint::Remote {
            grant: share.grants.index_of(&name),
            max_message: *max_message,
        },
        _ => return abi::NOT_GRANTED,
    };
    share.channels.push(endpoint);
    let handle = handle_of(share.channels.len());
    share.channel_handles.insert(Some(name), handle);
    handle
}

/// Opens the task's end of its pipe (`pipe_open`): its handle, the same
/// each time, or `NOT_GRANTED`.
pub(crate) fn pipe_open(share: &mut ShareState) -> i32 {
    if let Some(handle) = share.channel_handles.get(&None) {
        return *handle;
    }
    let endpoint = match (&share.grants.pipe, share.remote()) {
        (Some(end), _) => {
            let (send, recv) = end.channels();
            Endpoint::Local { send, recv }
        }
        (None, Some(remote)) if remote.pipe => Endpoint::Remote {
            grant: PIPE,
            max_message: crate::limits::Limits::default().max_args,
        },
        _ => return abi::NOT_GRANTED,
    };
    share.channels.push(endpoint);
    let handle = handle_of(share.channels.len());
    share.channel_handles.insert(None, handle);
    handle
}

/// Opens the region granted under `name` (`region_open`): its handle, the
/// same each time, or `NOT_GRANTED`.
pub(crate) fn region_open(share: &mut ShareState, name: String) -> i32 {
    if let Some(handle) = share.window_handles.get(&name) {
        return *handle;
    }
    let Some(Granted::Window(window)) = share.grants.named.get(&name).map(|g| &g.0) else {
        return abi::NOT_GRANTED;
    };
    let open = OpenWindow {
        window: window.clone(),
        grant: share.grants.index_of(&name),
        name: name.clone(),
    };
    share.windows.push(open);
    let handle = handle_of(share.windows.len());
    share.window_handles.insert(name, handle);
    handle
}

/// The open region `handle`'s size in bytes (`region_size`).
pub(crate) fn region_size(share: &ShareState, handle: i32) -> wasmtime::Result<i64> {
    with_window(share, handle, |window, _| Ok(window.len as i64))
}

/// `len` bytes of an open region, checked to lie inside it: what
/// `region_read` and `region_write` copy, with no borrow of the store.
pub(crate) struct RegionSpan {
    window: Window,
    at: usize,
}

/// The span of `len` bytes at `at` in the open region `handle`; a trap
/// naming the region when they fall outside it.
pub(crate) fn region_span(
    share: &ShareState,
    handle: i32,
    at: i64,
    len: usize,
) -> wasmtime::Result<RegionSpan> {
    with_window(share, handle, |window, name| {
        Ok(RegionSpan {
            at: place(window, name, at, len as u64, 1)? as usize,
            window: window.clone(),
        })
    })
}

impl RegionSpan {
    /// Copies the region's bytes into `buf` (as long as the span).
    pub(crate) fn read_into(&self, buf: &mut [u8]) {
        self.window.region.inner.copy_out(self.at, buf);
    }

    /// Copies `bytes` (as long as the span) into the region.
    pub(crate) fn write_from(&self, bytes: &[u8]) {
        self.window.region.inner.copy_in(self.at, bytes);
    }
}

/// One of the `atomic` operations on the 32-bit word at `at`
/// (`region_atomic32`): the word's previous value.
pub(crate) fn region_atomic32(
    share: &ShareState,
    handle: i32,
    op: i32,
    at: i64,
    a: i32,
    b: i32,
) -> wasmtime::Result<i64> {
    with_window(share, handle, |window, name| {
        let word = window.region.inner.word32(place(window, name, at, 4, 4)?);
        Ok(i64::from(atomic32(word, op, a as u32, b as u32)?))
    })
}

/// One of the `atomic` operations on the 64-bit word at `at`
/// (`region_atomic64`): the word's previous value.
pub(crate) fn region_atomic64(
    share: &ShareState,
    handle: i32,
    op: i32,
    at: i64,
    a: i64,
    b: i64,
) -> wasmtime::Result<i64> {
    with_window(share, handle, |window, name| {
        let word = window.region.inner.word64(place(window, name, at, 8, 8)?);
        Ok(atomic64(word, op, a as u64, b as u64)? as i64)
    })
}

/// A 32-bit word of an open region to wait on or notify, taken out of the
/// store so that a wait holds no borrow of it.
pub(crate) struct WordOp {
    at: u64,
    window: Window,
    grant: u32,
    link: Option<RemoteLink>,
}

/// The word at `at` of the open region `handle`; a trap naming the region
/// when it falls outside it or is not aligned.
pub(crate) fn word_op(share: &ShareState, handle: i32, at: i64) -> wasmtime::Result<WordOp> {
    with_open(share, handle, |open| {
        Ok(WordOp {
            at: place(&open.window, &open.name, at, 4, 4)?,
            window: open.window.clone(),
            grant: open.grant,
            link: share.remote().cloned(),
        })
    })
}

impl WordOp {
    /// Sleeps while the word holds `expected` (`region_wait`, or with
    /// `lock`, `region_lock_wait`): the wait's code.
    pub(crate) async fn wait(self, expected: i32, timeout_ns: i64, lock: bool) -> i32 {
        let (expected, timeout) = (expected as u32, timeout_of(timeout_ns));
        let wait = match self.link {
            Some(link) => {
                link.to
                    .wait(self.grant, self.at, expected, timeout, lock)
                    .await
            }
            None => {
                self.window
                    .region
                    .inner
                    .wait_async(self.at, expected, timeout, lock)
                    .await
            }
        };
        wait.code()
    }

    /// Wakes up to `count` waiters (`region_notify`): the count asked for.
    pub(crate) async fn notify(self, count: i32) -> i32 {
        // The count is unsigned (the SDK passes a `u32`: a negative `i32`
        // is 2^31 or more, every waiter). The answer is the count asked
        // for, capped to stay positive, in both isolations: a worker
        // process does not wait to learn how many woke (an unlock must not
        // cost a round trip).
        let count = count as u32;
        match self.link {
            Some(link) => {
                link.to.notify(self.grant, self.at, count).await;
            }
            None => {
                self.window.region.inner.notify(self.at, count);
            }
        }
        i32::try_from(count).unwrap_or(i32::MAX)
    }
}

/// The id the task holds locks under (`holder_id`).
pub(crate) fn holder_id(share: &mut ShareState) -> i32 {
    share.holder_id() as i32
}

/// Runs `f` on the open region `handle`.
fn with_open<R>(
    share: &ShareState,
    handle: i32,
    f: impl FnOnce(&OpenWindow) -> wasmtime::Result<R>,
) -> wasmtime::Result<R> {
    match usize::try_from(handle)
        .ok()
        .and_then(|index| share.windows.get(index))
    {
        Some(open) => f(open),
        None => Err(wasmtime::format_err!(
            "{handle} is not a handle of an open shared region"
        )),
    }
}

/// Runs `f` on the open region `handle`'s window, with its grant's name.
fn with_window<R>(
    share: &ShareState,
    handle: i32,
    f: impl FnOnce(&Window, &str) -> wasmtime::Result<R>,
) -> wasmtime::Result<R> {
    with_open(share, handle, |open| f(&open.window, &open.name))
}

/// The absolute offset of `len` bytes at `at` in a window, aligned to
/// `align`; a trap naming the window's grant when they fall outside it.
fn place(window: &Window, name: &str, at: i64, len: u64, align: u64) -> wasmtime::Result<u64> {
    match u64::try_from(at) {
        Ok(at) => match check_span(window.len, at, len, align) {
            Ok(()) => Ok(window.base + at),
            Err(error) => Err(region_trap(name, error)),
        },
        Err(_) => Err(wasmtime::format_err!(
            "shared region `{name}`: offset {at} is negative"
        )),
    }
}

/// The longest name read; a longer one is cut (and so not granted).
pub(crate) const MAX_NAME: usize = 256;

fn read_name(caller: &mut Caller<'_, HostState>, ptr: i32, len: i32) -> wasmtime::Result<String> {
    Ok(grant_name(&read_guest(caller, ptr, len, MAX_NAME)?))
}

/// A grant's name as a guest gives it, by one rule for the core and the
/// WIT imports: its first [`MAX_NAME`] bytes, with invalid UTF-8 (a
/// character cut there included) replaced, so that the same bytes open
/// the same grant from a module and from a component.
pub(super) fn grant_name(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_NAME)]).into_owned()
}

fn send_code(result: Result<(), SendError>) -> i32 {
    result.map_or_else(SendError::code, |()| 0)
}

/// Handles count from 0 in the order opened.
fn handle_of(count: usize) -> i32 {
    i32::try_from(count - 1).unwrap_or(abi::BAD_HANDLE)
}

/// The core module `wasmproc_v1`'s sharing imports: guest memory in and
/// out around the operations above.
pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    let module = wasmproc_abi::IMPORT_MODULE;
    linker.func_wrap(
        module,
        abi::QUEUE_OPEN,
        |mut caller: Caller<'_, HostState>, ptr: i32, len: i32| -> wasmtime::Result<i32> {
            let name = read_name(&mut caller, ptr, len)?;
            Ok(queue_open(&mut caller.data_mut().share, name))
        },
    )?;
    linker.func_wrap(
        module,
        abi::PIPE_OPEN,
        |mut caller: Caller<'_, HostState>| -> i32 { pipe_open(&mut caller.data_mut().share) },
    )?;
    linker.func_wrap_async(
        module,
        abi::CHANNEL_SEND,
        |mut caller: Caller<'_, HostState>, (handle, ptr, len, timeout): (i32, i32, i32, i64)| {
            Box::new(async move {
                let Some(op) = channel_op(&caller.data().share, handle) else {
                    return Ok(abi::BAD_HANDLE);
                };
                // Checked before the copy: a message too large is not read.
                if offset(len) > op.max_message() {
                    return Ok(abi::TOO_LARGE);
                }
                let message = read_guest(&mut caller, ptr, len, usize::MAX)?;
                Ok(op.send(message, timeout).await)
            })
        },
    )?;
    linker.func_wrap_async(
        module,
        abi::CHANNEL_RECV,
        |mut caller: Caller<'_, HostState>, (handle, timeout): (i32, i64)| {
            Box::new(async move {
                let Some(op) = channel_op(&caller.data().share, handle) else {
                    return Ok(i64::from(abi::BAD_HANDLE));
                };
                Ok(match op.recv(timeout).await {
                    Ok(message) => {
                        let len = message.len() as i64;
                        caller.data_mut().share.held = message;
                        len
                    }
                    Err(code) => i64::from(code),
                })
            })
        },
    )?;
    linker.func_wrap(
        module,
        abi::MESSAGE_READ,
        |mut caller: Caller<'_, HostState>, ptr: i32| -> wasmtime::Result<()> {
            let memory = guest_memory(&mut caller)?;
            let held = std::mem::take(&mut caller.data_mut().share.held);
            memory.write(&mut caller, offset(ptr), &held).map_err(|_| {
                wasmtime::format_err!("message_read: the buffer lies outside guest memory")
            })
        },
    )?;
    linker.func_wrap(
        module,
        abi::CHANNEL_CLOSE,
        |caller: Caller<'_, HostState>, handle: i32| -> i32 {
            channel_op(&caller.data().share, handle).map_or(abi::BAD_HANDLE, ChannelOp::close)
        },
    )?;
    add_regions(linker)
}

fn add_regions(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    let module = wasmproc_abi::IMPORT_MODULE;
    linker.func_wrap(
        module,
        abi::REGION_OPEN,
        |mut caller: Caller<'_, HostState>, ptr: i32, len: i32| -> wasmtime::Result<i32> {
            let name = read_name(&mut caller, ptr, len)?;
            Ok(region_open(&mut caller.data_mut().share, name))
        },
    )?;
    linker.func_wrap(
        module,
        abi::REGION_SIZE,
        |caller: Caller<'_, HostState>, handle: i32| -> wasmtime::Result<i64> {
            region_size(&caller.data().share, handle)
        },
    )?;
    linker.func_wrap(
        module,
        abi::REGION_READ,
        |mut caller: Caller<'_, HostState>,
         handle: i32,
         at: i64,
         ptr: i32,
         len: i32|
         -> wasmtime::Result<()> {
            let span = region_span(&caller.data().share, handle, at, offset(len))?;
            let memory = guest_memory(&mut caller)?;
            let start = offset(ptr);
            let Some(buf) = memory
                .data_mut(&mut caller)
                .get_mut(start..start + offset(len))
            else {
                wasmtime::bail!("region_read: the buffer lies outside guest memory");
            };
            span.read_into(buf);
            Ok(())
        },
    )?;
    linker.func_wrap(
        module,
        abi::REGION_WRITE,
        |mut caller: Caller<'_, HostState>,
         handle: i32,
         at: i64,
         ptr: i32,
         len: i32|
         -> wasmtime::Result<()> {
            let span = region_span(&caller.data().share, handle, at, offset(len))?;
            let memory = guest_memory(&mut caller)?;
            let start = offset(ptr);
            let Some(bytes) = memory.data(&caller).get(start..start + offset(len)) else {
                wasmtime::bail!("region_write: the buffer lies outside guest memory");
            };
            span.write_from(bytes);
            Ok(())
        },
    )?;
    linker.func_wrap(
        module,
        abi::REGION_ATOMIC32,
        |caller: Caller<'_, HostState>,
         handle: i32,
         op: i32,
         at: i64,
         a: i32,
         b: i32|
         -> wasmtime::Result<i64> {
            region_atomic32(&caller.data().share, handle, op, at, a, b)
        },
    )?;
    linker.func_wrap(
        module,
        abi::REGION_ATOMIC64,
        |caller: Caller<'_, HostState>,
         handle: i32,
         op: i32,
         at: i64,
         a: i64,
         b: i64|
         -> wasmtime::Result<i64> {
            region_atomic64(&caller.data().share, handle, op, at, a, b)
        },
    )?;
    for (import, lock) in [(abi::REGION_WAIT, false), (abi::REGION_LOCK_WAIT, true)] {
        linker.func_wrap_async(
            module,
            import,
            move |caller: Caller<'_, HostState>,
                  (handle, at, expected, timeout): (i32, i64, i32, i64)| {
                Box::new(async move {
                    let word = word_op(&caller.data().share, handle, at)?;
                    Ok(word.wait(expected, timeout, lock).await)
                })
            },
        )?;
    }
    linker.func_wrap_async(
        module,
        abi::REGION_NOTIFY,
        |caller: Caller<'_, HostState>, (handle, at, count): (i32, i64, i32)| {
            Box::new(async move {
                let word = word_op(&caller.data().share, handle, at)?;
                Ok(word.notify(count).await)
            })
        },
    )?;
    linker.func_wrap(
        module,
        abi::HOLDER_ID,
        |mut caller: Caller<'_, HostState>| -> i32 { holder_id(&mut caller.data_mut().share) },
    )?;
    Ok(())
}

fn unknown_op(op: i32) -> wasmtime::Error {
    wasmtime::format_err!("{op} is not an atomic operation of wasmproc_abi::share::atomic")
}

fn atomic32(word: &AtomicU32, op: i32, a: u32, b: u32) -> wasmtime::Result<u32> {
    const SEQ: Ordering = Ordering::SeqCst;
    Ok(match op {
        atomic::LOAD => word.load(SEQ),
        atomic::STORE => word.swap(a, SEQ),
        atomic::FETCH_ADD => word.fetch_add(a, SEQ),
        atomic::FETCH_SUB => word.fetch_sub(a, SEQ),
        atomic::SWAP => word.swap(a, SEQ),
        atomic::COMPARE_EXCHANGE => word
            .compare_exchange(a, b, SEQ, SEQ)
            .unwrap_or_else(|actual| actual),
        _ => return Err(unknown_op(op)),
    })
}

fn atomic64(word: &AtomicU64, op: i32, a: u64, b: u64) -> wasmtime::Result<u64> {
    const SEQ: Ordering = Ordering::SeqCst;
    Ok(match op {
        atomic::LOAD => word.load(SEQ),
        atomic::STORE => word.swap(a, SEQ),
        atomic::FETCH_ADD => word.fetch_add(a, SEQ),
        atomic::FETCH_SUB => word.fetch_sub(a, SEQ),
        atomic::SWAP => word.swap(a, SEQ),
        atomic::COMPARE_EXCHANGE => word
            .compare_exchange(a, b, SEQ, SEQ)
            .unwrap_or_else(|actual| actual),
        _ => return Err(unknown_op(op)),
    })
}
