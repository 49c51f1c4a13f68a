//! The pool's side of a worker process's sharing: the queues, pipes and
//! regions its tasks were granted live here, and a thread of this relay
//! carries out the operations the worker's guests ask for (`Share` frames),
//! answering each with a `ShareReply`.
//!
//! A send that goes ahead (the worker did not wait for it) and finds room
//! is carried out by the frame reader itself when the relay has nothing
//! queued, so a producer's stream costs no trip through the relay thread.
//! A receive that finds its message waiting (or does not wait at all) is
//! answered there too. One that must wait goes to the relay thread: only
//! this worker's own threads write to its pipe, which may block (a worker
//! that stopped reading must never hold up the host's other threads).
//! Credits for sends gone ahead ride with the task's next answer, or go
//! every `CREDIT_BATCH`, or as they come once the task settles or while
//! its sends wait for room.
//! Otherwise one operation waits at a time, in order, except for sends gone
//! ahead that find no room: those wait in their task's lane, sent in order
//! by a task of their own, so that other tasks' work goes on.
//!
//! A task's end cancels its waiting receive or wait, and the sends still
//! waiting in its lane (the worker then reports it timed out or cancelled,
//! as a thread worker does when a task's time runs out inside a send). A
//! message received for a guest that ended before taking it goes back to
//! the front of its channel, so nothing is lost to a task that dies
//! mid-operation; the task's lock-holder id ends with it, and waiters on
//! its regions look again (robust locks).

use std::collections::{HashMap, VecDeque};
use std::io::{BufWriter, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use wasmproc_abi::share as abi;

use super::ANSWER_SOON;
use super::protocol::{ShareOp, ShareReply, ToChild, ahead_window, write_frame_buffered};
use crate::mutex::{Mutex, MutexGuard};
use crate::share::{
    Channel, Granted, Grants, Holder, PIPE, RecvError, SendError, Window, soon_within,
};

/// How many credits of a task's sends gone ahead the pool gathers before
/// it writes them on their own: fewer wait for the task's next reply (a
/// conversation's send then costs the worker no wake-up) or for its
/// `Settle`. Half the worker's window, so a streaming producer never stops
/// for want of credits the pool holds.
pub(super) const CREDIT_BATCH: u32 = super::protocol::AHEAD / 2;

/// The pipe to the worker process, shared with the supervisor.
pub(super) type ToWorker = Arc<Mutex<BufWriter<super::handover::ChildInput>>>;

/// What the relay thread is told, in order.
enum Event {
    /// Task `id` asks for `op`.
    Op {
        id: u64,
        seq: u64,
        taken: u64,
        op: ShareOp,
    },
    /// Task `id` ended; its guest took the replies up to `taken`.
    Done { id: u64, taken: u64 },
}

/// What the relay thread, the frame reader and the supervisor share.
struct Shared {
    /// The tasks with grants sent to the worker and not yet ended.
    served: Mutex<HashMap<u64, Served>>,
    /// Events sent to the relay thread and not yet handled: while there
    /// are any, an operation must queue behind them.
    queued: AtomicUsize,
    answers: Answers,
}

impl Shared {
    fn served(&self) -> MutexGuard<'_, HashMap<u64, Served>> {
        self.served.lock()
    }

    /// A send that went ahead is done: a credit back, or a refusal.
    fn sent_ahead(&self, id: u64, seq: u64, grant: u32, sent: Result<(), SendError>) {
        match sent {
            Ok(()) => {
                if let Some(task) = self.served().get_mut(&id) {
                    task.credits += 1;
                }
            }
            Err(error) => {
                let code = sent_code(Err(error));
                self.reply(id, seq, ShareReply::NotSent { grant, code });
            }
        }
    }

    /// Writes task `id`'s answer to operation `seq`, after the credits it
    /// holds for the task: one frame after the other, one wake-up.
    fn reply(&self, id: u64, seq: u64, reply: ShareReply) {
        let credits = self
            .served()
            .get_mut(&id)
            .map_or(0, |task| std::mem::take(&mut task.credits));
        self.answers.reply(id, seq, credits, reply);
    }

    /// Writes the credits due (a batch's worth, or any for a task that
    /// settles or whose sends wait for room), one frame per task, and
    /// flushes everything written. A task with a lane gets its credits as
    /// they come: its window is what it sent ahead and the pool has not
    /// yet sent, and credits held for a batch would shrink it while its
    /// sends wait (a producer then stalls for credits the pool holds, not
    /// for room).
    fn flush(&self) {
        let credits: Vec<(u64, u32)> = self
            .served()
            .iter_mut()
            .filter(|(_, task)| {
                task.credits >= task.credit_batch
                    || ((task.settling || task.lane.is_some()) && task.credits > 0)
            })
            .map(|(id, task)| (*id, std::mem::take(&mut task.credits)))
            .collect();
        for (id, count) in credits {
            self.answers.write_frame(&ToChild::Credits { id, count });
        }
        self.answers.flush();
    }
}

