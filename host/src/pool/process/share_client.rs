//! The worker process's side of sharing: a task's queue, pipe and wait
//! operations become `Share` frames to the pool, which holds the objects
//! (`relay`), and their answers come back as `ShareReply` frames, routed
//! here by the reader thread. Regions themselves are mapped in the worker:
//! atomics and copies never cross the pipe.
//!
//! A send that waits as long as it takes (`put`, `send`) of a message up to
//! 64 KiB does not wait for its answer: up to the task's window of such
//! sends (`protocol::ahead_window`: [`AHEAD`](super::protocol::AHEAD), or
//! fewer for a small channel) travel at once, and credits come back in
//! batches (with the task's next answer, or
//! every `share_server::CREDIT_BATCH`), so a producer streams at the pipe's
//! speed and a conversation's send costs no frame back. Sends are batched
//! by the worker's flusher, and a blocking operation writes the batch
//! before itself. Before the task's `Done` the worker
//! asks for the credits still held (`Settle`) and waits for them (within
//! the task's time limit), so that its outcome comes after its messages.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use event_listener::{Event, IntoNotification};
use tokio::sync::oneshot;
use wasmproc_abi::share as abi;
use wasmproc_abi::sync::Wait;

use super::ANSWER_SOON;
use super::protocol::{ShareOp, ShareReply, ToParent};
use crate::cancel::CancelToken;
use crate::mutex::Mutex;
use crate::share::{Pending, RecvError, Remote, SendError, soon_within};

/// The largest message that may go ahead: with
/// [`AHEAD`](super::protocol::AHEAD), what a producer
/// can have in flight stays within 16 MiB. A larger one waits for its
/// answer.
const AHEAD_MAX_MESSAGE: usize = 64 << 10;

/// Writes frames to the pool.
pub(super) trait FrameOut: Send + Sync {
    /// Writes `frame` now.
    fn send(&self, frame: &ToParent) -> std::io::Result<()>;
    /// Writes `frame` in a moment, with whatever follows it at once: a
    /// producer's sends then cross the pipe in batches.
    fn send_soon(&self, frame: &ToParent) -> std::io::Result<()>;
}

/// One task's operations in flight, shared by the task and the reader.
pub(super) struct Board {
    /// Guests blocked in an import, by operation.
    waiters: Mutex<HashMap<u64, oneshot::Sender<ShareReply>>>,
    /// How many sends may be ahead at once ([`ahead_window`]).
    window: u32,
    /// Sends gone ahead and not yet answered.
    ahead: AtomicU32,
    /// Notified when a credit comes back.
    credit: Event,
    /// One message per credit back, for the wait before `Done`.
    credits: (Sender<()>, Receiver<()>),
    /// Channels an ahead send found closed: later sends fail at once.
    closed: Mutex<BTreeSet<u32>>,
}

impl Board {
    /// The board of a task that may send `window` ahead, whose channels
    /// `closed` were closed when it was handed over (its sends on them
    /// fail at once, as a thread worker's would).
    pub(super) fn new(window: u32, closed: impl IntoIterator<Item = u32>) -> Arc<Board> {
        Arc::new(Board {
            waiters: Mutex::new(HashMap::new()),
            window: window.max(1),
            ahead: AtomicU32::new(0),
            credit: Event::new(),
            credits: crossbeam_channel::unbounded(),
            closed: Mutex::new(closed.into_iter().collect()),
        })
    }

    /// Hands the answer to operation `seq` to whoever waits for it (the
    /// reader thread calls this).
    pub(super) fn answer(&self, seq: u64, reply: ShareReply) {
        if let ShareReply::NotSent { grant, .. } = reply {
            self.closed.lock().insert(grant);
            self.credit(1);
            return;
        }
        // A guest that is gone (timed out, cancelled) drops it: the pool
        // puts a message back when told in `Done`.
        if let Some(guest) = self.waiters.lock().remove(&seq) {
            let _ = guest.send(reply);
        }
    }

    /// `count` sends that went ahead are done: their credits are free.
    pub(super) fn credit(&self, count: u32) {
        self.ahead.fetch_sub(count, Ordering::SeqCst);
        self.credit.notify(count.additional());
        let _ = self.credits.0.send(());
    }

    /// Waits until every send that went ahead is in its channel, until
    /// `deadline` or a cancellation: then the task's outcome follows its
    /// messages. Says how the wait ended.
    pub(super) fn settle(&self, deadline: Option<Instant>, cancel: &CancelToken) -> Settled {
        let (wake, woken) = crossbeam_channel::bounded(1);
        let _watch = cancel.watch(&wake);
        let timer = deadline.map_or_else(crossbeam_channel::never, crossbeam_channel::at);
        while self.ahead.load(Ordering::SeqCst) > 0 {
            if cancel.is_cancelled() {
                return Settled::Cancelled;
            }
            crossbeam_channel::select! {
                recv(self.credits.1) -> _ => {}
                recv(woken) -> _ => return Settled::Cancelled,
                recv(timer) -> _ => return Settled::TimedOut,
            }
        }
        Settled::Sent
    }
}

/// How the wait for a task's sends ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Settled {
    /// Every send is in its channel.
    Sent,
    /// The task's time limit passed first.
    TimedOut,
    /// The task was cancelled first.
    Cancelled,
}

/// A task's link to the pool, as the store sees it.
pub(super) struct TaskLink {
    id: u64,
    out: Arc<dyn FrameOut>,
    board: Arc<Board>,
    next: AtomicU64,
    /// The last operation whose answer the guest took.
    taken: AtomicU64,
}

impl TaskLink {
    pub(super) fn new(id: u64, out: Arc<dyn FrameOut>, board: Arc<Board>) -> TaskLink {
        TaskLink {
            id,
            out,
            board,
            next: AtomicU64::new(1),
            taken: AtomicU64::new(0),
        }
    }

