//! Serving connections: every accepted connection is handed to a fresh
//! sandboxed worker as its stdin and stdout (the inetd convention), in
//! either isolation, the same way on every OS.
//!
//! ```no_run
//! use std::time::Duration;
//! use wasmproc::serve::{Listen, Server};
//! use wasmproc::{Limits, Runtime};
//!
//! let module = Runtime::new()?.load("echo.wasm")?;
//! let server = Server::builder(&module, Listen::parse("127.0.0.1:7000")?)
//!     .max_connections(64)
//!     .idle_timeout(Some(Duration::from_secs(10)))
//!     .limits(Limits::default().timeout(Duration::from_secs(60)))
//!     .on_connection(|record| eprintln!("{} {}", record.peer, record.status))
//!     .bind()?;
//! let stop = server.stopper();
//! // From another thread, or a Ctrl-C handler: stop.stop();
//! # drop(stop);
//! let summary = server.run()?;
//! eprintln!("served {} connections", summary.connections);
//! # Ok::<(), wasmproc::Error>(())
//! ```
//!
//! - `listener`: binding TCP or Unix sockets, accepting, waking `accept`.
//! - `metered`: a connection's halves, counting bytes and noting activity.
//! - `peers`: the per-peer cap, counting each peer's open connections.
//! - `watchdog`: one timer thread for the first-byte, idle and
//!   whole-connection timeouts, and for ending what outlives a stop's grace
//!   period.
//!
//! # Clients that hold places and send nothing
//!
//! Each connection holds one of the server's places for its life, and
//! connections past the bound wait in the kernel's accept backlog. So that
//! sockets opened and left silent (a slowloris) cannot keep real clients
//! waiting, a connection on which no byte moved either way within the
//! [first-byte timeout](ServerBuilder::first_byte_timeout) of its accept is
//! ended, and one peer may hold only [a few places](ServerBuilder::max_per_peer)
//! at once: its connections past them are closed as soon as they are
//! accepted.

mod listener;
mod metered;
mod peers;
mod watchdog;

use std::net::IpAddr;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use crate::cancel::CancelToken;
use crate::error::{Error, ErrorKind};
use crate::limits::Limits;
use crate::module::Module;
use crate::outcome::Outcome;
use crate::pool::{Isolation, Pool};
use crate::status::ExitStatus;
use crate::task::{Capabilities, DirectSocket, Entry, HangUp, Meter, Output, Stdin, Task};

pub use listener::Listen;
use listener::{Listener, Stream, wake};
use metered::{Incoming, Outgoing, Traffic};
use peers::{Counted, Peers};
use watchdog::{Expired, Timeouts, Watchdog};

/// The default bound on connections served at once.
pub const DEFAULT_MAX_CONNECTIONS: usize = 64;

/// The default idle timeout: a connection that moves no byte either way
/// for this long is ended.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The default first-byte timeout: a connection on which no byte moved
/// either way this long after its accept is ended.
pub const DEFAULT_FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(5);

/// The default cap on the connections one peer (one IP address; for IPv6,
/// one /64 network) has open at once.
pub const DEFAULT_MAX_PER_PEER: usize = 8;

/// The default time in-flight connections get to finish after a stop.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(10);

/// The default room for connections waiting to be accepted.
pub const DEFAULT_BACKLOG: u32 = 1024;

/// How long to wait before accepting again after the system refused (out
/// of descriptors, say): a pause, so that connections ending free some.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(20);

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

/// What a server did, once it has stopped.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ServeSummary {
    /// Connections accepted (each has its record).
    pub connections: u64,
    /// Of these, the ones still running when the stop's grace ran out.
    pub cut_short: u64,
    /// Of these, the ones closed at once by the per-peer cap.
    pub refused: u64,
}

type OnConnection = Arc<dyn Fn(&ConnectionRecord) + Send + Sync>;

/// Configures a [`Server`]; [`bind`](ServerBuilder::bind) makes it.
pub struct ServerBuilder {
    module: Module,
    listen: Listen,
    entry: Entry,
    argv: Vec<String>,
    max_connections: usize,
    max_per_peer: Option<usize>,
    first_byte_timeout: Option<Duration>,
    idle_timeout: Option<Duration>,
    grace: Duration,
    backlog: u32,
    limits: Limits,
    caps: Capabilities,
    isolation: Isolation,
    on_connection: Option<OnConnection>,
}

impl ServerBuilder {
    /// Which entry each connection runs: by default [`Entry::Auto`] (the
    /// WASI command's `_start`, else the module's only task). A typed task
    /// (a `#[wasmproc_guest::handler]`) is called with `null`.
    pub fn entry(mut self, entry: Entry) -> Self {
        self.entry = entry;
        self
    }

