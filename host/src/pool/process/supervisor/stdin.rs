//! The relay of a running task's streamed stdin to its worker process,
//! flow-controlled.

use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};

use super::spawn::Worker;
use super::{Ended, gone};
use crate::error::{Error, ErrorKind};
use crate::pool::process::protocol::ToChild;
use crate::store::{CHUNK, Chunk, Pump, Reply};
use crate::task::{Stdin, Task};

/// How far a relayed stdin may run ahead of what the guest has taken.
const STDIN_WINDOW: u64 = 1 << 20;

/// The relay of the running task's streamed stdin: chunks from its source
/// (the host's stdin, or the task's reader) go to the worker as `Input`
/// frames, no more than [`STDIN_WINDOW`] ahead of what the guest has taken,
/// and the source's end as `InputEnd` (a read error as `InputFailed`).
/// Nothing is read before the guest
/// could want it.
pub(super) struct StdinRelay {
    /// `None` when the task's stdin is not streamed, or has ended.
    source: Option<Arc<Pump>>,
    /// The channel of the source's chunks (made only with a source: most
    /// tasks have none, and the relay is made for every task).
    channel: Option<(Sender<Chunk>, Receiver<Chunk>)>,
    asked: bool,
    ahead: u64,
}

impl StdinRelay {
    /// The relay for the running task (`None`: none is), if its stdin is
    /// streamed.
    pub(super) fn start(running: Option<&Task>) -> Result<Self, Ended> {
        let source = match running.map(|task| &task.stdin) {
            Some(Stdin::Inherit) => Some(Pump::host_stdin()),
            Some(Stdin::Reader(reader)) => Some(Pump::spawn(Arc::clone(reader))),
            _ => None,
        }
        .transpose()
        .map_err(|error| {
            Error::new(
                ErrorKind::Setup,
                format!("cannot start the thread that relays the task's stdin: {error}"),
            )
            .caused_by(error)
        })?;
        let channel = source.as_ref().map(|_| crossbeam_channel::bounded(1));
        Ok(StdinRelay {
            source,
            channel,
            asked: false,
            ahead: 0,
        })
    }

    /// Asks the source for the next chunk, when the window has room.
    pub(super) fn ask(&mut self) {
        if let (Some(source), Some((replies, _))) = (&self.source, &self.channel)
            && !self.asked
            && self.ahead < STDIN_WINDOW
        {
            source.request(CHUNK, Reply::Sync(replies.clone()));
            self.asked = true;
        }
    }

    /// Whether a stdin is being relayed.
    pub(super) fn active(&self) -> bool {
        self.source.is_some()
    }

    /// Where the source's chunks arrive (never, when there is no source).
    pub(super) fn chunks(&self) -> Receiver<Chunk> {
        match (&self.source, &self.channel) {
            (Some(_), Some((_, chunks))) => chunks.clone(),
            _ => crossbeam_channel::never(),
        }
    }

    /// Sends a chunk on to the worker; the end or a read error ends the
    /// task's stdin.
    pub(super) fn forward(
        &mut self,
        worker: &mut Worker,
        id: u64,
        chunk: Result<Chunk, crossbeam_channel::RecvError>,
    ) -> Result<(), Ended> {
        self.asked = false;
        let message = match chunk {
            Ok(Ok(bytes)) if !bytes.is_empty() => {
                self.ahead += bytes.len() as u64;
                ToChild::Input { id, bytes }
            }
            Ok(Err(error)) => {
                self.source = None;
                ToChild::InputFailed {
                    id,
                    os_code: error.raw_os_error(),
                    message: error.to_string(),
                }
            }
            _ => {
                self.source = None;
                ToChild::InputEnd { id }
            }
        };
        worker
            .send(&message)
            .map_err(|e| gone(format!("the worker process stopped taking input ({e})")))
    }

    /// The guest took `bytes`: room for as many more.
    pub(super) fn taken(&mut self, bytes: u64) {
        self.ahead = self.ahead.saturating_sub(bytes);
    }
}
