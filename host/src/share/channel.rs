//! A bounded channel of messages (JSON bytes), shared by the host and any
//! number of tasks: the body of [`Queue`](super::Queue) and of each
//! direction of a [`PipeEnd`](super::PipeEnd).
//!
//! Senders and receivers wait the same way whether they are host threads
//! (blocking, with a deadline) or guests (async, so that a task's timeout
//! or cancellation ends the wait). A message is taken only inside the lock,
//! never by a wait that is abandoned: a receive cut short loses nothing.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_utils::Backoff;
use event_listener::{Event, IntoNotification, Listener};

use crate::mutex::{Mutex, MutexGuard};

/// Why a send failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SendError {
    /// The channel is closed.
    Closed,
    /// The wait ended with the channel still full.
    Full,
    /// The message is over the channel's size limit.
    TooLarge { len: usize, limit: usize },
}

impl SendError {
    /// The code of the sharing imports for a failed send.
    pub(crate) fn code(self) -> i32 {
        use wasmproc_abi::share as abi;
        match self {
            SendError::Closed => abi::CLOSED,
            SendError::Full => abi::FULL,
            SendError::TooLarge { .. } => abi::TOO_LARGE,
        }
    }
}

/// Why a receive failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RecvError {
    /// The channel is closed and drained.
    Closed,
    /// The wait ended with the channel still empty.
    Empty,
}

/// A handle to one channel; clones share it.
#[derive(Clone)]
pub(crate) struct Channel {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    /// Notified when a message arrives or the channel closes.
    readable: Event,
    /// Notified when room frees or the channel closes.
    writable: Event,
    capacity: usize,
    max_message: usize,
    /// How long a receiver tries before it sleeps.
    patience: Duration,
}

struct State {
    messages: VecDeque<Vec<u8>>,
    closed: bool,
}

impl Channel {
    /// A channel for a stream of messages: at most `capacity` (at least
    /// one) of at most `max_message` bytes each. A receiver that finds it
    /// empty tries for a few microseconds before it sleeps: a producer is
    /// usually that close behind, and trying longer would take the CPU
    /// from it.
    pub(crate) fn new(capacity: usize, max_message: usize) -> Channel {
        Channel::with_patience(capacity, max_message, Duration::from_micros(5))
    }

    /// A channel for a conversation (a pipe): a receiver tries for about
    /// one wake-up of the other side (20µs) before it sleeps, since the
    /// answer is usually on its way, and a wake-up costs as much again.
    pub(crate) fn conversation(capacity: usize, max_message: usize) -> Channel {
        Channel::with_patience(capacity, max_message, Duration::from_micros(20))
    }