    /// The guest's arguments after `argv[0]`, as an inetd server's
    /// (none by default).
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.argv = args.into_iter().map(Into::into).collect();
        self
    }

    /// Serves at most `n` connections at once (default
    /// [`DEFAULT_MAX_CONNECTIONS`]); more wait in the accept backlog (see
    /// [`backlog`](ServerBuilder::backlog)). Each connection holds a worker
    /// for its life, and a place in the runtime's instance pool: build the
    /// runtime with `max_instances` of at least `n`.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n;
        self
    }

    /// Lets one peer have at most `n` connections open at once (default
    /// [`DEFAULT_MAX_PER_PEER`]; `None`: no cap), so that one client
    /// cannot take every place. A peer is an IP address, or for IPv6 a /64
    /// network (one host usually has a whole /64); Unix-socket peers are
    /// not capped. A connection past the cap is closed as soon as it is
    /// accepted, without running a worker, and recorded `Cancelled` with a
    /// message that says why: it frees its place at once for others.
    ///
    /// Behind a proxy, or under a load tester, on one host, every
    /// connection comes from one address: give `None`, or a cap as large
    /// as [`max_connections`](ServerBuilder::max_connections).
    pub fn max_per_peer(mut self, n: Option<usize>) -> Self {
        self.max_per_peer = n;
        self
    }

    /// Ends a connection on which no byte moved either way this long after
    /// it was accepted (default [`DEFAULT_FIRST_BYTE_TIMEOUT`]; `None`:
    /// never): the peer sent nothing the handler read, and the handler
    /// wrote nothing. It is recorded `TimedOut`. A handler that speaks
    /// first (a greeting) is never ended by it, nor is a peer whose first
    /// bytes were read; from the first byte on, the
    /// [idle timeout](ServerBuilder::idle_timeout) applies. A handler
    /// that reads or writes nothing for this long after the accept (it
    /// computes first) counts as silent too.
    pub fn first_byte_timeout(mut self, first_byte: Option<Duration>) -> Self {
        self.first_byte_timeout = first_byte;
        self
    }

    /// Ends a connection on which no byte moved either way for this long
    /// (default [`DEFAULT_IDLE_TIMEOUT`]; `None`: never). It is recorded
    /// `TimedOut`.
    pub fn idle_timeout(mut self, idle: Option<Duration>) -> Self {
        self.idle_timeout = idle;
        self
    }

    /// How long connections in flight may finish after a stop before they
    /// are ended (default [`DEFAULT_GRACE`]).
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Room for connections waiting to be accepted (default
    /// [`DEFAULT_BACKLOG`]; the system may cap it, Linux at
    /// `net.core.somaxconn`). Connections past
    /// [`max_connections`](ServerBuilder::max_connections) wait there, in
    /// the kernel, until a place frees; once it is full, the kernel
    /// refuses new ones or drops their first packets (the client then
    /// retries, or fails to connect), depending on the system.
    pub fn backlog(mut self, backlog: u32) -> Self {
        self.backlog = backlog;
        self
    }

    /// Each connection's limits; the timeout is the whole connection's.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// What each connection's worker may touch (nothing by default).
    pub fn capabilities(mut self, caps: Capabilities) -> Self {
        self.caps = caps;
        self
    }

    /// Runs workers as threads or as worker processes (the connection's
    /// bytes are relayed to the process by its supervisor).
    pub fn isolation(mut self, isolation: Isolation) -> Self {
        self.isolation = isolation;
        self
    }

    /// Calls `record` once per connection, as it ends, on the thread that
    /// ended it (keep it quick: write a log line).
    pub fn on_connection(
        mut self,
        record: impl Fn(&ConnectionRecord) + Send + Sync + 'static,
    ) -> Self {
        self.on_connection = Some(Arc::new(record));
        self
    }

    /// Binds the listening socket and starts the workers; connections are
    /// accepted once [`Server::run`] is called (until then they wait in
    /// the backlog).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::BadInvocation`] for zero connections (or a per-peer
    /// cap of zero), invalid limits or an address that cannot be bound (in
    /// use, not permitted); the pool's errors.
    pub fn bind(self) -> Result<Server, Error> {
        if self.max_connections == 0 {
            return Err(Error::new(
                ErrorKind::BadInvocation,
                "a server needs room for at least one connection: give max_connections of 1 or more",
            ));
        }
        if self.max_per_peer == Some(0) {
            return Err(Error::new(
                ErrorKind::BadInvocation,
                "a per-peer cap of 0 would refuse every connection: give max_per_peer of 1 or \
                 more, or None for no cap",
            ));
        }
        self.limits.validate()?;
        let (listener, bound) = Listener::bind(&self.listen, self.backlog)?;
        // From here on, any return removes a Unix socket's file.
        let socket_file = match &bound {
            Listen::Unix(path) => Some(SocketFile(path.clone())),
            Listen::Tcp(_) => None,
        };
        let in_process = matches!(self.isolation, Isolation::Thread);
        let pool = Pool::builder(&self.module)
            .workers(self.max_connections)
            .queue_bound(self.max_connections)
            .limits(self.limits.clone())
            .capabilities(self.caps)
            .isolation(self.isolation)
            .build()?;
        let watchdog = Watchdog::start().map_err(|error| {
            Error::new(
                ErrorKind::Setup,
                format!("cannot start the server's timer thread: {error}"),
            )
        })?;
        Ok(Server {
            _socket_file: socket_file,
            listener,
            bound,
            pool,
            watchdog: Arc::new(watchdog),
            entry: self.entry,
            argv: self.argv,
            in_process,
            timeouts: Timeouts {
                first_byte: self.first_byte_timeout,
                idle: self.idle_timeout,
                whole: self.limits.get_timeout(),
            },
            peers: self.max_per_peer.map(Peers::new),
            grace: self.grace,
            on_connection: self.on_connection,
            slots: Arc::new(Slots::new(self.max_connections)),
            stop: Arc::new(StopState {
                stopping: AtomicBool::new(false),
                now: CancelToken::new(),
            }),
        })
    }
}

