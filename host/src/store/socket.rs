//! A connection's socket as the guest's stdin and stdout, read and written
//! by the guest's own thread on its async runtime: no helper thread and no
//! hop between threads per read or write. The server's thread workers use
//! this, and so does a worker process, which is handed the accepted socket
//! itself (`pool::process::handover`).
//!
//! The socket is registered with the runtime that drives the guest on its
//! first use, from inside that runtime, and is non-blocking from then on.
//! A wait for bytes, or for room to write, is a readiness wait that the
//! task's deadline and cancellation race like any other host call; it
//! holds no thread, so a worker process whose task was abandoned there
//! need not retire ([`waits_on_a_socket`]).

use std::cell::Cell;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use wasmtime_wasi::cli::{IsTerminal, StdinStream, StdoutStream};
use wasmtime_wasi::p2::{InputStream, OutputStream, Pollable, StreamError, StreamResult};

use crate::mutex::Mutex;
use crate::task::{Meter, Socket};

thread_local! {
    /// Whether the guest on this thread waits, right now, on its socket's
    /// readiness: a wait that holds no thread of its own, so a task
    /// abandoned there leaves nothing behind, and a worker process need
    /// not retire for it (a server's timeouts end connections there all
    /// the time).
    static WAITING_ON_THE_SOCKET: Cell<bool> = const { Cell::new(false) };
}

/// Whether the guest on this thread is waiting on its socket (see
/// `WAITING_ON_THE_SOCKET`), as its last poll left it.
pub(crate) fn waits_on_a_socket() -> bool {
    WAITING_ON_THE_SOCKET.with(Cell::get)
}

/// Forgets an earlier task's socket wait, before the next task starts.
pub(crate) fn forget_socket_wait() {
    WAITING_ON_THE_SOCKET.with(|waiting| waiting.set(false));
}

/// Notes whether a socket wait is still pending, and passes its poll on.
fn note_socket_wait<T>(poll: Poll<T>) -> Poll<T> {
    WAITING_ON_THE_SOCKET.with(|waiting| waiting.set(poll.is_pending()));
    poll
}

/// `wait`, noted as a socket wait while it is pending.
async fn socket_wait<F: Future>(wait: F) -> F::Output {
    let mut wait = std::pin::pin!(wait);
    std::future::poll_fn(|cx| note_socket_wait(wait.as_mut().poll(cx))).await
}

/// The most one read takes, and the most one write is allowed.
const CHUNK: usize = 64 << 10;

/// The socket, registered on first use, shared by the guest's stdin and
/// stdout.
#[derive(Clone)]
pub(crate) struct SocketStreams {
    shared: Arc<Shared>,
}

struct Shared {
    /// Until first use: the socket as accepted.
    unregistered: Mutex<Option<Socket>>,
    registered: OnceLock<Result<Registered, io::ErrorKind>>,
    meter: Arc<dyn Meter>,
}

enum Registered {
    Tcp(tokio::net::TcpStream),
    #[cfg(unix)]
    Unix(tokio::net::UnixStream),
}

impl SocketStreams {
    pub(crate) fn new(socket: Socket, meter: Arc<dyn Meter>) -> Self {
        SocketStreams {
            shared: Arc::new(Shared {
                unregistered: Mutex::new(Some(socket)),
                registered: OnceLock::new(),
                meter,
            }),
        }
    }

    /// The guest's stdin.
    pub(crate) fn stdin(&self) -> SocketStdin {
        SocketStdin(self.clone())
    }

    /// The guest's stdout.
    pub(crate) fn stdout(&self) -> SocketStdout {
        SocketStdout {
            streams: self.clone(),
            pending: Bytes::new(),
        }
    }

