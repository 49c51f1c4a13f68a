//! The guest's stdout and stderr when they do not go to the host's own:
//! a bounded in-memory capture, a caller's writer, or (in a worker
//! process) a relay to the pool under credits.
//!
//! wasmtime-wasi's own memory pipe traps the guest when it is full; a
//! capture here keeps the first bytes up to its cap, drops the rest and
//! marks itself truncated, and the guest runs on.

use std::io::Write;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use event_listener::EventListener;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError, StreamResult};

use crate::mutex::{Mutex, lock};
use crate::outcome::Captured;
use crate::task::RelayedOutput;

/// The most a guest may write in one call; it keeps each host-side copy
/// small. Writers loop, so any amount still goes through.
const WRITE_PERMIT: usize = 64 << 10;

/// A bounded capture of one output stream. Clones share the buffer.
#[derive(Clone)]
pub(crate) struct Capture {
    shared: Arc<Mutex<CaptureBuffer>>,
}

struct CaptureBuffer {
    bytes: Vec<u8>,
    cap: usize,
    truncated: bool,
}

impl Capture {
    pub(crate) fn new(cap: usize) -> Self {
        Capture {
            shared: Arc::new(Mutex::new(CaptureBuffer {
                bytes: Vec::new(),
                cap,
                truncated: false,
            })),
        }
    }

    fn append(&self, bytes: &[u8]) {
        let mut buffer = self.shared.lock();
        let room = buffer.cap - buffer.bytes.len();
        if bytes.len() > room {
            buffer.truncated = true;
        }
        let kept = bytes.len().min(room);
        buffer.bytes.extend_from_slice(&bytes[..kept]);
    }

    /// What was captured so far.
    pub(crate) fn take(&self) -> Captured {
        let mut buffer = self.shared.lock();
        Captured {
            bytes: std::mem::take(&mut buffer.bytes),
            truncated: buffer.truncated,
        }
    }
}

impl IsTerminal for Capture {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for Capture {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for Capture {
    async fn ready(&mut self) {}
}

#[wasmtime_wasi::async_trait]
impl OutputStream for Capture {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.append(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_PERMIT)
    }
}

impl AsyncWrite for Capture {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.append(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// A caller's writer as a guest output stream.
#[derive(Clone)]
pub(crate) struct WriterSink {
    writer: Arc<std::sync::Mutex<dyn Write + Send>>,
}

impl WriterSink {
    pub(crate) fn new(writer: Arc<std::sync::Mutex<dyn Write + Send>>) -> Self {
        WriterSink { writer }
    }

    fn write_all(&self, bytes: &[u8]) -> std::io::Result<()> {
        lock(&self.writer).write_all(bytes)
    }
}

impl IsTerminal for WriterSink {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for WriterSink {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for WriterSink {
    async fn ready(&mut self) {}
}

#[wasmtime_wasi::async_trait]
impl OutputStream for WriterSink {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.write_all(&bytes)
            .map_err(|error| StreamError::LastOperationFailed(wasmtime::Error::new(error)))
    }

    fn flush(&mut self) -> StreamResult<()> {
        lock(&self.writer)
            .flush()
            .map_err(|error| StreamError::LastOperationFailed(wasmtime::Error::new(error)))
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_PERMIT)
    }
}

impl AsyncWrite for WriterSink {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Poll::Ready(self.write_all(buf).map(|()| buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(lock(&self.writer).flush())
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// A worker process's stream relayed to its pool under credits: a write
/// waits (asynchronously, so that the task's deadline and cancellation
/// still end it) until the pool has written enough earlier bytes out.
pub(crate) struct RelayedSink {
    relayed: RelayedOutput,
    /// A `poll_write` waiting for credits.
    waiting: Option<EventListener>,
}

impl RelayedSink {
    pub(crate) fn new(relayed: RelayedOutput) -> Self {
        RelayedSink {
            relayed,
            waiting: None,
        }
    }

    /// How much may be written now.
    fn permit(&self) -> usize {
        usize::try_from(self.relayed.credits.available())
            .unwrap_or(usize::MAX)
            .min(WRITE_PERMIT)
    }

    fn send(&self, bytes: &[u8]) -> std::io::Result<()> {
        self.check_broken()?;
        self.relayed.credits.take(bytes.len() as u64);
        (self.relayed.send)(bytes)
    }

    /// The error a write gets once the pool could not pass earlier bytes
    /// on: the reader went away, as a broken pipe says.
    fn check_broken(&self) -> std::io::Result<()> {
        if self.relayed.credits.broken() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "the stream's reader went away",
            ));
        }
        Ok(())
    }
}

impl IsTerminal for RelayedSink {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for RelayedSink {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(RelayedSink::new(self.relayed.clone()))
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(RelayedSink::new(self.relayed.clone()))
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for RelayedSink {
    async fn ready(&mut self) {
        self.relayed.credits.ready().await;
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for RelayedSink {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        // WASI asked `check_write` first: the bytes fit the credits.
        self.send(&bytes)
            .map_err(|error| StreamError::LastOperationFailed(wasmtime::Error::new(error)))
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        self.check_broken()
            .map_err(|error| StreamError::LastOperationFailed(wasmtime::Error::new(error)))?;
        Ok(self.permit())
    }
}

impl AsyncWrite for RelayedSink {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        loop {
            self.check_broken()?;
            let permit = self.permit();
            if permit > 0 {
                self.waiting = None;
                let n = permit.min(buf.len());
                return Poll::Ready(self.send(&buf[..n]).map(|()| n));
            }
            let credits = Arc::clone(&self.relayed.credits);
            let listener = self.waiting.get_or_insert_with(|| credits.listen());
            if credits.available() == 0 && !credits.broken() {
                std::task::ready!(Pin::new(listener).poll(cx));
            }
            self.waiting = None;
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
