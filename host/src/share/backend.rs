//! Shared objects that live in another process: a worker process's view
//! of what its pool granted a task. Regions are mapped in the worker (the
//! same pages), but channel operations and waits are carried out by the
//! pool, which holds the objects; this trait is how the store reaches it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use wasmproc_abi::sync::Wait;

use super::{RecvError, SendError};

/// A boxed future of a remote operation.
pub(crate) type Pending<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The index that names a task's pipe in remote operations; other grants
/// are named by their position among the task's names, in order.
pub(crate) const PIPE: u32 = u32::MAX;

/// Operations on a task's grants, carried out in the process that holds
/// them. `grant` is the grant's index ([`PIPE`] for the pipe).
pub(crate) trait Remote: Send + Sync {
    /// Sends on a channel; `None` waits as long as the task runs.
    fn send(
        &self,
        grant: u32,
        message: Vec<u8>,
        timeout: Option<Duration>,
    ) -> Pending<'_, Result<(), SendError>>;
    /// Receives from a channel.
    fn recv(
        &self,
        grant: u32,
        timeout: Option<Duration>,
    ) -> Pending<'_, Result<Vec<u8>, RecvError>>;
    /// Closes a channel.
    fn close(&self, grant: u32);
    /// Waits on the word at `offset` (from the region's start).
    fn wait(
        &self,
        grant: u32,
        offset: u64,
        expected: u32,
        timeout: Option<Duration>,
        lock: bool,
    ) -> Pending<'_, Wait>;
    /// Wakes waiters on the word at `offset` (from the region's start).
    fn notify(&self, grant: u32, offset: u64, count: u32) -> Pending<'_, u32>;
}

/// A task's link to the process that holds its grants.
#[derive(Clone)]
pub(crate) struct RemoteLink {
    pub(crate) to: Arc<dyn Remote>,
    /// The lock-holder id the pool gave the task.
    pub(crate) holder: u32,
    /// Whether the task has a pipe.
    pub(crate) pipe: bool,
}
