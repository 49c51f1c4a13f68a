//! One timer thread for all of a server's connections: it ends a
//! connection that moved no byte either way within the first-byte timeout
//! of its accept, one that has moved no bytes for the idle timeout, and one
//! that has run past the whole-connection timeout.
//!
//! Ending a connection both cancels its task and hangs its socket up: a
//! guest blocked writing to a peer that does not read is woken only by the
//! socket's end, not by a cancellation.
//!
//! The thread sleeps until the earliest time a connection could expire; a
//! connection that moved bytes since is put back at its new time. Nothing
//! is polled.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::metered::Traffic;

use crate::mutex::{Condvar, Mutex};

/// Why a connection was ended by the server rather than by its guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Expired {
    /// No byte moved either way in this long after the accept: the peer
    /// sent nothing the handler read, and the handler wrote nothing.
    Silent(Duration),
    /// No bytes moved either way for this long.
    Idle(Duration),
    /// The connection was open this long in all.
    Timeout(Duration),
    /// The server stopped, and the connection outlived its grace period.
    Stopped(Duration),
    /// The server was stopped at once ([`super::StopHandle::stop_now`]:
    /// `wasmproc serve`'s second interrupt), without a grace period.
    StoppedAtOnce,
}

/// What to do when a connection expires (cancel its task, hang it up).
pub(super) type OnExpiry = Box<dyn FnOnce(Expired) + Send>;

/// A connection's time limits (`None`: none).
#[derive(Debug, Clone, Copy)]
pub(super) struct Timeouts {
    /// From the accept to the first byte moved either way.
    pub(super) first_byte: Option<Duration>,
    /// Between bytes moved either way.
    pub(super) idle: Option<Duration>,
    /// The whole connection.
    pub(super) whole: Option<Duration>,
}

struct Watched {
    traffic: Arc<Traffic>,
    timeouts: Timeouts,
    on_expiry: OnExpiry,
}

impl Watched {
    /// When this connection expires if nothing moves before then, and why.
    fn due(&self) -> Option<(Instant, Expired)> {
        let Timeouts {
            first_byte,
            idle,
            whole,
        } = self.timeouts;
        // Only until the first byte moves: from then on, the idle timeout
        // is the rule.
        let silent = first_byte
            .filter(|_| self.traffic.silent())
            .map(|t| (self.traffic.opened + t, Expired::Silent(t)));
        let idle = idle.map(|idle| (self.traffic.last_moved() + idle, Expired::Idle(idle)));
        let whole = whole.map(|t| (self.traffic.opened + t, Expired::Timeout(t)));
        [silent, idle, whole]
            .into_iter()
            .flatten()
            .min_by_key(|(at, _)| *at)
    }
}

#[derive(Default)]
struct State {
    watched: HashMap<u64, Watched>,
    /// When to look at each connection again; stale entries (a connection
    /// forgotten, or put back later) are skipped.
    times: BinaryHeap<Reverse<(Instant, u64)>>,
    stopped: bool,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

/// The timer thread and its connections.
pub(super) struct Watchdog {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Watchdog {
    pub(super) fn start() -> std::io::Result<Watchdog> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
        });
        let theirs = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("wasmproc-serve-watchdog".into())
            .spawn(move || watch(&theirs))?;
        Ok(Watchdog {
            shared,
            thread: Some(thread),
        })
    }

    /// Watches connection `id` until it is forgotten.
    pub(super) fn watch(
        &self,
        id: u64,
        traffic: Arc<Traffic>,
        timeouts: Timeouts,
        on_expiry: OnExpiry,
    ) {
        let watched = Watched {
            traffic,
            timeouts,
            on_expiry,
        };
        // Watched even without a limit: a stop's grace may end it.
        let due = watched.due();
        let mut state = self.shared.state.lock();
        state.watched.insert(id, watched);
        if let Some((due, _)) = due {
            // The timer thread sleeps until the earliest time it knows; it
            // is woken only when this one comes sooner (rarely: with the
            // same timeouts, each new connection is due after the others).
            let sooner = state
                .times
                .peek()
                .is_none_or(|Reverse((earliest, _))| due < *earliest);
            state.times.push(Reverse((due, id)));
            drop(state);
            if sooner {
                self.shared.changed.notify_one();
            }
        }
    }

    /// Stops watching connection `id` (it ended).
    pub(super) fn forget(&self, id: u64) {
        let mut state = self.shared.state.lock();
        state.watched.remove(&id);
        // A forgotten connection's time stays in the heap until it comes
        // due (an idle timeout later): at thousands of connections a second
        // that is most of the heap. Dropping them once they are most of it
        // keeps the heap at the size of what is watched, for O(1) a call
        // amortized.
        if state.times.len() > 2 * state.watched.len() + 1024 {
            let State { watched, times, .. } = &mut *state;
            times.retain(|Reverse((_, id))| watched.contains_key(id));
        }
    }

    /// Ends every connection still watched, because the server stopped
    /// (`why`: after its grace, or at once).
    pub(super) fn expire_all(&self, why: Expired) {
        let watched = std::mem::take(&mut self.shared.state.lock().watched);
        for (_, connection) in watched {
            (connection.on_expiry)(why);
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.shared.state.lock().stopped = true;
        self.shared.changed.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn watch(shared: &Shared) {
    let mut state = shared.state.lock();
    loop {
        if state.stopped {
            return;
        }
        let Some(&Reverse((at, id))) = state.times.peek() else {
            state = shared.changed.wait(state);
            continue;
        };
        let now = Instant::now();
        if at > now {
            state = shared.changed.wait_timeout(state, at - now);
            continue;
        }
        state.times.pop();
        let Some(due) = state.watched.get(&id).and_then(Watched::due) else {
            continue;
        };
        if due.0 > now {
            // Bytes moved since: look again at the new time.
            state.times.push(Reverse((due.0, id)));
            continue;
        }
        let connection = state.watched.remove(&id).expect("looked up above");
        // The connection's bookkeeping takes other locks: not under ours.
        drop(state);
        (connection.on_expiry)(due.1);
        state = shared.state.lock();
    }
}