    fn with_patience(capacity: usize, max_message: usize, patience: Duration) -> Channel {
        Channel {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    messages: VecDeque::new(),
                    closed: false,
                }),
                readable: Event::new(),
                writable: Event::new(),
                capacity: capacity.max(1),
                max_message,
                patience,
            }),
        }
    }

    /// Whether `self` and `other` are the same channel.
    pub(crate) fn same(&self, other: &Channel) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    pub(crate) fn capacity(&self) -> usize {
        self.inner.capacity
    }

    pub(crate) fn max_message(&self) -> usize {
        self.inner.max_message
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock()
    }

    /// Sends without waiting; hands the message back when it cannot.
    pub(crate) fn try_send(&self, message: Vec<u8>) -> Result<(), (SendError, Vec<u8>)> {
        if message.len() > self.inner.max_message {
            let error = SendError::TooLarge {
                len: message.len(),
                limit: self.inner.max_message,
            };
            return Err((error, message));
        }
        let mut state = self.state();
        if state.closed {
            return Err((SendError::Closed, message));
        }
        if state.messages.len() >= self.inner.capacity {
            return Err((SendError::Full, message));
        }
        state.messages.push_back(message);
        drop(state);
        // `additional`: each message wakes one more receiver, even while an
        // earlier one is still on its way to its message.
        self.inner.readable.notify(1.additional());
        Ok(())
    }

    /// Receives without waiting.
    pub(crate) fn try_recv(&self) -> Result<Vec<u8>, RecvError> {
        let mut state = self.state();
        match state.messages.pop_front() {
            Some(message) => {
                drop(state);
                self.inner.writable.notify(1.additional());
                Ok(message)
            }
            None if state.closed => Err(RecvError::Closed),
            None => Err(RecvError::Empty),
        }
    }

    /// A receive that is done: a message, or the channel closed and
    /// drained; `None` while it is merely empty.
    fn try_recv_done(&self) -> Option<Result<Vec<u8>, RecvError>> {
        match self.try_recv() {
            Err(RecvError::Empty) => None,
            done => Some(done),
        }
    }

    /// Whether room frees within the channel's patience: a receiver is
    /// usually that close, and a sender that sleeps on a full channel
    /// would be woken for every message taken.
    fn room_soon(&self) -> bool {
        soon_within(self.inner.patience, || {
            let state = self.state();
            (state.closed || state.messages.len() < self.inner.capacity).then_some(())
        })
        .is_some()
    }

    /// Sends, waiting for room for as long as it takes.
    pub(crate) async fn send(&self, mut message: Vec<u8>) -> Result<(), SendError> {
        loop {
            match self.try_send(message) {
                Err((SendError::Full, back)) => message = back,
                done => return done.map_err(|(error, _)| error),
            }
            if self.room_soon() {
                continue;
            }
            let listener = self.inner.writable.listen();
            match self.try_send(message) {
                Err((SendError::Full, back)) => message = back,
                done => return done.map_err(|(error, _)| error),
            }
            listener.await;
        }
    }

    /// Sends, waiting at most `timeout` for room (`None`: as long as it
    /// takes; zero: not at all).
    pub(crate) async fn send_within(
        &self,
        message: Vec<u8>,
        timeout: Option<Duration>,
    ) -> Result<(), SendError> {
        match timeout {
            None => self.send(message).await,
            Some(timeout) => match self.try_send(message) {
                Err((SendError::Full, message)) if !timeout.is_zero() => {
                    tokio::time::timeout(timeout, self.send(message))
                        .await
                        .unwrap_or(Err(SendError::Full))
                }
                sent => sent.map_err(|(error, _)| error),
            },
        }
    }

    /// Receives, waiting at most `timeout` for a message (`None`: as long
    /// as it takes; zero: not at all).
    pub(crate) async fn recv_within(
        &self,
        timeout: Option<Duration>,
    ) -> Result<Vec<u8>, RecvError> {
        match timeout {
            None => self.recv().await,
            Some(timeout) => match self.try_recv() {
                Err(RecvError::Empty) if !timeout.is_zero() => {
                    tokio::time::timeout(timeout, self.recv())
                        .await
                        .unwrap_or(Err(RecvError::Empty))
                }
                received => received,
            },
        }
    }

    /// Receives, waiting for a message for as long as it takes.
    pub(crate) async fn recv(&self) -> Result<Vec<u8>, RecvError> {
        if let Some(done) = soon_within(self.inner.patience, || self.try_recv_done()) {
            return done;
        }
        loop {
            match self.try_recv() {
                Err(RecvError::Empty) => {}
                done => return done,
            }
            let listener = self.inner.readable.listen();
            match self.try_recv() {
                Err(RecvError::Empty) => {}
                done => return done,
            }
            listener.await;
        }
    }

    /// Sends, blocking this thread until there is room or `deadline`.
    pub(crate) fn send_blocking(
        &self,
        mut message: Vec<u8>,
        deadline: Option<Instant>,
    ) -> Result<(), SendError> {
        loop {
            match self.try_send(message) {
                Err((SendError::Full, back)) => message = back,
                done => return done.map_err(|(error, _)| error),
            }
            if deadline.is_none_or(|deadline| Instant::now() < deadline) && self.room_soon() {
                continue;
            }
            let listener = self.inner.writable.listen();
            match self.try_send(message) {
                Err((SendError::Full, back)) => message = back,
                done => return done.map_err(|(error, _)| error),
            }
            if !wait_until(listener, deadline) {
                return self.try_send(message).map_err(|(error, _)| error);
            }
        }
    }

    /// Receives, blocking this thread until a message comes or `deadline`.
    pub(crate) fn recv_blocking(&self, deadline: Option<Instant>) -> Result<Vec<u8>, RecvError> {
        if deadline.is_none_or(|deadline| Instant::now() < deadline)
            && let Some(done) = soon_within(self.inner.patience, || self.try_recv_done())
        {
            return done;
        }
        loop {
            match self.try_recv() {
                Err(RecvError::Empty) => {}
                done => return done,
            }
            let listener = self.inner.readable.listen();
            match self.try_recv() {
                Err(RecvError::Empty) => {}
                done => return done,
            }
            if !wait_until(listener, deadline) {
                return self.try_recv();
            }
        }
    }

    /// Puts a message taken for a receiver that is gone back at the front,
    /// room or not (even closed): it was in the channel, and it keeps its
    /// place.
    pub(crate) fn give_back(&self, message: Vec<u8>) {
        self.state().messages.push_front(message);
        self.inner.readable.notify(1.additional());
    }

    /// Closes the channel: sends fail from now on, receives drain what is
    /// left. Every waiter wakes.
    pub(crate) fn close(&self) {
        self.state().closed = true;
        self.inner.readable.notify(usize::MAX);
        self.inner.writable.notify(usize::MAX);
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.state().closed
    }

    /// How many messages wait in the channel.
    pub(crate) fn len(&self) -> usize {
        self.state().messages.len()
    }
}