/// The relay of one worker process: a thread, fed by the supervisor (the
/// tasks' starts and ends) and by the reader of the worker's frames (the
/// operations, straight from the pipe). The thread starts with the first
/// task that has grants; it ends the tasks it still knows when the worker
/// goes (the relay and its inlet are dropped).
pub(super) struct Relay {
    events: UnboundedSender<Event>,
    shared: Arc<Shared>,
    /// Until the thread starts: its events.
    unstarted: Option<UnboundedReceiver<Event>>,
}

/// Where the reader of the worker's frames hands the guests' operations.
pub(super) struct Inlet {
    events: UnboundedSender<Event>,
    shared: Arc<Shared>,
}

impl Inlet {
    /// Task `id`'s guest asks for `op`.
    pub(super) fn op(&self, id: u64, seq: u64, taken: u64, op: ShareOp) {
        let op = match op {
            ShareOp::Send {
                grant,
                message,
                timeout,
                ahead: true,
            } if self.shared.queued.load(Ordering::SeqCst) == 0 => {
                match self.send_here(id, seq, taken, grant, message) {
                    Some(message) => ShareOp::Send {
                        grant,
                        message,
                        timeout,
                        ahead: true,
                    },
                    None => return,
                }
            }
            // A receive that waits as long as it takes, or not at all, is
            // answered from here when its message is already there.
            ShareOp::Recv { grant, timeout }
                if timeout <= 0
                    && self.shared.queued.load(Ordering::SeqCst) == 0
                    && self.recv_here(id, seq, taken, grant, timeout == 0) =>
            {
                return;
            }
            // From now on the task's credits go out as they come.
            ShareOp::Settle => {
                if let Some(task) = self.shared.served().get_mut(&id) {
                    task.settling = true;
                }
                return;
            }
            op => op,
        };
        self.shared.queued.fetch_add(1, Ordering::SeqCst);
        let _ = self.events.send(Event::Op { id, seq, taken, op });
    }

    /// Sends ahead on this thread, when nothing is queued before it (so
    /// order holds) and the channel has room; hands the message back
    /// otherwise, for the relay thread to wait with.
    fn send_here(
        &self,
        id: u64,
        seq: u64,
        taken: u64,
        grant: u32,
        message: Vec<u8>,
    ) -> Option<Vec<u8>> {
        let channel = {
            let mut served = self.shared.served();
            let Some(task) = served.get_mut(&id) else {
                return Some(message);
            };
            task.confirm(taken);
            task.channel(grant, true)
        };
        let Some(channel) = channel else {
            return Some(message);
        };
        let sent = match channel.try_send(message) {
            Err((SendError::Full, message)) => return Some(message),
            sent => sent.map_err(|(error, _)| error),
        };
        self.shared.sent_ahead(id, seq, grant, sent);
        None
    }

    /// Receives on this thread, when nothing is queued before it and a
    /// message waits there (or the receive does not wait at all): answered
    /// now, with no trip through the relay thread. `false` otherwise, for
    /// the relay thread to wait with, or to refuse an unknown task or grant.
    fn recv_here(&self, id: u64, seq: u64, taken: u64, grant: u32, now_or_never: bool) -> bool {
        let channel = {
            let mut served = self.shared.served();
            let Some(task) = served.get_mut(&id) else {
                return false;
            };
            task.confirm(taken);
            task.channel(grant, false)
        };
        let Some(channel) = channel else {
            return false;
        };
        let received = match channel.try_recv() {
            Err(RecvError::Empty) if !now_or_never => return false,
            received => received,
        };
        answer_received(&self.shared, id, seq, channel, received);
        true
    }

