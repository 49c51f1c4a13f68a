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

fn endpoint(caller: &Caller<'_, HostState>, handle: i32) -> Option<Endpoint> {
    let share = &caller.data().share;
    share.channels.get(usize::try_from(handle).ok()?).cloned()
}

fn remote_link(caller: &Caller<'_, HostState>) -> Option<RemoteLink> {
    caller.data().share.remote().cloned()
}

/// Runs `f` on the open region `handle`.
fn with_open<R>(
    caller: &Caller<'_, HostState>,
    handle: i32,
    f: impl FnOnce(&OpenWindow) -> wasmtime::Result<R>,
) -> wasmtime::Result<R> {
    match usize::try_from(handle)
        .ok()
        .and_then(|index| caller.data().share.windows.get(index))
    {
        Some(open) => f(open),
        None => Err(wasmtime::format_err!(
            "{handle} is not a handle of an open shared region"
        )),
    }
}

/// Runs `f` on the open region `handle`'s window, with its grant's name.
fn with_window<R>(
    caller: &Caller<'_, HostState>,
    handle: i32,
    f: impl FnOnce(&Window, &str) -> wasmtime::Result<R>,
) -> wasmtime::Result<R> {
    with_open(caller, handle, |open| f(&open.window, &open.name))
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

fn read_name(caller: &mut Caller<'_, HostState>, ptr: i32, len: i32) -> wasmtime::Result<String> {
    let bytes = read_guest(caller, ptr, len, 256)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

fn send_code(result: Result<(), SendError>) -> i32 {
    result.map_or_else(SendError::code, |()| 0)
}

pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    let module = wasmproc_abi::IMPORT_MODULE;
    linker.func_wrap(
        module,
        abi::QUEUE_OPEN,
        |mut caller: Caller<'_, HostState>, ptr: i32, len: i32| -> wasmtime::Result<i32> {
            let name = read_name(&mut caller, ptr, len)?;
            let share = &mut caller.data_mut().share;
            if let Some(handle) = share.channel_handles.get(&Some(name.clone())) {
                return Ok(*handle);
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
                _ => return Ok(abi::NOT_GRANTED),
            };
            share.channels.push(endpoint);
            let handle = handle_of(share.channels.len());
            share.channel_handles.insert(Some(name), handle);
            Ok(handle)
        },
    )?;
    linker.func_wrap(
        module,
        abi::PIPE_OPEN,
        |mut caller: Caller<'_, HostState>| -> i32 {
            let share = &mut caller.data_mut().share;
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
        },
    )?;
    linker.func_wrap_async(
        module,
        abi::CHANNEL_SEND,
        |mut caller: Caller<'_, HostState>, (handle, ptr, len, timeout): (i32, i32, i32, i64)| {
            Box::new(async move {
                let Some(endpoint) = endpoint(&caller, handle) else {
                    return Ok(abi::BAD_HANDLE);
                };
                let max_message = match &endpoint {
                    Endpoint::Local { send, .. } => send.max_message(),
                    Endpoint::Remote { max_message, .. } => *max_message,
                };
                if offset(len) > max_message {
                    return Ok(abi::TOO_LARGE);
                }
                let message = read_guest(&mut caller, ptr, len, usize::MAX)?;
                let timeout = timeout_of(timeout);
                let sent = match endpoint {
                    Endpoint::Local { send, .. } => send.send_within(message, timeout).await,
                    Endpoint::Remote { grant, .. } => match remote_link(&caller) {
                        Some(link) => link.to.send(grant, message, timeout).await,
                        None => return Ok(abi::BAD_HANDLE),
                    },
                };
                Ok(send_code(sent))
            })
        },
    )?;
    linker.func_wrap_async(
        module,
        abi::CHANNEL_RECV,
        |mut caller: Caller<'_, HostState>, (handle, timeout): (i32, i64)| {
            Box::new(async move {
                let received = match endpoint(&caller, handle) {
                    Some(Endpoint::Local { recv, .. }) => {
                        recv.recv_within(timeout_of(timeout)).await
                    }
                    Some(Endpoint::Remote { grant, .. }) => match remote_link(&caller) {
                        Some(link) => link.to.recv(grant, timeout_of(timeout)).await,
                        None => return Ok(i64::from(abi::BAD_HANDLE)),
                    },
                    None => return Ok(i64::from(abi::BAD_HANDLE)),
                };
                Ok(match received {
                    Ok(message) => {
                        let len = message.len() as i64;
                        caller.data_mut().share.held = message;
                        len
                    }
                    Err(RecvError::Closed) => i64::from(abi::CLOSED),
                    Err(RecvError::Empty) => i64::from(abi::EMPTY),
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
            match endpoint(&caller, handle) {
                Some(Endpoint::Local { send, .. }) => send.close(),
                Some(Endpoint::Remote { grant, .. }) => {
                    if let Some(link) = remote_link(&caller) {
                        link.to.close(grant);
                    }
                }
                None => return abi::BAD_HANDLE,
            }
            0
        },
    )?;
    add_regions(linker)
}

/// Handles count from 0 in the order opened.
fn handle_of(count: usize) -> i32 {
    i32::try_from(count - 1).unwrap_or(abi::BAD_HANDLE)
}

fn add_regions(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    let module = wasmproc_abi::IMPORT_MODULE;
    linker.func_wrap(
        module,
        abi::REGION_OPEN,
        |mut caller: Caller<'_, HostState>, ptr: i32, len: i32| -> wasmtime::Result<i32> {
            let name = read_name(&mut caller, ptr, len)?;
            let share = &mut caller.data_mut().share;
            if let Some(handle) = share.window_handles.get(&name) {
                return Ok(*handle);
            }
            let Some(Granted::Window(window)) = share.grants.named.get(&name).map(|g| &g.0) else {
                return Ok(abi::NOT_GRANTED);
            };
            let open = OpenWindow {
                window: window.clone(),
                grant: share.grants.index_of(&name),
                name: name.clone(),
            };
            share.windows.push(open);
            let handle = handle_of(share.windows.len());
            share.window_handles.insert(name, handle);
            Ok(handle)
        },
    )?;
    linker.func_wrap(
        module,
        abi::REGION_SIZE,
        |caller: Caller<'_, HostState>, handle: i32| -> wasmtime::Result<i64> {
            with_window(&caller, handle, |window, _| Ok(window.len as i64))
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
            let (from, window) = with_window(&caller, handle, |window, name| {
                Ok((
                    place(window, name, at, offset(len) as u64, 1)?,
                    window.clone(),
                ))
            })?;
            let memory = guest_memory(&mut caller)?;
            let start = offset(ptr);
            let Some(buf) = memory
                .data_mut(&mut caller)
                .get_mut(start..start + offset(len))
            else {
                wasmtime::bail!("region_read: the buffer lies outside guest memory");
            };
            window.region.inner.copy_out(from as usize, buf);
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
            let (to, window) = with_window(&caller, handle, |window, name| {
                Ok((
                    place(window, name, at, offset(len) as u64, 1)?,
                    window.clone(),
                ))
            })?;
            let memory = guest_memory(&mut caller)?;
            let start = offset(ptr);
            let Some(bytes) = memory.data(&caller).get(start..start + offset(len)) else {
                wasmtime::bail!("region_write: the buffer lies outside guest memory");
            };
            window.region.inner.copy_in(to as usize, bytes);
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
            with_window(&caller, handle, |window, name| {
                let word = window.region.inner.word32(place(window, name, at, 4, 4)?);
                Ok(i64::from(atomic32(word, op, a as u32, b as u32)?))
            })
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
            with_window(&caller, handle, |window, name| {
                let word = window.region.inner.word64(place(window, name, at, 8, 8)?);
                Ok(atomic64(word, op, a as u64, b as u64)? as i64)
            })
        },
    )?;
    for (import, lock) in [(abi::REGION_WAIT, false), (abi::REGION_LOCK_WAIT, true)] {
        linker.func_wrap_async(
            module,
            import,
            move |caller: Caller<'_, HostState>,
                  (handle, at, expected, timeout): (i32, i64, i32, i64)| {
                Box::new(async move {
                    let (at, window, grant) = with_open(&caller, handle, |open| {
                        let at = place(&open.window, &open.name, at, 4, 4)?;
                        Ok((at, open.window.clone(), open.grant))
                    })?;
                    let (expected, timeout) = (expected as u32, timeout_of(timeout));
                    let wait = match remote_link(&caller) {
                        Some(link) => link.to.wait(grant, at, expected, timeout, lock).await,
                        None => {
                            window
                                .region
                                .inner
                                .wait_async(at, expected, timeout, lock)
                                .await
                        }
                    };
                    Ok(wait.code())
                })
            },
        )?;
    }
    linker.func_wrap_async(
        module,
        abi::REGION_NOTIFY,
        |caller: Caller<'_, HostState>, (handle, at, count): (i32, i64, i32)| {
            Box::new(async move {
                let (at, window, grant) = with_open(&caller, handle, |open| {
                    let at = place(&open.window, &open.name, at, 4, 4)?;
                    Ok((at, open.window.clone(), open.grant))
                })?;
                // The count is unsigned (the SDK passes a `u32`: a
                // negative `i32` is 2^31 or more, every waiter). The answer
                // is the count asked for, capped to stay positive, in both
                // isolations: a worker process does not wait to learn how
                // many woke (an unlock must not cost a round trip).
                let count = count as u32;
                match remote_link(&caller) {
                    Some(link) => {
                        link.to.notify(grant, at, count).await;
                    }
                    None => {
                        window.region.inner.notify(at, count);
                    }
                }
                Ok(i32::try_from(count).unwrap_or(i32::MAX))
            })
        },
    )?;
    linker.func_wrap(
        module,
        abi::HOLDER_ID,
        |mut caller: Caller<'_, HostState>| -> i32 { caller.data_mut().share.holder_id() as i32 },
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