    /// Waits until every send that went ahead is in its channel (see
    /// [`Board::settle`]), asking the pool for the credits it holds back.
    pub(super) fn settle(&self, deadline: Option<Instant>, cancel: &CancelToken) -> Settled {
        if self.board.ahead.load(Ordering::SeqCst) > 0 {
            let seq = self.next.fetch_add(1, Ordering::SeqCst);
            // A pool that is gone answers nothing: the deadline or the
            // reader's exit ends the wait.
            let _ = self.out.send(&self.frame(seq, ShareOp::Settle));
        }
        self.board.settle(deadline, cancel)
    }

    /// The last operation whose answer the guest took, for `Done`.
    pub(super) fn taken(&self) -> u64 {
        self.taken.load(Ordering::SeqCst)
    }

    fn frame(&self, seq: u64, op: ShareOp) -> ToParent {
        ToParent::Share {
            id: self.id,
            seq,
            taken: self.taken(),
            op,
        }
    }

    /// Sends `op` and waits for its answer. A pool that is gone answers
    /// nothing: the worker process exits when its reader sees that.
    async fn ask(&self, op: ShareOp) -> Option<ShareReply> {
        let seq = self.next.fetch_add(1, Ordering::SeqCst);
        let (answer, mut answered) = oneshot::channel();
        self.board.waiters.lock().insert(seq, answer);
        if self.out.send(&self.frame(seq, op)).is_err() {
            self.board.waiters.lock().remove(&seq);
            return None;
        }
        let reply = match soon_within(ANSWER_SOON, || answered.try_recv().ok()) {
            Some(reply) => reply,
            None => answered.await.ok()?,
        };
        self.taken.store(seq, Ordering::SeqCst);
        Some(reply)
    }

    /// A send that waits as long as it takes: it goes ahead once a credit
    /// is free.
    async fn send_ahead(&self, grant: u32, message: Vec<u8>) -> Result<(), SendError> {
        loop {
            if self.board.closed.lock().contains(&grant) {
                return Err(SendError::Closed);
            }
            let ahead = self.board.ahead.load(Ordering::SeqCst);
            if ahead < self.board.window {
                if self
                    .board
                    .ahead
                    .compare_exchange(ahead, ahead + 1, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok()
                {
                    break;
                }
                continue;
            }
            let listener = self.board.credit.listen();
            if self.board.ahead.load(Ordering::SeqCst) >= self.board.window {
                listener.await;
            }
        }
        let seq = self.next.fetch_add(1, Ordering::SeqCst);
        let op = ShareOp::Send {
            grant,
            message,
            timeout: -1,
            ahead: true,
        };
        // Even a conversation's lone send goes to the flusher: the guest's
        // next operation (its receive) often writes it first, in the same
        // write. Writing a lone send at once on this thread measured the
        // same (a pipe round trip of 30 µs either way, here).
        self.out
            .send_soon(&self.frame(seq, op))
            .map_err(|_| SendError::Closed)
    }
}

fn nanos(timeout: Option<Duration>) -> i64 {
    timeout.map_or(-1, |t| i64::try_from(t.as_nanos()).unwrap_or(i64::MAX))
}

impl Remote for TaskLink {
    fn send(
        &self,
        grant: u32,
        message: Vec<u8>,
        timeout: Option<Duration>,
    ) -> Pending<'_, Result<(), SendError>> {
        Box::pin(async move {
            if timeout.is_none() && message.len() <= AHEAD_MAX_MESSAGE {
                return self.send_ahead(grant, message).await;
            }
            let op = ShareOp::Send {
                grant,
                message,
                timeout: nanos(timeout),
                ahead: false,
            };
            match self.ask(op).await {
                Some(ShareReply::Sent(0)) => Ok(()),
                Some(ShareReply::Sent(abi::FULL)) => Err(SendError::Full),
                _ => Err(SendError::Closed),
            }
        })
    }

    fn recv(
        &self,
        grant: u32,
        timeout: Option<Duration>,
    ) -> Pending<'_, Result<Vec<u8>, RecvError>> {
        Box::pin(async move {
            let op = ShareOp::Recv {
                grant,
                timeout: nanos(timeout),
            };
            match self.ask(op).await {
                Some(ShareReply::Received(Ok(message))) => Ok(message),
                Some(ShareReply::Received(Err(abi::EMPTY))) => Err(RecvError::Empty),
                _ => Err(RecvError::Closed),
            }
        })
    }

    fn close(&self, grant: u32) {
        let seq = self.next.fetch_add(1, Ordering::SeqCst);
        let _ = self.out.send(&self.frame(seq, ShareOp::Close { grant }));
    }

    fn wait(
        &self,
        grant: u32,
        offset: u64,
        expected: u32,
        timeout: Option<Duration>,
        lock: bool,
    ) -> Pending<'_, Wait> {
        Box::pin(async move {
            let op = ShareOp::Wait {
                grant,
                offset,
                expected,
                timeout: nanos(timeout),
                lock,
            };
            match self.ask(op).await {
                Some(ShareReply::Waited(code)) => Wait::from_code(code),
                _ => Wait::TimedOut,
            }
        })
    }

    /// Not waited for: an unlock must not stall a round trip. The count
    /// is the one asked for.
    fn notify(&self, grant: u32, offset: u64, count: u32) -> Pending<'_, u32> {
        Box::pin(async move {
            let seq = self.next.fetch_add(1, Ordering::SeqCst);
            let op = ShareOp::Notify {
                grant,
                offset,
                count,
            };
            let _ = self.out.send(&self.frame(seq, op));
            count
        })
    }
}
