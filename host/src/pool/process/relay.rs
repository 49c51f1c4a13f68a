//! The pool's side of a worker process's sharing: the queues, pipes and
//! regions its tasks were granted live here, and a thread of this relay
//! carries out the operations the worker's guests ask for (`Share` frames),
//! answering each with a `ShareReply`.
//!
//! One operation waits at a time, in order; a task's end cancels its
//! waiting receive or wait (never a send the worker already counted as
//! sent). A message received for a guest that ended before taking it goes
//! back to the front of its channel, so nothing is lost to a task that
//! dies mid-operation; the task's lock-holder id ends with it, and waiters
//! on its regions look again (robust locks).

use std::collections::{HashMap, VecDeque};
use std::io::{BufWriter, Write};
use std::process::ChildStdin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use wasmproc_abi::share as abi;

use super::ANSWER_SOON;
use super::protocol::{ShareOp, ShareReply, ToChild, write_frame_buffered};
use crate::share::{
    Channel, Granted, Grants, Holder, PIPE, RecvError, SendError, Window, soon_within,
};

/// The pipe to the worker process, shared with the supervisor.
pub(super) type ToWorker = Arc<Mutex<BufWriter<ChildStdin>>>;

/// What the supervisor tells the relay.
enum Event {
    /// Task `id` was sent, with these grants, holding locks as `holder`.
    Start {
        id: u64,
        grants: Grants,
        holder: Holder,
    },
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

/// The relay of one worker process: a thread, fed by the supervisor (the
/// tasks' starts and ends) and by the reader of the worker's frames (the
/// operations, straight from the pipe). The thread starts with the first
/// task that has grants; it ends the tasks it still knows when the worker
/// goes (the relay and its inlet are dropped).
pub(super) struct Relay {
    events: UnboundedSender<Event>,
    /// Until the thread starts: its events and the pipe to the worker.
    unstarted: Option<(UnboundedReceiver<Event>, ToWorker)>,
}

/// Where the reader of the worker's frames hands the guests' operations.
pub(super) struct Inlet(UnboundedSender<Event>);

impl Inlet {
    /// Task `id`'s guest asks for `op`.
    pub(super) fn op(&self, id: u64, seq: u64, taken: u64, op: ShareOp) {
        let _ = self.0.send(Event::Op { id, seq, taken, op });
    }
}

impl Relay {
    /// A relay answering on `to_worker`, and its inlet for operations.
    pub(super) fn new(to_worker: ToWorker) -> (Relay, Inlet) {
        let (events, incoming) = unbounded_channel();
        let inlet = Inlet(events.clone());
        let relay = Relay {
            events,
            unstarted: Some((incoming, to_worker)),
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
        if let Some((incoming, to_worker)) = self.unstarted.take() {
            std::thread::Builder::new()
                .name("wasmproc-share-relay".into())
                .spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_time()
                        .build()
                        .expect("a single-threaded tokio runtime needs only a timer");
                    runtime.block_on(relay(incoming, to_worker));
                })?;
        }
        let _ = self.events.send(Event::Start { id, grants, holder });
        Ok(())
    }

