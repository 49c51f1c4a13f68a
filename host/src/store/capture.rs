//! The guest's stdout and stderr when they do not go to the host's own:
//! a bounded in-memory capture, or a caller's writer.
//!
//! wasmtime-wasi's own memory pipe traps the guest when it is full; a
//! capture here keeps the first bytes up to its cap, drops the rest and
//! marks itself truncated, and the guest runs on.

use std::io::Write;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError, StreamResult};

use crate::outcome::Captured;

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
        let mut buffer = lock(&self.shared);
        let room = buffer.cap - buffer.bytes.len();
        if bytes.len() > room {
            buffer.truncated = true;
        }
        let kept = bytes.len().min(room);
        buffer.bytes.extend_from_slice(&bytes[..kept]);
    }

    /// What was captured so far.
    pub(crate) fn take(&self) -> Captured {
        let mut buffer = lock(&self.shared);
        Captured {
            bytes: std::mem::take(&mut buffer.bytes),
            truncated: buffer.truncated,
        }
    }
}

/// Locks a buffer, ignoring poisoning: a panic elsewhere cannot leave the
/// bytes in an invalid state.
fn lock<T: ?Sized>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
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
    writer: Arc<Mutex<dyn Write + Send>>,
}

impl WriterSink {
    pub(crate) fn new(writer: Arc<Mutex<dyn Write + Send>>) -> Self {
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
