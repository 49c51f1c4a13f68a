//! Drives a guest call on this thread's own async runtime, raced against
//! the task's deadline and its cancel signal.
//!
//! Guests run on wasmtime's async path so that a timeout or a cancellation
//! also ends a guest blocked inside a host call (sleeping, reading stdin):
//! the call's future is raced against a timer and the cancel signal, and
//! dropping it tears the instance down. A busy guest is stopped by the epoch
//! callback, which the ticker thread triggers at the task's deadline and
//! after a cancel (`engine::ticker`).

use std::cell::{Cell, RefCell};
use std::time::Instant;

use super::ending::{Interrupted, Phase, Raced};
use crate::cancel::CancelToken;
use crate::engine::{InstancePermit, InstancePermits};
use crate::error::{Error, ErrorKind};

/// The most threads each task-running thread's runtime keeps for blocking
/// host calls (file operations). A guest runs one such call at a time, so
/// this is room enough; it also bounds the threads left stuck in the OS by
/// calls that never return (opening a FIFO nobody writes), whose tasks
/// ended at their deadline. Past the bound, that thread's file operations
/// wait for one to free.
const MAX_BLOCKING_THREADS: usize = 8;

thread_local! {
    /// Whether a task on this thread ended while its guest waited in a host
    /// call, which may have left a blocking thread behind.
    static ABANDONED_HOST_CALL: Cell<bool> = const { Cell::new(false) };

}

/// Whether a task run on this thread since the last call ended while its
/// guest waited in a host call (a timeout or a cancellation won the race
/// against the call, rather than stopping busy code). A worker process
/// retires after such a task, taking any stuck thread with it.
pub(crate) fn take_abandoned_host_call() -> bool {
    ABANDONED_HOST_CALL.with(|flag| flag.replace(false))
}

/// Races `call` against `deadline` and `cancel`.
pub(super) async fn race(
    call: impl Future<Output = Result<i32, (Phase, wasmtime::Error)>>,
    deadline: Option<Instant>,
    cancel: &CancelToken,
) -> Raced {
    // A task cancelled before its call never enters the guest: the
    // ticker's ticks for that cancel may all have passed, and busy code
    // would not be stopped (the call is polled before the cancel signal).
    if cancel.is_cancelled() {
        return Raced::Cancelled;
    }
    crate::store::forget_socket_wait();
    let raced = race_inner(call, deadline, cancel).await;
    if matches!(raced, Raced::TimedOut | Raced::Cancelled) {
        // Abandoned busy code, or a wait whose kind is unknown, counts:
        // only a socket wait is known to leave no thread.
        if !crate::store::waits_on_a_socket() {
            ABANDONED_HOST_CALL.with(|flag| flag.set(true));
        }
        return raced;
    }
    // The guest's own code was interrupted by the deadline or the cancel
    // (the epoch callback's error): its ending says which, and where the
    // guest was (the error's backtrace).
    if let Raced::Failed(_, error) = &raced
        && error.is::<Interrupted>()
    {
        return raced;
    }
    // The call ended, but after the task was cancelled or its time ran out
    // (a guest blocked in a write that no signal reaches, freed when its
    // reader went away, exits on the error): it ends as it would have had
    // the race been won at that moment, not with what it did afterwards.
    if cancel.is_cancelled() {
        Raced::Cancelled
    } else if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
        Raced::TimedOut
    } else {
        raced
    }
}