    /// Task `id` ended (its `Done` came).
    pub(super) fn done(&self, id: u64, taken: u64) {
        if self.unstarted.is_none() {
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

fn timeout_of(nanos: i64) -> Option<Duration> {
    u64::try_from(nanos).ok().map(Duration::from_nanos)
}

/// An operation with what it needs, ready to run apart from the task.
enum Action {
    Send(Channel, Vec<u8>, Option<Duration>),
    Recv(Channel, Option<Duration>),
    Wait(Window, u64, u32, Option<Duration>, bool),
    Notify(Window, u64, u32),
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
                ..
            } => match served.channel(grant, true) {
                Some(channel) => Action::Send(channel, message, timeout_of(timeout)),
                None => Action::Refuse(ShareReply::Sent(bad)),
            },
            ShareOp::Recv { grant, timeout } => match served.channel(grant, false) {
                Some(channel) => Action::Recv(channel, timeout_of(timeout)),
                None => Action::Refuse(ShareReply::Received(Err(bad))),
            },
            ShareOp::Close { grant } => {
                if let Some(channel) = served.channel(grant, true) {
                    channel.close();
                }
                return None;
            }
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
            } => match served.window(grant) {
                Some(window) => Action::Notify(window, offset, count),
                None => Action::Refuse(ShareReply::Notified(0)),
            },
        })
    }

    /// Carries the action out; a received message is also returned apart,
    /// to be kept until the guest is known to have taken it.
    async fn run(self) -> (ShareReply, Option<(Channel, Vec<u8>)>) {
        match self {
            Action::Send(channel, message, timeout) => {
                let sent = match timeout {
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
                (ShareReply::Sent(sent_code(sent)), None)
            }
            Action::Recv(channel, timeout) => {
                let received = match timeout {
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
            Action::Notify(window, offset, count) => {
                let woken = window.region.inner.notify(offset, count);
                (ShareReply::Notified(woken), None)
            }
            Action::Refuse(reply) => (reply, None),
        }
    }
}

/// The answers to the worker, written as they come and flushed when the
/// relay runs out of work or is about to wait: a stream of sends is
/// acknowledged in batches.
struct Answers {
    to_worker: ToWorker,
    unflushed: bool,
}

impl Answers {
    fn write(&mut self, id: u64, seq: u64, reply: ShareReply) {
        let frame = ToChild::ShareReply { id, seq, reply };
        // A worker that is gone reads nothing; its end is the supervisor's
        // business.
        let mut to_worker = self.to_worker.lock().unwrap_or_else(|p| p.into_inner());
        let _ = write_frame_buffered(&mut *to_worker, &frame);
        self.unflushed = true;
    }

    fn flush(&mut self) {
        if std::mem::take(&mut self.unflushed) {
            let mut to_worker = self.to_worker.lock().unwrap_or_else(|p| p.into_inner());
            let _ = to_worker.flush();
        }
    }
}

fn sent_code(sent: Result<(), SendError>) -> i32 {
    match sent {
        Ok(()) => 0,
        Err(SendError::Closed) => abi::CLOSED,
        Err(SendError::Full) => abi::FULL,
        Err(SendError::TooLarge { .. }) => abi::TOO_LARGE,
    }
}

/// The relay's loop: events in order, one operation at a time.
async fn relay(mut incoming: UnboundedReceiver<Event>, to_worker: ToWorker) {
    let mut served: HashMap<u64, Served> = HashMap::new();
    let mut backlog: VecDeque<Event> = VecDeque::new();
    let mut answers = Answers {
        to_worker,
        unflushed: false,
    };
    loop {
        if backlog.is_empty() && incoming.is_empty() {
            answers.flush();
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
        match event {
            Event::Start { id, grants, holder } => {
                let task = Served {
                    grants,
                    holder: Some(holder),
                    unconfirmed: None,
                };
                served.insert(id, task);
            }
            Event::Done { id, taken } => {
                if let Some(task) = served.remove(&id) {
                    task.end(taken);
                }
            }
            Event::Op { id, seq, taken, op } => {
                let Some(task) = served.get_mut(&id) else {
                    continue;
                };
                task.confirm(taken);
                let ahead = matches!(op, ShareOp::Send { ahead: true, .. });
                let Some(action) = Action::of(task, op) else {
                    continue;
                };
                let finished = match action {
                    // A send the worker counted as done always finishes;
                    // while it waits for room, the worker has its answers.
                    Action::Send(channel, message, None) if ahead => {
                        let sent = match channel.try_send(message) {
                            Err((SendError::Full, message)) => {
                                answers.flush();
                                channel.send(message).await
                            }
                            sent => sent.map_err(|(error, _)| error),
                        };
                        Some((ShareReply::Sent(sent_code(sent)), None))
                    }
                    // Any other wait ends with its task (or its worker).
                    action => {
                        answers.flush();
                        let run = action.run();
                        tokio::pin!(run);
                        loop {
                            tokio::select! {
                                biased;
                                finished = &mut run => break Some(finished),
                                event = incoming.recv() => match event {
                                    Some(Event::Done { id: ended, taken }) if ended == id => {
                                        backlog.push_front(Event::Done { id: ended, taken });
                                        break None;
                                    }
                                    Some(event) => backlog.push_back(event),
                                    None => break None,
                                },
                            }
                        }
                    }
                };
                let Some((answer, received)) = finished else {
                    continue;
                };
                if let Some((channel, message)) = received
                    && let Some(task) = served.get_mut(&id)
                {
                    task.unconfirmed = Some((seq, channel, message));
                }
                answers.write(id, seq, answer);
            }
        }
    }
    answers.flush();
    // The worker is gone: whatever it never took goes back.
    for (_, task) in served.drain() {
        task.end(0);
    }
}