/// A bound server: [`run`](Server::run) accepts and serves connections
/// until [`StopHandle::stop`].
pub struct Server {
    /// Removes a Unix socket's file when the server goes.
    _socket_file: Option<SocketFile>,
    listener: Listener,
    bound: Listen,
    pool: Pool,
    watchdog: Arc<Watchdog>,
    entry: Entry,
    argv: Vec<String>,
    /// Whether workers are threads of this process.
    in_process: bool,
    timeouts: Timeouts,
    /// The per-peer cap, if any.
    peers: Option<Arc<Peers>>,
    grace: Duration,
    on_connection: Option<OnConnection>,
    slots: Arc<Slots>,
    stop: Arc<StopState>,
}

/// Stops a [`Server`] from any thread (a Ctrl-C handler).
#[derive(Clone)]
pub struct StopHandle {
    stop: Arc<StopState>,
    slots: Arc<Slots>,
    bound: Listen,
}

struct StopState {
    stopping: AtomicBool,
    /// Set by [`StopHandle::stop_now`]: no grace.
    now: CancelToken,
}

impl StopHandle {
    /// Stops accepting; connections in flight get the grace period to
    /// finish, then are ended. [`Server::run`] returns once all have.
    pub fn stop(&self) {
        if !self.stop.stopping.swap(true, Ordering::SeqCst) {
            self.slots.wake_all();
            wake(&self.bound);
        }
    }

    /// Stops at once: as [`stop`](StopHandle::stop), without the grace.
    pub fn stop_now(&self) {
        self.stop.now.cancel();
        self.stop();
        self.slots.wake_all();
    }
}

impl Server {
    /// A builder for a server of `module`'s workers on `listen`.
    pub fn builder(module: &Module, listen: Listen) -> ServerBuilder {
        ServerBuilder {
            module: module.clone(),
            listen,
            entry: Entry::Auto,
            argv: Vec::new(),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_per_peer: Some(DEFAULT_MAX_PER_PEER),
            first_byte_timeout: Some(DEFAULT_FIRST_BYTE_TIMEOUT),
            idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
            grace: DEFAULT_GRACE,
            backlog: DEFAULT_BACKLOG,
            limits: Limits::default(),
            caps: Capabilities::default(),
            isolation: Isolation::default(),
            on_connection: None,
        }
    }

    /// Where the server listens (with the port it got, for port 0).
    pub fn local_addr(&self) -> &Listen {
        &self.bound
    }

