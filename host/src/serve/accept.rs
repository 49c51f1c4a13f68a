//! The accept loop: take a place, accept, count the peer, hand the
//! connection to a worker (or refuse it), and once stopped, let those in
//! flight finish within the grace period.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::listener::Stream;
use super::metered::Traffic;
use super::peers::Counted;
use super::record::{Recorder, refused};
use super::slots::Slot;
use super::watchdog::Expired;
use super::{ServeSummary, Server};
use crate::cancel::CancelToken;
use crate::error::{Error, ErrorKind};
use crate::outcome::Outcome;
use crate::status::ExitStatus;
use crate::task::{DirectSocket, HangUp, Meter, Task};

/// How long to wait before accepting again after the system refused (out
/// of descriptors, say): a pause, so that connections ending free some.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(20);

impl Server {
    /// Accepts and serves connections until stopped, then lets those in
    /// flight finish (up to the grace period) and returns.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Setup`] when accepting fails for good (the listening
    /// socket broke); connections in flight are ended first.
    pub fn run(self) -> Result<ServeSummary, Error> {
        let mut summary = ServeSummary::default();
        let next_id = AtomicU64::new(0);
        let mut failed = None;
        while let Some(slot) = self.slots.take(&self.stop.stopping) {
            let accepted = self.listener.accept();
            if self.stop.stopping.load(Ordering::SeqCst) {
                break;
            }
            match accepted {
                Ok((stream, peer, ip)) => {
                    summary.connections += 1;
                    match self.count(ip) {
                        Ok(counted) => {
                            let id = next_id.fetch_add(1, Ordering::Relaxed);
                            self.start(id, stream, peer, counted, slot);
                        }
                        Err(refused) => {
                            summary.refused += 1;
                            drop(stream);
                            self.refuse(peer, refused, slot);
                        }
                    }
                }
                Err(error) if is_transient(&error) => {
                    drop(slot);
                    if error.raw_os_error().is_some_and(is_out_of_files) {
                        std::thread::sleep(ACCEPT_BACKOFF);
                    }
                }
                Err(error) => {
                    drop(slot);
                    failed = Some(Error::new(
                        ErrorKind::Setup,
                        format!("cannot accept connections on {}: {error}", self.bound),
                    ));
                    break;
                }
            }
        }
        // Stopped: nothing more is accepted; those in flight finish.
        drop(self.listener);
        self.pool.close();
        let grace = if failed.is_some() || self.stop.now.is_cancelled() {
            Duration::ZERO
        } else {
            self.grace
        };
        if !self
            .slots
            .wait_all_free(Instant::now() + grace, &self.stop.now)
        {
            let before = self.slots.in_use() as u64;
            // A stop at once (a second interrupt) ends them for that
            // reason, whether it came before the grace or during it.
            if self.stop.now.is_cancelled() && failed.is_none() {
                self.watchdog.expire_all(Expired::StoppedAtOnce);
                summary.stopped_at_once = before;
            } else {
                self.watchdog.expire_all(Expired::Stopped(grace));
                summary.cut_short = before;
            }
        }
        self.pool.join();
        match failed {
            Some(error) => Err(error),
            None => Ok(summary),
        }
    }

    /// Counts a connection from `ip` for its peer (`Ok(None)`: not
    /// counted, no cap or no IP); `Err` with the message when the peer has
    /// as many open as the cap allows.
    fn count(&self, ip: Option<IpAddr>) -> Result<Option<Counted>, String> {
        let (Some(peers), Some(ip)) = (&self.peers, ip) else {
            return Ok(None);
        };
        match peers.admit(ip) {
            Some(counted) => Ok(Some(counted)),
            None => Err(format!(
                "refused: {ip} has {} connections open already, the most one peer may (the \
                 server's per-peer cap); closed at once",
                peers.cap()
            )),
        }
    }

    /// Records a connection closed at once by the per-peer cap, and frees
    /// its place.
    fn refuse(&self, peer: String, message: String, slot: Slot) {
        refused(peer, message, self.on_connection.as_ref());
        drop(slot);
    }

    /// The task for a connection, its stdin and stdout wired to `stream`:
    /// the guest's thread reads and writes the socket itself (one
    /// duplicate of it), in this process or in a worker process, which the
    /// socket is handed to (`pool::process::handover`).
    fn wire(&self, stream: &Stream, traffic: &Arc<Traffic>) -> std::io::Result<Task> {
        let mut task = Task::new(self.entry.clone(), &b"null"[..]).args(self.argv.iter().cloned());
        task.direct = Some(DirectSocket {
            socket: Arc::new(Mutex::new(Some(stream.socket()?))),
            meter: Arc::clone(traffic) as Arc<dyn Meter>,
        });
        Ok(task)
    }

    /// Hands one accepted connection to a worker.
    fn start(&self, id: u64, stream: Stream, peer: String, counted: Option<Counted>, slot: Slot) {
        let traffic = Traffic::new();
        let wired = self.wire(&stream, &traffic);
        let stream = Arc::new(stream);
        let ended_by_server: Arc<OnceLock<Expired>> = Arc::new(OnceLock::new());
        let record = Recorder {
            peer,
            counted,
            traffic: Arc::clone(&traffic),
            ended_by_server: Arc::clone(&ended_by_server),
            on_connection: self.on_connection.clone(),
            slot,
            watchdog: Arc::clone(&self.watchdog),
            id,
        };
        let mut task = match wired {
            Ok(task) => task,
            Err(error) => {
                stream.hang_up();
                let message = format!("cannot duplicate the connection's socket: {error}");
                record.finish(Outcome::failed(ExitStatus::CannotRun, message));
                return;
            }
        };
        let hang_up = Arc::clone(&stream);
        task.hang_up = Some(HangUp::new(move || hang_up.hang_up()));

        // Watched from before the task starts; the token arrives once it
        // is queued.
        let token: Arc<OnceLock<CancelToken>> = Arc::new(OnceLock::new());
        let theirs = Arc::clone(&token);
        self.watchdog.watch(
            id,
            traffic,
            self.timeouts,
            Box::new(move |why| {
                let _ = ended_by_server.set(why);
                if let Some(token) = theirs.get() {
                    token.cancel();
                }
                stream.hang_up();
            }),
        );
        // A closed pool answers the task itself (its record is made).
        if let Ok(cancel) = self
            .pool
            .submit_then(task, move |outcome| record.finish(outcome))
        {
            let _ = token.set(cancel);
        }
    }
}

/// Whether accepting failed for this one connection only (it was reset
/// before it was taken), or for a while (out of descriptors): accepting
/// goes on.
fn is_transient(error: &std::io::Error) -> bool {
    use std::io::ErrorKind as Kind;
    matches!(
        error.kind(),
        Kind::ConnectionAborted | Kind::ConnectionReset | Kind::Interrupted | Kind::WouldBlock
    ) || error.raw_os_error().is_some_and(is_out_of_files)
}

/// Whether an OS error code says the process or the system ran out of
/// descriptors (EMFILE, ENFILE on Unix; WSAEMFILE on Windows).
fn is_out_of_files(code: i32) -> bool {
    if cfg!(windows) {
        code == 10024
    } else {
        code == 24 || code == 23
    }
}