/// Tries `attempt` for a moment before the caller sleeps: spinning
/// briefly, then yielding the CPU between attempts for up to `budget`. The
/// other side of a conversation usually answers within microseconds (tens
/// of them from another process), and a wake-up from sleep costs as much
/// again; yielding lets whoever has work run first, on a busy machine too.
pub(crate) fn soon_within<T>(
    budget: Duration,
    mut attempt: impl FnMut() -> Option<T>,
) -> Option<T> {
    let backoff = Backoff::new();
    let started = Instant::now();
    loop {
        if let Some(done) = attempt() {
            return Some(done);
        }
        if !backoff.is_completed() {
            backoff.snooze();
        } else if started.elapsed() < budget {
            std::thread::yield_now();
        } else {
            return None;
        }
    }
}

/// Waits for `listener` until `deadline`; `false` when the deadline passed.
fn wait_until(listener: event_listener::EventListener, deadline: Option<Instant>) -> bool {
    match deadline {
        None => {
            listener.wait();
            true
        }
        Some(deadline) => listener.wait_deadline(deadline).is_some(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_closed_and_drained() {
        let channel = Channel::new(2, 8);
        assert!(channel.try_send(b"1".to_vec()).is_ok());
        assert!(channel.try_send(b"2".to_vec()).is_ok());
        assert_eq!(
            channel.try_send(b"3".to_vec()).unwrap_err().0,
            SendError::Full
        );
        assert_eq!(
            channel.try_send(vec![0; 9]).unwrap_err().0,
            SendError::TooLarge { len: 9, limit: 8 }
        );
        let soon = Some(Instant::now() + Duration::from_millis(20));
        assert_eq!(
            channel.send_blocking(b"3".to_vec(), soon),
            Err(SendError::Full)
        );
        channel.close();
        assert_eq!(
            channel.try_send(b"4".to_vec()).unwrap_err().0,
            SendError::Closed
        );
        assert_eq!(channel.recv_blocking(None).unwrap(), b"1");
        assert_eq!(channel.try_recv().unwrap(), b"2");
        assert_eq!(channel.recv_blocking(None), Err(RecvError::Closed));
    }

    #[test]
    fn a_blocked_receiver_wakes_for_a_send_from_another_thread() {
        let channel = Channel::new(1, 8);
        let sender = channel.clone();
        let thread = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            sender.send_blocking(b"hi".to_vec(), None)
        });
        assert_eq!(channel.recv_blocking(None).unwrap(), b"hi");
        assert_eq!(thread.join().unwrap(), Ok(()));
    }
}