    /// A handle that stops the server.
    pub fn stopper(&self) -> StopHandle {
        StopHandle {
            stop: Arc::clone(&self.stop),
            slots: Arc::clone(&self.slots),
            bound: self.bound.clone(),
        }
    }

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
        while self.slots.take(&self.stop.stopping) {
            let accepted = self.listener.accept();
            if self.stop.stopping.load(Ordering::SeqCst) {
                self.slots.give();
                break;
            }
            match accepted {
                Ok((stream, peer, ip)) => {
                    summary.connections += 1;
                    match self.count(ip) {
                        Ok(counted) => {
                            let id = next_id.fetch_add(1, Ordering::Relaxed);
                            self.start(id, stream, peer, counted);
                        }
                        Err(refused) => {
                            summary.refused += 1;
                            drop(stream);
                            self.refuse(peer, refused);
                        }
                    }
                }
                Err(error) if is_transient(&error) => {
                    self.slots.give();
                    if error.raw_os_error().is_some_and(is_out_of_files) {
                        std::thread::sleep(ACCEPT_BACKOFF);
                    }
                }
                Err(error) => {
                    self.slots.give();
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
            let before = self.slots.in_use();
            self.watchdog.expire_all(grace);
            summary.cut_short = before as u64;
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
    fn refuse(&self, peer: String, message: String) {
        let record = ConnectionRecord {
            peer,
            status: ExitStatus::Cancelled,
            message: Some(message),
            bytes_in: 0,
            bytes_out: 0,
            duration: Duration::ZERO,
        };
        if let Some(on_connection) = &self.on_connection {
            let _ = std::panic::catch_unwind(AssertUnwindSafe(|| on_connection(&record)));
        }
        self.slots.give();
    }

    /// The task for a connection, its stdin and stdout wired to `stream`.
    ///
    /// In this process the guest's thread reads and writes the socket
    /// itself (one duplicate of it); a worker process gets the bytes through
    /// its supervisor, from blocking halves (two duplicates).
    fn wire(&self, stream: &Stream, traffic: &Arc<Traffic>) -> std::io::Result<Task> {
        let task = Task::new(self.entry.clone(), &b"null"[..]).args(self.argv.iter().cloned());
        if self.in_process {
            let mut task = task;
            task.direct = Some(DirectSocket {
                socket: Arc::new(Mutex::new(Some(stream.socket()?))),
                meter: Arc::clone(traffic) as Arc<dyn Meter>,
            });
            return Ok(task);
        }
        Ok(task
            .stdin(Stdin::reader(Incoming {
                stream: stream.try_clone()?,
                traffic: Arc::clone(traffic),
            }))
            .stdout(Output::Writer(Arc::new(Mutex::new(Outgoing {
                stream: stream.try_clone()?,
                traffic: Arc::clone(traffic),
            })))))
    }

    /// Hands one accepted connection to a worker.
    fn start(&self, id: u64, stream: Stream, peer: String, counted: Option<Counted>) {
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
            slots: Arc::clone(&self.slots),
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

/// A Unix socket's file, removed when dropped (a server's end, or a server
/// dropped without running).
struct SocketFile(PathBuf);

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Makes a connection's record once its task ended, and frees its place.
struct Recorder {
    peer: String,
    /// The connection's count for its peer, given back as it ends.
    counted: Option<Counted>,
    traffic: Arc<Traffic>,
    ended_by_server: Arc<OnceLock<Expired>>,
    on_connection: Option<OnConnection>,
    slots: Arc<Slots>,
    watchdog: Arc<Watchdog>,
    id: u64,
}

impl Recorder {
    fn finish(self, outcome: Outcome) {
        self.watchdog.forget(self.id);
        // Before the record: whoever reads it may connect again at once.
        drop(self.counted);
        let (status, message) = match self.ended_by_server.get() {
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
        if let Some(on_connection) = &self.on_connection {
            // The caller's code runs on a worker's thread: a panic in it
            // must not take the worker, or the connection's place, along.
            let _ = std::panic::catch_unwind(AssertUnwindSafe(|| on_connection(&record)));
        }
        self.slots.give();
    }
}

/// Words for why the server ended a connection.
fn describe(why: Expired) -> String {
    let human = |d: Duration| humantime::format_duration(d).to_string();
    match why {
        Expired::Silent(first_byte) => format!(
            "the peer sent nothing (and the handler wrote nothing) within {} of connecting: \
             ended by the first-byte timeout",
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

/// The places for connections: one is taken before each accept, so that
/// connections beyond the bound wait in the backlog.
struct Slots {
    state: Mutex<usize>,
    capacity: usize,
    changed: Condvar,
}

impl Slots {
    fn new(capacity: usize) -> Self {
        Slots {
            state: Mutex::new(0),
            capacity,
            changed: Condvar::new(),
        }
    }

    /// Takes a place, waiting for one; `false` once `stopping` is set.
    fn take(&self, stopping: &AtomicBool) -> bool {
        let mut used = self.lock();
        loop {
            if stopping.load(Ordering::SeqCst) {
                return false;
            }
            if *used < self.capacity {
                *used += 1;
                return true;
            }
            used = self.changed.wait(used).unwrap_or_else(|p| p.into_inner());
        }
    }

    fn give(&self) {
        *self.lock() -= 1;
        self.changed.notify_all();
    }

    fn in_use(&self) -> usize {
        *self.lock()
    }

    fn wake_all(&self) {
        let _used = self.lock();
        self.changed.notify_all();
    }

    /// Waits until no place is taken, up to `deadline` or until `now` is
    /// cancelled; whether none is.
    fn wait_all_free(&self, deadline: Instant, now: &CancelToken) -> bool {
        let mut used = self.lock();
        while *used > 0 && !now.is_cancelled() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            used = self
                .changed
                .wait_timeout(used, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        *used == 0
    }

    fn lock(&self) -> MutexGuard<'_, usize> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}
