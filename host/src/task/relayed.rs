//! A worker process's streamed stdout or stderr: each write goes to the
//! pool as a frame, against a window of credits that the pool gives back
//! as it writes the bytes out. A reader that does not read stops the
//! guest (its write waits, raced by its deadline like any host call),
//! never the pool's memory.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use event_listener::{Event, EventListener};

/// How many bytes of one stream a worker process may have sent and the
/// pool not yet written out: what the pool holds for a stream at most.
pub(crate) const OUTPUT_WINDOW: u64 = 256 << 10;

/// The credits of one relayed stream: bytes it may still send.
pub(crate) struct Credits {
    available: AtomicU64,
    /// The pool could not write earlier bytes (their reader went away):
    /// later writes fail, as they would on the stream itself.
    broken: AtomicBool,
    returned: Event,
}

impl Credits {
    /// A full window.
    pub(crate) fn new(window: u64) -> Arc<Credits> {
        Arc::new(Credits {
            available: AtomicU64::new(window),
            broken: AtomicBool::new(false),
            returned: Event::new(),
        })
    }

    /// How many bytes may be sent now.
    pub(crate) fn available(&self) -> u64 {
        self.available.load(Ordering::SeqCst)
    }

    /// Takes `bytes` of credit (at most what is available: a writer asks
    /// `available` first and sends no more).
    pub(crate) fn take(&self, bytes: u64) {
        let _ = self
            .available
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                Some(left.saturating_sub(bytes))
            });
    }

    /// The pool wrote `bytes` out: room for as many more.
    pub(crate) fn give(&self, bytes: u64) {
        self.available.fetch_add(bytes, Ordering::SeqCst);
        self.returned.notify(usize::MAX);
    }

    /// The stream's reader went away: writes fail from now on.
    pub(crate) fn break_off(&self) {
        self.broken.store(true, Ordering::SeqCst);
        self.returned.notify(usize::MAX);
    }

    /// Whether the stream's reader went away.
    pub(crate) fn broken(&self) -> bool {
        self.broken.load(Ordering::SeqCst)
    }

    /// A listener woken by the next [`give`](Self::give); check
    /// [`available`](Self::available) after making it, so that no give is
    /// missed.
    pub(crate) fn listen(&self) -> EventListener {
        self.returned.listen()
    }

    /// Waits until some credit is available, or the stream is broken.
    pub(crate) async fn ready(&self) {
        while self.available() == 0 && !self.broken() {
            let listener = self.listen();
            if self.available() > 0 || self.broken() {
                return;
            }
            listener.await;
        }
    }
}

/// Sends one stream's bytes to the pool.
pub(crate) type SendOutput = Arc<dyn Fn(&[u8]) -> io::Result<()> + Send + Sync>;

/// A stream relayed to the pool under credits.
#[derive(Clone)]
pub(crate) struct RelayedOutput {
    pub(crate) credits: Arc<Credits>,
    pub(crate) send: SendOutput,
}

impl fmt::Debug for RelayedOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RelayedOutput")
            .field("available", &self.credits.available())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credits_are_taken_and_given_back() {
        let credits = Credits::new(10);
        credits.take(4);
        assert_eq!(credits.available(), 6);
        credits.take(100);
        assert_eq!(credits.available(), 0, "never below zero");
        let listener = credits.listen();
        credits.give(3);
        // The give woke the listener: it completes at once.
        block_on(listener);
        assert_eq!(credits.available(), 3);
    }

    fn block_on(future: impl Future<Output = ()>) {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(future);
    }
}