    /// The registered socket; it must be called from inside the runtime
    /// that drives the guest (every caller is a stream operation of the
    /// guest's).
    fn socket(&self) -> Result<&Registered, StreamError> {
        let registered = self.shared.registered.get_or_init(|| {
            let socket = self
                .shared
                .unregistered
                .lock()
                .take()
                .ok_or(io::ErrorKind::NotConnected)?;
            register(socket).map_err(|error| error.kind())
        });
        registered
            .as_ref()
            .map_err(|kind| StreamError::LastOperationFailed(io::Error::from(*kind).into()))
    }

    /// One read of what is there now: empty when nothing is yet.
    fn try_read(&self, size: usize) -> StreamResult<Bytes> {
        let socket = self.socket()?;
        // Read into spare capacity: no zeroing of bytes about to be
        // overwritten.
        let mut buffer = BytesMut::with_capacity(size.clamp(1, CHUNK));
        match socket.try_read_buf(&mut buffer) {
            Ok(0) => Err(StreamError::Closed),
            Ok(n) => {
                self.shared.meter.read(n);
                Ok(buffer.freeze())
            }
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => Ok(Bytes::new()),
            Err(error) => Err(failed(error)),
        }
    }

    /// Writes what the socket takes now; returns how much.
    fn try_write(&self, bytes: &[u8]) -> StreamResult<usize> {
        match self.socket()?.try_write(bytes) {
            Ok(n) => {
                self.shared.meter.wrote(n);
                Ok(n)
            }
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => Ok(0),
            Err(error) => Err(failed(error)),
        }
    }
}

fn register(socket: Socket) -> io::Result<Registered> {
    match socket {
        Socket::Tcp(stream) => {
            stream.set_nonblocking(true)?;
            Ok(Registered::Tcp(tokio::net::TcpStream::from_std(stream)?))
        }
        #[cfg(unix)]
        Socket::Unix(stream) => {
            stream.set_nonblocking(true)?;
            Ok(Registered::Unix(tokio::net::UnixStream::from_std(stream)?))
        }
    }
}

impl Registered {
    async fn readable(&self) -> io::Result<()> {
        socket_wait(async {
            match self {
                Registered::Tcp(stream) => stream.readable().await,
                #[cfg(unix)]
                Registered::Unix(stream) => stream.readable().await,
            }
        })
        .await
    }

    async fn writable(&self) -> io::Result<()> {
        socket_wait(async {
            match self {
                Registered::Tcp(stream) => stream.writable().await,
                #[cfg(unix)]
                Registered::Unix(stream) => stream.writable().await,
            }
        })
        .await
    }

    fn try_read_buf(&self, buffer: &mut BytesMut) -> io::Result<usize> {
        match self {
            Registered::Tcp(stream) => stream.try_read_buf(buffer),
            #[cfg(unix)]
            Registered::Unix(stream) => stream.try_read_buf(buffer),
        }
    }

    fn try_write(&self, bytes: &[u8]) -> io::Result<usize> {
        match self {
            Registered::Tcp(stream) => stream.try_write(bytes),
            #[cfg(unix)]
            Registered::Unix(stream) => stream.try_write(bytes),
        }
    }

    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        note_socket_wait(match self {
            Registered::Tcp(stream) => stream.poll_read_ready(cx),
            #[cfg(unix)]
            Registered::Unix(stream) => stream.poll_read_ready(cx),
        })
    }

    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        note_socket_wait(match self {
            Registered::Tcp(stream) => stream.poll_write_ready(cx),
            #[cfg(unix)]
            Registered::Unix(stream) => stream.poll_write_ready(cx),
        })
    }
}

/// A failed socket operation, for the guest: a peer that went away is the
/// stream's end; anything else is an error the guest sees.
fn failed(error: io::Error) -> StreamError {
    match error.kind() {
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::NotConnected => StreamError::Closed,
        _ => StreamError::LastOperationFailed(error.into()),
    }
}

/// The guest's stdin: what the peer sends.
pub(crate) struct SocketStdin(SocketStreams);

impl IsTerminal for SocketStdin {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdinStream for SocketStdin {
    fn p2_stream(&self) -> Box<dyn InputStream> {
        Box::new(SocketStdin(self.0.clone()))
    }

