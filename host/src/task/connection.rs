//! A connection as a task's stdin and stdout (the inetd convention): the
//! guest reads what the peer sends and writes what the peer receives, and
//! the connection is hung up when the task ends.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;

use super::{Output, Stdin, Task};
use crate::error::{Error, ErrorKind};

/// A two-way byte stream that a task can take as its stdin and stdout:
/// a [`TcpStream`], a Unix socket, or any socket-like type.
///
/// A connection is read and written at once (a guest may write while a
/// read waits), so it must give a second handle to itself, and it must be
/// able to end both directions from either handle, which also wakes a read
/// that is waiting.
pub trait Connection: Read + Write + Send + Sync + 'static {
    /// Another handle to the same connection (for a socket, a duplicate of
    /// its descriptor).
    ///
    /// # Errors
    ///
    /// When the system cannot duplicate the handle.
    fn try_clone_connection(&self) -> io::Result<Self>
    where
        Self: Sized;

    /// Ends the connection in both directions: the peer reads end of file,
    /// and reads waiting on any handle return.
    fn hang_up(&self);
}

impl Connection for TcpStream {
    fn try_clone_connection(&self) -> io::Result<Self> {
        self.try_clone()
    }

    fn hang_up(&self) {
        // A peer that already went away makes this fail: it is hung up.
        let _ = self.shutdown(Shutdown::Both);
    }
}

#[cfg(unix)]
impl Connection for std::os::unix::net::UnixStream {
    fn try_clone_connection(&self) -> io::Result<Self> {
        self.try_clone()
    }

    fn hang_up(&self) {
        let _ = self.shutdown(Shutdown::Both);
    }
}

/// A socket a server accepted, given to a task run in this process as its
/// stdin and stdout directly (the store reads and writes it on the guest's
/// own thread), with what counts its bytes.
pub(crate) enum Socket {
    Tcp(TcpStream),
    #[cfg(unix)]
    Unix(std::os::unix::net::UnixStream),
}

/// Counts what a connection moves, as it moves.
pub(crate) trait Meter: Send + Sync {
    /// `n` bytes came from the peer.
    fn read(&self, n: usize);
    /// `n` bytes went to the peer.
    fn wrote(&self, n: usize);
}

/// A task's own socket: used instead of its stdin and stdout when the task
/// runs in this process; a worker process gets the stdin and stdout, which
/// read and write the same connection through its supervisor.
#[derive(Clone)]
pub(crate) struct DirectSocket {
    pub(crate) socket: Arc<std::sync::Mutex<Option<Socket>>>,
    pub(crate) meter: Arc<dyn Meter>,
}

impl std::fmt::Debug for DirectSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DirectSocket")
    }
}

impl DirectSocket {
    /// The socket, for the one store that runs the task.
    pub(crate) fn take(&self) -> Option<Socket> {
        crate::mutex::lock(&self.socket).take()
    }

    /// Gives the socket back after a hand-over to a worker process that
    /// failed before the worker could run the task: another may take it.
    pub(crate) fn put_back(&self, socket: Socket) {
        *crate::mutex::lock(&self.socket) = Some(socket);
    }

    /// Whether the socket is still here, never handed to a store that ran
    /// the task (so none of the connection's bytes were read yet).
    pub(crate) fn is_unused(&self) -> bool {
        crate::mutex::lock(&self.socket).is_some()
    }
}

/// What ends a task's connection once the task has ended. Clones share
/// the one connection.
#[derive(Clone)]
pub(crate) struct HangUp(Arc<dyn Fn() + Send + Sync>);

impl std::fmt::Debug for HangUp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HangUp")
    }
}

impl HangUp {
    pub(crate) fn new(hang_up: impl Fn() + Send + Sync + 'static) -> Self {
        HangUp(Arc::new(hang_up))
    }
}

impl Task {
    /// Makes `connection` the task's stdin and stdout, streaming both ways
    /// as bytes arrive, in either isolation; the connection is hung up when
    /// the task ends, before its outcome is delivered. stderr stays as it
    /// was (captured by default).
    ///
    /// ```no_run
    /// use std::net::TcpListener;
    /// use wasmproc::{Pool, Runtime, Task};
    ///
    /// let module = Runtime::new()?.load("echo.wasm")?;
    /// let pool = Pool::builder(&module).workers(16).build()?;
    /// let listener = TcpListener::bind("127.0.0.1:7000").expect("a free port");
    /// for stream in listener.incoming() {
    ///     let Ok(stream) = stream else { continue };
    ///     pool.submit(Task::command().connection(stream)?)?;
    /// }
    /// # Ok::<(), wasmproc::Error>(())
    /// ```
    ///
    /// For a stream that cannot be split in two, give its halves as
    /// [`Stdin::reader`] and [`Output::Writer`] instead.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Setup`] when the connection cannot be duplicated.
    pub fn connection(mut self, connection: impl Connection) -> Result<Self, Error> {
        let reader = connection.try_clone_connection().map_err(|error| {
            Error::new(
                ErrorKind::Setup,
                format!("cannot duplicate the connection to read it: {error}"),
            )
            .caused_by(error)
        })?;
        let ends = connection.try_clone_connection().map_err(|error| {
            Error::new(
                ErrorKind::Setup,
                format!("cannot duplicate the connection to hang it up: {error}"),
            )
            .caused_by(error)
        })?;
        self.stdin = Stdin::reader(reader);
        self.stdout = Output::Writer(Arc::new(std::sync::Mutex::new(connection)));
        self.hang_up = Some(HangUp::new(move || ends.hang_up()));
        Ok(self)
    }

    /// Hangs up the task's connection, if it has one: called once its
    /// outcome is known.
    pub(crate) fn hang_up(&self) {
        if let Some(HangUp(hang_up)) = &self.hang_up {
            hang_up();
        }
    }

    /// Whether the task may run again from the start after a worker died
    /// under it: not when its input was a stream (part of it is gone) or
    /// its output already went somewhere.
    pub(crate) fn can_rerun(&self) -> bool {
        !matches!(self.stdin, Stdin::Reader(_) | Stdin::Inherit)
            && !matches!(self.stdout, Output::Writer(_) | Output::Inherit)
            && !matches!(self.stderr, Output::Writer(_) | Output::Inherit)
    }

    /// Whether the task streams its stdin: such a task waits on a peer, so
    /// it is never queued behind another in one worker.
    pub(crate) fn streams_stdin(&self) -> bool {
        matches!(self.stdin, Stdin::Reader(_) | Stdin::Inherit)
    }
}