    /// Flushes the answers written here, before the reader waits for the
    /// worker's next frame.
    pub(super) fn flush(&self) {
        self.shared.flush();
    }
}

impl Relay {
    /// A relay answering on `to_worker`, and its inlet for operations.
    pub(super) fn new(to_worker: ToWorker) -> (Relay, Inlet) {
        let (events, incoming) = unbounded_channel();
        let shared = Arc::new(Shared {
            served: Mutex::new(HashMap::new()),
            queued: AtomicUsize::new(0),
            answers: Answers {
                to_worker,
                unflushed: AtomicBool::new(false),
            },
        });
        let inlet = Inlet {
            events: events.clone(),
            shared: Arc::clone(&shared),
        };
        let relay = Relay {
            events,
            shared,
            unstarted: Some(incoming),
        };
        (relay, inlet)
    }

    /// Task `id` is on its way to the worker with `grants`, as `holder`.
    pub(super) fn start_task(
        &mut self,
        id: u64,
        grants: Grants,
        holder: Holder,
    ) -> std::io::Result<()> {
        if let Some(incoming) = self.unstarted.take() {
            let shared = Arc::clone(&self.shared);
            std::thread::Builder::new()
                .name("wasmproc-share-relay".into())
                .spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_time()
                        .build()
                        .expect("a single-threaded tokio runtime needs only a timer");
                    runtime.block_on(relay(incoming, shared));
                })?;
        }
        let task = Served {
            // Half the task's window (`CREDIT_BATCH` for a full one): a
            // window of a few sends never waits for credits held here.
            credit_batch: (ahead_window(&grants) / 2).clamp(1, CREDIT_BATCH),
            grants,
            holder: Some(holder),
            unconfirmed: None,
            credits: 0,
            settling: false,
            lane: None,
        };
        self.shared.served().insert(id, task);
        Ok(())
    }

    /// Task `id` ended (its `Done` came).
    pub(super) fn done(&self, id: u64, taken: u64) {
        if self.unstarted.is_none() {
            self.shared.queued.fetch_add(1, Ordering::SeqCst);
            let _ = self.events.send(Event::Done { id, taken });
        }
    }
}

/// A task the relay serves.
struct Served {
    grants: Grants,
    holder: Option<Holder>,
    /// A message sent to the guest whose taking is not yet confirmed:
    /// the operation's number, its channel, and a copy.
    unconfirmed: Option<(u64, Channel, Vec<u8>)>,
    /// Sends gone ahead and done since the last credits were written.
    credits: u32,
    /// How many credits are gathered before they go on their own.
    credit_batch: u32,
    /// The task waits for its credits (`Settle`): they go out as they come.
    settling: bool,
    /// Sends gone ahead that found no room, in order, and the one task
    /// that sends them as room frees; while it runs, the task's later sends
    /// queue behind them, and other tasks' operations go on. It is stopped
    /// when the task ends: the task's time ran out inside a send, and a
    /// task stopped in a send makes no more.
    lane: Option<Lane>,
}

/// A task's sends waiting for room, and their sender.
struct Lane {
    waiting: VecDeque<(u64, u32, Channel, Vec<u8>)>,
    sender: tokio::task::AbortHandle,
}

impl Served {
    /// The guest took the replies up to `taken`.
    fn confirm(&mut self, taken: u64) {
        if self
            .unconfirmed
            .as_ref()
            .is_some_and(|(seq, _, _)| *seq <= taken)
        {
            self.unconfirmed = None;
        }
    }

    /// The task is over: a message it never took goes back, its holder id
    /// ends, and waiters on its regions look again.
    fn end(mut self, taken: u64) {
        if let Some(lane) = self.lane.take() {
            lane.sender.abort();
        }
        self.confirm(taken);
        if let Some((_, channel, message)) = self.unconfirmed.take() {
            channel.give_back(message);
        }
        drop(self.holder.take());
        for grant in self.grants.named.values() {
            if let Granted::Window(window) = &grant.0 {
                window.region.inner.wake_all();
            }
        }
    }

