//! The host side of the sharing imports (`wasmproc_abi::share`): a task's
//! handles to the queues, pipe and regions it was granted, and the host
//! functions over them.
//!
//! Waits (a receive on an empty channel, a send to a full one, a wait on a
//! word) are async host functions: the task's deadline and cancel signal
//! race them in `run::driver` like any other call, so no task stays stuck
//! on a queue. Everything else is a plain call, cheap enough for a guest to
//! count with atomics in a loop.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use wasmproc_abi::share::{self as abi, atomic};
use wasmtime::{Caller, Linker};

use super::HostState;
use super::sdk::{guest_memory, offset, read_guest};
use crate::share::{Channel, Grants, Granted, Holder, RecvError, SendError, Window, check_span};

/// A task's handles, opened by name from its grants.
#[derive(Default)]
pub(crate) struct ShareState {
    grants: Grants,
    channels: Vec<Endpoint>,
    /// Open regions, with the names they were granted under (for errors).
    windows: Vec<(Window, String)>,
    /// The message the last `channel_recv` took, until `message_read`.
    held: Vec<u8>,
    /// The task's lock-holder id, made on first use; it ends with the store.
    holder: Option<Holder>,
}

/// Where a channel handle sends and receives: one queue for both, or the
/// two directions of a pipe.
struct Endpoint {
    send: Channel,
    recv: Channel,
}

impl ShareState {
    pub(crate) fn new(grants: Grants) -> ShareState {
        ShareState {
            grants,
            channels: Vec::new(),
            windows: Vec::new(),
            held: Vec::new(),
            holder: None,
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

fn channel(caller: &Caller<'_, HostState>, handle: i32, sending: bool) -> Option<Channel> {
    let endpoint = caller.data().share.channels.get(usize::try_from(handle).ok()?)?;
    Some(if sending { &endpoint.send } else { &endpoint.recv }.clone())
}

/// Runs `f` on the open region `handle`, with its grant's name.
fn with_window<R>(
    caller: &Caller<'_, HostState>,
    handle: i32,
    f: impl FnOnce(&Window, &str) -> wasmtime::Result<R>,
) -> wasmtime::Result<R> {
    match usize::try_from(handle)
        .ok()
        .and_then(|index| caller.data().share.windows.get(index))
    {
        Some((window, name)) => f(window, name),
        None => Err(wasmtime::format_err!(
            "{handle} is not a handle of an open shared region"
        )),
    }
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
    match result {
        Ok(()) => 0,
        Err(SendError::Closed) => abi::CLOSED,
        Err(SendError::Full) => abi::FULL,
        Err(SendError::TooLarge { .. }) => abi::TOO_LARGE,
    }
}

pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    let module = wasmproc_abi::IMPORT_MODULE;
    linker.func_wrap(
        module,
        abi::QUEUE_OPEN,
        |mut caller: Caller<'_, HostState>, ptr: i32, len: i32| -> wasmtime::Result<i32> {
            let name = read_name(&mut caller, ptr, len)?;
            let share = &mut caller.data_mut().share;
            let Some(Granted::Channel(channel)) = share.grants.named.get(&name).map(|g| &g.0)
            else {
                return Ok(abi::NOT_GRANTED);
            };
            let endpoint = Endpoint {
                send: channel.clone(),
                recv: channel.clone(),
            };
            share.channels.push(endpoint);
            Ok(handle_of(share.channels.len()))
        },
    )?;
    linker.func_wrap(
        module,
        abi::PIPE_OPEN,
        |mut caller: Caller<'_, HostState>| -> i32 {
            let share = &mut caller.data_mut().share;
            let Some(end) = &share.grants.pipe else {
                return abi::NOT_GRANTED;
            };
            let (send, recv) = end.channels();
            share.channels.push(Endpoint { send, recv });
            handle_of(share.channels.len())
        },
    )?;
    linker.func_wrap_async(
        module,
        abi::CHANNEL_SEND,
        |mut caller: Caller<'_, HostState>, (handle, ptr, len, timeout): (i32, i32, i32, i64)| {
            Box::new(async move {
                let Some(channel) = channel(&caller, handle, true) else {
                    return Ok(abi::BAD_HANDLE);
                };
                if offset(len) > channel.max_message() {
                    return Ok(abi::TOO_LARGE);
                }
                let message = read_guest(&mut caller, ptr, len, usize::MAX)?;
                let sent = match timeout_of(timeout) {
                    None => channel.send(message).await,
                    Some(timeout) => match channel.try_send(message) {
                        Err((SendError::Full, message)) if !timeout.is_zero() => {
                            tokio::time::timeout(timeout, channel.send(message))
                                .await
                                .unwrap_or(Err(SendError::Full))
                        }
                        sent => sent.map_err(|(error, _)| error),
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
                let Some(channel) = channel(&caller, handle, false) else {
                    return Ok(i64::from(abi::BAD_HANDLE));
                };
                let received = match timeout_of(timeout) {
                    None => channel.recv().await,
                    Some(timeout) => match channel.try_recv() {
                        Err(RecvError::Empty) if !timeout.is_zero() => {
                            tokio::time::timeout(timeout, channel.recv())
                                .await
                                .unwrap_or(Err(RecvError::Empty))
                        }
                        received => received,
                    },
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
            match channel(&caller, handle, true) {
                Some(channel) => {
                    channel.close();
                    0
                }
                None => abi::BAD_HANDLE,
            }
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
            let Some(Granted::Window(window)) = share.grants.named.get(&name).map(|g| &g.0)
            else {
                return Ok(abi::NOT_GRANTED);
            };
            share.windows.push((window.clone(), name));
            Ok(handle_of(share.windows.len()))
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
                Ok((place(window, name, at, offset(len) as u64, 1)?, window.clone()))
            })?;
            let memory = guest_memory(&mut caller)?;
            let start = offset(ptr);
            let Some(buf) = memory.data_mut(&mut caller).get_mut(start..start + offset(len))
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
                Ok((place(window, name, at, offset(len) as u64, 1)?, window.clone()))
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
                    let (at, window) = with_window(&caller, handle, |window, name| {
                        Ok((place(window, name, at, 4, 4)?, window.clone()))
                    })?;
                    let wait = window
                        .region
                        .inner
                        .wait_async(at, expected as u32, timeout_of(timeout), lock)
                        .await;
                    Ok(wait.code())
                })
            },
        )?;
    }
    linker.func_wrap(
        module,
        abi::REGION_NOTIFY,
        |caller: Caller<'_, HostState>, handle: i32, at: i64, count: i32| -> wasmtime::Result<i32> {
            with_window(&caller, handle, |window, name| {
                let woken = window.region.inner.notify(place(window, name, at, 4, 4)?, count as u32);
                Ok(i32::try_from(woken).unwrap_or(i32::MAX))
            })
        },
    )?;
    linker.func_wrap(
        module,
        abi::HOLDER_ID,
        |mut caller: Caller<'_, HostState>| -> i32 {
            let holder = caller.data_mut().share.holder.get_or_insert_with(Holder::new);
            holder.id() as i32
        },
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