    fn async_stream(&self) -> Box<dyn AsyncRead + Send + Sync> {
        Box::new(SocketStdin(self.0.clone()))
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for SocketStdin {
    async fn ready(&mut self) {
        // An error shows at the next read.
        if let Ok(socket) = self.0.socket() {
            let _ = socket.readable().await;
        }
    }
}

#[wasmtime_wasi::async_trait]
impl InputStream for SocketStdin {
    fn read(&mut self, size: usize) -> StreamResult<Bytes> {
        if size == 0 {
            return Ok(Bytes::new());
        }
        self.0.try_read(size)
    }

    /// Waits until bytes come (or the end): never an empty read, which a
    /// blocking guest would be told is an interruption.
    async fn blocking_read(&mut self, size: usize) -> StreamResult<Bytes> {
        if size == 0 {
            return Ok(Bytes::new());
        }
        loop {
            let bytes = self.0.try_read(size)?;
            if !bytes.is_empty() {
                return Ok(bytes);
            }
            self.0.socket()?.readable().await.map_err(failed)?;
        }
    }
}

impl AsyncRead for SocketStdin {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            let socket = self.0.socket().map_err(io::Error::other)?;
            match self.0.try_read(buf.remaining()) {
                Ok(bytes) if bytes.is_empty() => {
                    std::task::ready!(socket.poll_read_ready(cx))?;
                }
                Ok(bytes) => {
                    buf.put_slice(&bytes);
                    return Poll::Ready(Ok(()));
                }
                Err(StreamError::Closed) => return Poll::Ready(Ok(())),
                Err(error) => return Poll::Ready(Err(io::Error::other(error))),
            }
        }
    }
}

/// The guest's stdout: what the peer receives. Bytes the socket did not
/// take at once wait in `pending` until it has room.
pub(crate) struct SocketStdout {
    streams: SocketStreams,
    pending: Bytes,
}

impl SocketStdout {
    /// Sends what is pending, as far as the socket takes it now.
    fn push(&mut self) -> StreamResult<()> {
        while !self.pending.is_empty() {
            let n = self.streams.try_write(&self.pending)?;
            if n == 0 {
                break;
            }
            let _ = self.pending.split_to(n);
        }
        Ok(())
    }

    /// Waits until everything pending is sent.
    async fn drain(&mut self) -> StreamResult<()> {
        loop {
            self.push()?;
            if self.pending.is_empty() {
                return Ok(());
            }
            self.streams.socket()?.writable().await.map_err(failed)?;
        }
    }
}

impl IsTerminal for SocketStdout {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for SocketStdout {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.streams.stdout())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.streams.stdout())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for SocketStdout {
    async fn ready(&mut self) {
        // An error shows at the next write.
        let _ = self.drain().await;
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for SocketStdout {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        if !self.pending.is_empty() {
            return Err(StreamError::trap(
                "a write before the last one was sent: wait until the stream is ready",
            ));
        }
        self.pending = bytes;
        self.push()
    }

    fn flush(&mut self) -> StreamResult<()> {
        self.push()
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        self.push()?;
        Ok(if self.pending.is_empty() { CHUNK } else { 0 })
    }

    /// Sends all of `bytes`, waiting for room as long as it takes (the
    /// task's deadline races the wait).
    async fn blocking_write_and_flush(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.drain().await?;
        self.pending = bytes;
        self.drain().await
    }
}

impl AsyncWrite for SocketStdout {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            let socket = self.streams.socket().map_err(io::Error::other)?;
            match self.streams.try_write(buf) {
                Ok(0) if !buf.is_empty() => {
                    std::task::ready!(socket.poll_write_ready(cx))?;
                }
                Ok(n) => return Poll::Ready(Ok(n)),
                Err(error) => {
                    self.pending = Bytes::new();
                    return Poll::Ready(Err(io::Error::other(error)));
                }
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