    fn channel(&self, grant: u32, sending: bool) -> Option<Channel> {
        if grant == PIPE {
            let (send, recv) = self.grants.pipe.as_ref()?.channels();
            return Some(if sending { send } else { recv });
        }
        match &self.grants.named.values().nth(grant as usize)?.0 {
            Granted::Channel(channel) => Some(channel.clone()),
            _ => None,
        }
    }

    fn window(&self, grant: u32) -> Option<Window> {
        match &self.grants.named.values().nth(grant as usize)?.0 {
            Granted::Window(window) => Some(window.clone()),
            _ => None,
        }
    }
}

/// Answers task `id`'s receive `seq` on `channel` with what it got. A
/// message is kept until the guest is known to have taken it; one for a
/// task that ended meanwhile goes back at once.
fn answer_received(
    shared: &Shared,
    id: u64,
    seq: u64,
    channel: Channel,
    received: Result<Vec<u8>, RecvError>,
) {
    let reply = match received {
        Ok(message) => {
            let mut served = shared.served();
            let Some(task) = served.get_mut(&id) else {
                drop(served);
                channel.give_back(message);
                return;
            };
            task.unconfirmed = Some((seq, channel, message.clone()));
            drop(served);
            ShareReply::Received(Ok(message))
        }
        Err(RecvError::Closed) => ShareReply::Received(Err(abi::CLOSED)),
        Err(RecvError::Empty) => ShareReply::Received(Err(abi::EMPTY)),
    };
    shared.reply(id, seq, reply);
}

fn timeout_of(nanos: i64) -> Option<Duration> {
    u64::try_from(nanos).ok().map(Duration::from_nanos)
}

/// An operation with what it needs, ready to run apart from the task.
enum Action {
    /// A send the worker did not wait for, on the grant named.
    SendAhead(Channel, Vec<u8>, u32),
    Send(Channel, Vec<u8>, Option<Duration>),
    Recv(Channel, Option<Duration>),
    Wait(Window, u64, u32, Option<Duration>, bool),
    /// A grant the task does not have (a confused worker): answered with
    /// this.
    Refuse(ShareReply),
}

impl Action {
    fn of(served: &Served, op: ShareOp) -> Option<Action> {
        let bad = abi::BAD_HANDLE;
        Some(match op {
            ShareOp::Send {
                grant,
                message,
                timeout,
                ahead,
            } => match served.channel(grant, true) {
                Some(channel) if ahead => Action::SendAhead(channel, message, grant),
                Some(channel) => Action::Send(channel, message, timeout_of(timeout)),
                None if ahead => Action::Refuse(ShareReply::NotSent { grant, code: bad }),
                None => Action::Refuse(ShareReply::Sent(bad)),
            },
            ShareOp::Recv { grant, timeout } => match served.channel(grant, false) {
                Some(channel) => Action::Recv(channel, timeout_of(timeout)),
                None => Action::Refuse(ShareReply::Received(Err(bad))),
            },
            // Closed by `Loop::handle`, outside the lock.
            ShareOp::Close { .. } => return None,
            ShareOp::Wait {
                grant,
                offset,
                expected,
                timeout,
                lock,
            } => match served.window(grant) {
                Some(window) => Action::Wait(window, offset, expected, timeout_of(timeout), lock),
                None => Action::Refuse(ShareReply::Waited(abi::TIMED_OUT)),
            },
            ShareOp::Notify {
                grant,
                offset,
                count,
            } => {
                if let Some(window) = served.window(grant) {
                    window.region.inner.notify(offset, count);
                }
                return None;
            }
            // Handled by the frame reader (`Inlet::op`).
            ShareOp::Settle => return None,
        })
    }

