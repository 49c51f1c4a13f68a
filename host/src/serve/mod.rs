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
//! - `accept`: the accept loop, [`Server::run`].
//! - `listener`: binding TCP or Unix sockets, accepting, waking `accept`.
//! - `metered`: a connection's halves, counting bytes and noting activity.
//! - `peers`: the per-peer cap, counting each peer's open connections.
//! - `record`: one [`ConnectionRecord`] per connection, as it ends.
//! - `slots`: the places for connections, each held as a permit.
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

mod accept;
mod listener;
mod metered;
mod peers;
mod record;
mod slots;
mod watchdog;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::cancel::CancelToken;
use crate::error::{Error, ErrorKind};
use crate::limits::Limits;
use crate::module::Module;
use crate::pool::{Isolation, Pool};
use crate::task::{Capabilities, Entry};

pub use listener::Listen;
use listener::{Listener, wake};
use peers::Peers;
pub use record::ConnectionRecord;
use slots::Slots;
use watchdog::{Timeouts, Watchdog};

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

/// What a server did, once it has stopped.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ServeSummary {
    /// Connections accepted (each has its record).
    pub connections: u64,
    /// Of these, the ones still running when the stop's grace ran out.
    pub cut_short: u64,
    /// Of these, the ones still running when the server was stopped at
    /// once ([`StopHandle::stop_now`]: `wasmproc serve`'s second interrupt).
    pub stopped_at_once: u64,
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

    /// Runs workers as threads or as worker processes (the accepted socket
    /// itself is handed to the process, which reads and writes it).
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
            .caused_by(error)
        })?;
        Ok(Server {
            _socket_file: socket_file,
            listener,
            bound,
            pool,
            watchdog: Arc::new(watchdog),
            entry: self.entry,
            argv: self.argv,
            timeouts: Timeouts {
                first_byte: self.first_byte_timeout,
                idle: self.idle_timeout,
                whole: self.limits.timeout,
            },
            peers: self.max_per_peer.map(Peers::new),
            grace: self.grace,
            on_connection: self.on_connection,
            slots: Slots::new(self.max_connections),
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
}

/// A Unix socket's file, removed when dropped (a server's end, or a server
/// dropped without running).
struct SocketFile(PathBuf);

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
