//! Reading a blocking `Read` for a guest without blocking its async run: a
//! pump thread reads one chunk per request, so that nothing is read ahead
//! of what the guest (or a worker process's relay) asks for, and a guest
//! waiting for input still ends at its deadline.
//!
//! The host's own stdin has one pump for the whole process, shared by
//! every task that inherits it, so that no abandoned read steals bytes
//! from the next task.

use std::future::Future;
use std::io::Read;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::oneshot;

use crate::mutex;

/// The most a pump reads at once.
pub(crate) const CHUNK: usize = 64 << 10;

/// A reader shared with its pump thread.
pub(crate) type SharedReader = Arc<Mutex<dyn Read + Send>>;

/// What one read gave: bytes (empty at the end), or the error.
pub(crate) type Chunk = std::io::Result<Vec<u8>>;

/// Where a chunk goes.
pub(crate) enum Reply {
    /// To a thread blocked in a channel select.
    Sync(crossbeam_channel::Sender<Chunk>),
    /// To an async reader.
    Async(oneshot::Sender<Chunk>),
}

/// A thread reading one chunk per request from a reader.
pub(crate) struct Pump {
    requests: crossbeam_channel::Sender<(usize, Reply)>,
}

impl Pump {
    /// Starts a pump over `reader`. The thread ends when the pump is
    /// dropped and its current read (if any) returns.
    pub(crate) fn spawn(reader: SharedReader) -> std::io::Result<Arc<Pump>> {
        let (requests, incoming) = crossbeam_channel::unbounded::<(usize, Reply)>();
        std::thread::Builder::new()
            .name("wasmproc-stdin-pump".into())
            .spawn(move || {
                for (max, reply) in incoming {
                    let mut buffer = vec![0u8; max.clamp(1, CHUNK)];
                    let chunk = {
                        let mut reader = mutex::lock(&reader);
                        read_retrying(&mut *reader, &mut buffer)
                    }
                    .map(|n| {
                        buffer.truncate(n);
                        buffer
                    });
                    // A requester that went away (its task ended) drops the
                    // chunk; reads are never made ahead, so at most this one
                    // is lost to a task that no longer wants it.
                    match reply {
                        Reply::Sync(to) => drop(to.send(chunk)),
                        Reply::Async(to) => drop(to.send(chunk)),
                    }
                }
            })?;
        Ok(Arc::new(Pump { requests }))
    }

    /// The pump over the host process's stdin, started on first use.
    pub(crate) fn host_stdin() -> std::io::Result<Arc<Pump>> {
        static HOST: OnceLock<Arc<Pump>> = OnceLock::new();
        if let Some(pump) = HOST.get() {
            return Ok(Arc::clone(pump));
        }
        let pump = Pump::spawn(Arc::new(Mutex::new(std::io::stdin())))?;
        Ok(Arc::clone(HOST.get_or_init(|| pump)))
    }

    /// Asks for up to `max` bytes; the answer goes to `reply`.
    pub(crate) fn request(&self, max: usize, reply: Reply) {
        // The thread only ends once every pump handle is gone.
        let _ = self.requests.send((max, reply));
    }
}

fn read_retrying(reader: &mut dyn Read, buffer: &mut [u8]) -> std::io::Result<usize> {
    loop {
        match reader.read(buffer) {
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// A guest's stdin over a pump: `AsyncRead`, one request in flight at a
/// time.
pub(crate) struct PumpReader {
    pump: Arc<Pump>,
    waiting: Option<oneshot::Receiver<Chunk>>,
    /// Bytes of the last chunk not yet handed out.
    leftover: Vec<u8>,
    ended: bool,
}

impl PumpReader {
    pub(crate) fn new(pump: Arc<Pump>) -> Self {
        PumpReader {
            pump,
            waiting: None,
            leftover: Vec::new(),
            ended: false,
        }
    }
}

impl AsyncRead for PumpReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        loop {
            if !this.leftover.is_empty() {
                let n = this.leftover.len().min(buf.remaining());
                buf.put_slice(&this.leftover[..n]);
                this.leftover.drain(..n);
                return Poll::Ready(Ok(()));
            }
            if this.ended || buf.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
            let waiting = this.waiting.get_or_insert_with(|| {
                let (reply, answer) = oneshot::channel();
                this.pump.request(buf.remaining(), Reply::Async(reply));
                answer
            });
            let answer = ready!(Pin::new(waiting).poll(cx));
            this.waiting = None;
            match answer {
                Ok(Ok(bytes)) if bytes.is_empty() => this.ended = true,
                Ok(Ok(bytes)) => this.leftover = bytes,
                Ok(Err(error)) => return Poll::Ready(Err(error)),
                // The pump thread is gone: nothing more will come.
                Err(_) => this.ended = true,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pump_reads_only_when_asked() {
        let source: SharedReader = Arc::new(Mutex::new(&b"hello world"[..]));
        let pump = Pump::spawn(Arc::clone(&source)).unwrap();
        let (reply, answer) = crossbeam_channel::bounded(1);
        pump.request(5, Reply::Sync(reply.clone()));
        assert_eq!(answer.recv().unwrap().unwrap(), b"hello");
        pump.request(100, Reply::Sync(reply.clone()));
        assert_eq!(answer.recv().unwrap().unwrap(), b" world");
        pump.request(100, Reply::Sync(reply));
        assert!(answer.recv().unwrap().unwrap().is_empty(), "the end");
    }
}