    /// Carries the action out; a received message is also returned apart,
    /// to be kept until the guest is known to have taken it.
    async fn run(self) -> (ShareReply, Option<(Channel, Vec<u8>)>) {
        match self {
            // `handle` answers these with credits; as a plain send here.
            Action::SendAhead(channel, message, _) => {
                let sent = channel.send(message).await;
                (ShareReply::Sent(sent_code(sent)), None)
            }
            Action::Send(channel, message, timeout) => {
                let sent = channel.send_within(message, timeout).await;
                (ShareReply::Sent(sent_code(sent)), None)
            }
            Action::Recv(channel, timeout) => {
                let received = channel.recv_within(timeout).await;
                match received {
                    Ok(message) => (
                        ShareReply::Received(Ok(message.clone())),
                        Some((channel, message)),
                    ),
                    Err(RecvError::Closed) => (ShareReply::Received(Err(abi::CLOSED)), None),
                    Err(RecvError::Empty) => (ShareReply::Received(Err(abi::EMPTY)), None),
                }
            }
            Action::Wait(window, offset, expected, timeout, lock) => {
                let wait = window
                    .region
                    .inner
                    .wait_async(offset, expected, timeout, lock)
                    .await;
                (ShareReply::Waited(wait.code()), None)
            }
            Action::Refuse(reply) => (reply, None),
        }
    }
}

/// The answers to the worker, written as they come and flushed when the
/// relay runs out of work, is about to wait, or the reader is: a stream of
/// sends is acknowledged in batches.
struct Answers {
    to_worker: ToWorker,
    unflushed: AtomicBool,
}

impl Answers {
    /// The reply to task `id`'s operation `seq`, after `credits` of its
    /// sends gone ahead, if any.
    fn reply(&self, id: u64, seq: u64, credits: u32, reply: ShareReply) {
        // A worker that is gone reads nothing; its end is the supervisor's
        // business.
        let mut to_worker = self.to_worker.lock();
        if credits > 0 {
            let _ = write_frame_buffered(&mut *to_worker, &ToChild::Credits { id, count: credits });
        }
        let _ = write_frame_buffered(&mut *to_worker, &ToChild::ShareReply { id, seq, reply });
        self.unflushed.store(true, Ordering::SeqCst);
    }

    fn write_frame(&self, frame: &ToChild) {
        // A worker that is gone reads nothing; its end is the supervisor's
        // business.
        let mut to_worker = self.to_worker.lock();
        let _ = write_frame_buffered(&mut *to_worker, frame);
        self.unflushed.store(true, Ordering::SeqCst);
    }

    fn flush(&self) {
        if self.unflushed.swap(false, Ordering::SeqCst) {
            let mut to_worker = self.to_worker.lock();
            let _ = to_worker.flush();
        }
    }
}

fn sent_code(sent: Result<(), SendError>) -> i32 {
    sent.map_or_else(SendError::code, |()| 0)
}

/// The relay's loop: events in order, one operation at a time.
async fn relay(mut incoming: UnboundedReceiver<Event>, shared: Arc<Shared>) {
    let mut backlog: VecDeque<Event> = VecDeque::new();
    let mut waiting_sends = tokio::task::JoinSet::new();
    loop {
        if backlog.is_empty() && incoming.is_empty() {
            shared.flush();
        }
        let next = backlog
            .pop_front()
            .or_else(|| soon_within(ANSWER_SOON, || incoming.try_recv().ok()));
        let event = match next {
            Some(event) => event,
            None => match incoming.recv().await {
                Some(event) => event,
                None => break,
            },
        };
        let mut state = Loop {
            incoming: &mut incoming,
            backlog: &mut backlog,
            waiting_sends: &mut waiting_sends,
        };
        state.handle(event, &shared).await;
        shared.queued.fetch_sub(1, Ordering::SeqCst);
    }
    shared.flush();
    waiting_sends.shutdown().await;
    // The worker is gone: whatever it never took goes back.
    let ended: Vec<Served> = shared.served().drain().map(|(_, task)| task).collect();
    for task in ended {
        task.end(0);
    }
}

/// Takes a waiting send off the queued count when it ends, done or
/// stopped.
struct Dequeue(Arc<Shared>);

