//! One record per connection: what happened to it, made once its task
//! ended (or at once, for a connection refused by the per-peer cap), and
//! handed to the caller's `on_connection`.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use super::OnConnection;
use super::metered::Traffic;
use super::peers::Counted;
use super::slots::Slot;
use super::watchdog::{Expired, Watchdog};
use crate::outcome::Outcome;
use crate::status::ExitStatus;

/// What happened to one connection: one record per accepted connection.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ConnectionRecord {
    /// The peer's address (`IP:PORT`; for a Unix socket its path, or
    /// `unix`).
    pub peer: String,
    /// How the worker ended. A first-byte, idle or whole-connection
    /// timeout, or a stop's grace running out, is `TimedOut`; a connection
    /// closed at once because its peer had as many open as the per-peer
    /// cap allows is `Cancelled` (no worker ran it).
    pub status: ExitStatus,
    /// Why, when the guest did not just exit: the host's message, or the
    /// last line the guest wrote on stderr.
    pub message: Option<String>,
    /// Bytes the peer sent that the guest read.
    pub bytes_in: u64,
    /// Bytes the guest wrote to the peer.
    pub bytes_out: u64,
    /// From accept to hang-up.
    pub duration: Duration,
}

/// Makes a connection's record once its task ended, and frees its place.
pub(super) struct Recorder {
    pub(super) peer: String,
    /// The connection's count for its peer, given back as it ends.
    pub(super) counted: Option<Counted>,
    pub(super) traffic: Arc<Traffic>,
    pub(super) ended_by_server: Arc<OnceLock<Expired>>,
    pub(super) on_connection: Option<OnConnection>,
    /// The connection's place, given back once its record is made.
    pub(super) slot: Slot,
    pub(super) watchdog: Arc<Watchdog>,
    pub(super) id: u64,
}

impl Recorder {
    pub(super) fn finish(self, outcome: Outcome) {
        self.watchdog.forget(self.id);
        // Before the record: whoever reads it may connect again at once.
        drop(self.counted);
        let (status, message) = match self.ended_by_server.get() {
            // A stop at once is the user's cancel (Ctrl-C twice), as the
            // table's 130 says; the others are the server's time limits.
            Some(Expired::StoppedAtOnce) => (
                ExitStatus::Cancelled,
                Some(describe(Expired::StoppedAtOnce)),
            ),
            Some(why) => (ExitStatus::TimedOut, Some(describe(*why))),
            None => {
                let message = outcome.message.clone().or_else(|| {
                    (!outcome.status.success())
                        .then(|| last_line(&outcome.stderr.bytes))
                        .flatten()
                });
                (outcome.status, message)
            }
        };
        let record = ConnectionRecord {
            peer: self.peer,
            status,
            message,
            bytes_in: self.traffic.bytes_in.load(Ordering::Relaxed),
            bytes_out: self.traffic.bytes_out.load(Ordering::Relaxed),
            duration: self.traffic.opened.elapsed(),
        };
        report(&record, self.on_connection.as_ref());
        drop(self.slot);
    }
}

/// Reports a connection closed at once by the per-peer cap.
pub(super) fn refused(peer: String, message: String, on_connection: Option<&OnConnection>) {
    let record = ConnectionRecord {
        peer,
        status: ExitStatus::Cancelled,
        message: Some(message),
        bytes_in: 0,
        bytes_out: 0,
        duration: Duration::ZERO,
    };
    report(&record, on_connection);
}

/// Hands a record to the caller's callback, if any.
fn report(record: &ConnectionRecord, on_connection: Option<&OnConnection>) {
    if let Some(on_connection) = on_connection {
        // The caller's code runs on a worker's thread: a panic in it
        // must not take the worker, or the connection's place, along.
        let _ = std::panic::catch_unwind(AssertUnwindSafe(|| on_connection(record)));
    }
}

/// Words for why the server ended a connection.
fn describe(why: Expired) -> String {
    let human = |d: Duration| humantime::format_duration(d).to_string();
    match why {
        Expired::Silent(first_byte) => format!(
            "no byte moved within {} of connecting (the handler read nothing from the peer \
             and wrote nothing): ended by the first-byte timeout",
            human(first_byte)
        ),
        Expired::Idle(idle) => format!(
            "the connection was idle for {} (no byte either way): ended by the idle timeout",
            human(idle)
        ),
        Expired::Timeout(timeout) => format!(
            "the connection was open for {}: ended by its timeout",
            human(timeout)
        ),
        Expired::Stopped(grace) => format!(
            "the server stopped and the connection was still open {} later: ended",
            human(grace)
        ),
        Expired::StoppedAtOnce => "the server was stopped at once, with the connection open: \
                                   ended by a second interrupt"
            .to_owned(),
    }
}

/// The last non-empty line of a guest's stderr, at most 1 KiB of it.
fn last_line(stderr: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(stderr);
    let line = text.lines().rev().find(|line| !line.trim().is_empty())?;
    let mut line = line.trim().to_owned();
    if line.len() > 1024 {
        let mut cut = 1024;
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        line.truncate(cut);
    }
    Some(line)
}