async fn race_inner(
    call: impl Future<Output = Result<i32, (Phase, wasmtime::Error)>>,
    deadline: Option<Instant>,
    cancel: &CancelToken,
) -> Raced {
    let timer = async {
        match deadline {
            Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        biased;
        result = call => match result {
            Ok(code) => Raced::Returned(code),
            Err((phase, error)) => Raced::Failed(phase, error),
        },
        () = cancel.cancelled() => Raced::Cancelled,
        () = timer => Raced::TimedOut,
    }
}

/// A place in the instance pool: at once if one is free, else when one is
/// given back; `None` if the task is cancelled first.
pub(super) fn instance_permit(
    permits: &InstancePermits,
    cancel: &CancelToken,
) -> Option<InstancePermit> {
    if cancel.is_cancelled() {
        return None;
    }
    if let Some(permit) = permits.try_acquire() {
        return Some(permit);
    }
    block_on(async {
        tokio::select! {
            permit = permits.acquire() => Some(permit),
            () = cancel.cancelled() => None,
        }
    })
}

thread_local! {
    /// Each thread that runs tasks keeps one small single-threaded async
    /// runtime: its timer serves timeouts and WASI's sleeps.
    static ASYNC_RUNTIME: RefCell<Option<OwnRuntime>> = const { RefCell::new(None) };
}

/// A tokio runtime that does not wait for its blocking threads when
/// dropped: a WASI read abandoned by a timeout (a FIFO, say) may never
/// return, and must not hang the thread or the process on its way out.
struct OwnRuntime(Option<tokio::runtime::Runtime>);

impl Drop for OwnRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// Drives `future` to completion on this thread's async runtime.
pub(super) fn block_on<F: Future + Send>(future: F) -> F::Output
where
    F::Output: Send,
{
    if tokio::runtime::Handle::try_current().is_ok() {
        // The caller is inside a tokio context (an async task, or
        // `spawn_blocking`), where starting another runtime is not allowed:
        // run on a thread of our own instead.
        return std::thread::scope(|scope| match scope.spawn(|| block_on_here(future)).join() {
            Ok(output) => output,
            Err(panic) => std::panic::resume_unwind(panic),
        });
    }
    block_on_here(future)
}

/// Makes this thread's async runtime, if it has none, before a task
/// starts: the runtime's I/O driver takes file descriptors, and a process
/// out of them (a server at its `ulimit -n`) fails the task with a reason
/// that names the limit, not a panic in the middle of it.
pub(super) fn ensure_runtime() -> Result<(), Error> {
    if ASYNC_RUNTIME.with(|cell| cell.borrow().is_some()) {
        return Ok(());
    }
    let runtime = new_runtime().map_err(|error| {
        Error::new(
            ErrorKind::CannotRun,
            format!(
                "cannot start the task's async runtime: {error}; if the process is out of file \
                 descriptors, raise its limit (`ulimit -n`) or run fewer tasks at once (a \
                 server's --max-connections)"
            ),
        )
        .caused_by(error)
    })?;
    ASYNC_RUNTIME.with(|cell| *cell.borrow_mut() = Some(runtime));
    Ok(())
}

fn new_runtime() -> std::io::Result<OwnRuntime> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(MAX_BLOCKING_THREADS)
        .build()?;
    Ok(OwnRuntime(Some(runtime)))
}

fn block_on_here<F: Future>(future: F) -> F::Output {
    // The runtime is taken out of the cell while in use: if the future
    // panics, it is dropped with the unwinding and the next task builds a
    // fresh one (`ensure_runtime`, before it starts).
    let runtime = ASYNC_RUNTIME
        .with(|cell| cell.borrow_mut().take())
        .unwrap_or_else(|| {
            new_runtime().expect(
                "a task's runtime is made before it starts (ensure_runtime); one more, for a \
                 call inside an async context, needs a timer and an I/O driver",
            )
        });
    let handle = runtime.0.as_ref().expect("present until dropped");
    let mut future = std::pin::pin!(future);
    // Most tasks end within their first poll (a guest that never waits:
    // wasmtime runs it on a fiber to its end). That poll is made inside the
    // runtime's context (its timer and I/O reachable) without entering its
    // scheduler, which costs more than such a task's own host work. A
    // future still pending goes to `block_on`, whose first poll registers
    // the real waker: a future must be woken through the waker of its last
    // poll, so nothing the no-op waker was given is lost.
    let first = {
        let _context = handle.enter();
        future
            .as_mut()
            .poll(&mut std::task::Context::from_waker(std::task::Waker::noop()))
    };
    let output = match first {
        std::task::Poll::Ready(output) => output,
        std::task::Poll::Pending => handle.block_on(future),
    };
    ASYNC_RUNTIME.with(|cell| *cell.borrow_mut() = Some(runtime));
    output
}