impl Drop for Dequeue {
    fn drop(&mut self) {
        self.0.queued.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Sends task `id`'s waiting sends in order as room frees, until none is
/// left (then the lane closes, under the same lock its sends join it by).
async fn send_in_lane(id: u64, running: Dequeue) {
    let shared = &running.0;
    loop {
        let next = {
            let mut served = shared.served();
            let Some(task) = served.get_mut(&id) else {
                return;
            };
            match task.lane.as_mut().and_then(|lane| lane.waiting.pop_front()) {
                Some(next) => next,
                None => {
                    task.lane = None;
                    return;
                }
            }
        };
        let (seq, grant, channel, message) = next;
        let sent = channel.send(message).await;
        shared.sent_ahead(id, seq, grant, sent);
        shared.flush();
    }
}

/// What the relay's loop keeps between events.
struct Loop<'a> {
    incoming: &'a mut UnboundedReceiver<Event>,
    /// Events that came while an operation waited, in order.
    backlog: &'a mut VecDeque<Event>,
    /// The tasks sending gone-ahead sends that found no room, one per
    /// task lane.
    waiting_sends: &'a mut tokio::task::JoinSet<()>,
}

impl Loop<'_> {
    /// Handles one event.
    async fn handle(&mut self, event: Event, shared: &Arc<Shared>) {
        let (id, seq, taken, op) = match event {
            Event::Done { id, taken } => {
                let task = shared.served().remove(&id);
                if let Some(task) = task {
                    task.end(taken);
                }
                return;
            }
            Event::Op { id, seq, taken, op } => (id, seq, taken, op),
        };
        // Not answered; closed outside `served` (the close wakes every
        // waiter on the channel, and none of them needs this lock held).
        if let ShareOp::Close { grant } = op {
            let channel = shared.served().get_mut(&id).and_then(|task| {
                task.confirm(taken);
                task.channel(grant, true)
            });
            if let Some(channel) = channel {
                channel.close();
            }
            return;
        }
        let action = {
            let mut served = shared.served();
            let Some(task) = served.get_mut(&id) else {
                return;
            };
            task.confirm(taken);
            Action::of(task, op)
        };
        let finished = match action {
            None => return,
            // A send the worker counted as done always finishes. One that
            // finds no room waits in its task's lane, apart from the loop:
            // other tasks' operations go on, the task's later sends queue
            // behind it, and the worker has its answers meanwhile.
            Some(Action::SendAhead(channel, message, grant)) => {
                let mut served = shared.served();
                let Some(task) = served.get_mut(&id) else {
                    return;
                };
                if let Some(lane) = &mut task.lane {
                    lane.waiting.push_back((seq, grant, channel, message));
                    return;
                }
                // Not under `served`: the send wakes the channel's waiters.
                // No lane starts meanwhile: only this thread starts them.
                drop(served);
                let message = match channel.try_send(message) {
                    Err((SendError::Full, message)) => message,
                    sent => {
                        shared.sent_ahead(id, seq, grant, sent.map_err(|(error, _)| error));
                        return;
                    }
                };
                let mut served = shared.served();
                let Some(task) = served.get_mut(&id) else {
                    return;
                };
                // Counted as queued while it runs: nothing overtakes its
                // sends inline.
                shared.queued.fetch_add(1, Ordering::SeqCst);
                let running = Dequeue(Arc::clone(shared));
                let sender = self
                    .waiting_sends
                    .spawn(async move { send_in_lane(id, running).await });
                task.lane = Some(Lane {
                    waiting: VecDeque::from([(seq, grant, channel, message)]),
                    sender,
                });
                drop(served);
                shared.flush();
                return;
            }
            // Any other wait ends with its task (or its worker).
            Some(action) => {
                shared.flush();
                let run = action.run();
                tokio::pin!(run);
                loop {
                    tokio::select! {
                        biased;
                        finished = &mut run => break Some(finished),
                        event = self.incoming.recv() => match event {
                            Some(Event::Done { id: ended, taken }) if ended == id => {
                                self.backlog.push_front(Event::Done { id: ended, taken });
                                break None;
                            }
                            Some(event) => self.backlog.push_back(event),
                            None => break None,
                        },
                    }
                }
            }
        };
        let Some((answer, received)) = finished else {
            return;
        };
        if let Some((channel, message)) = received
            && let Some(task) = shared.served().get_mut(&id)
        {
            task.unconfirmed = Some((seq, channel, message));
        }
        shared.reply(id, seq, answer);
    }
}
