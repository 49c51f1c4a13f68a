//! The framed, versioned protocol between a pool and its worker processes.
//!
//! Each message is a frame: a 4-byte little-endian length, then that many
//! bytes of postcard-encoded serde data. Frames are bounded; a frame that is
//! too large or does not decode ends that connection (and so that child),
//! never the parent. Guest output travels inside `Done` frames, never on the
//! raw pipe.

use std::io::{Read, Write};

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind};
use crate::limits::Limits;
use crate::outcome::Outcome;
use crate::runtime::RuntimeSettings;
use crate::task::{Capabilities, Entry, Output, Stdin, Task};

/// Bumped on any change to the messages below; the handshake checks it.
pub(crate) const VERSION: u32 = 2;

/// The largest frame either side accepts: room for the largest argument
/// (`DEFAULT_MAX_ARGS`, 64 MiB) and two captured streams, with margin.
const MAX_FRAME: usize = 512 << 20;

/// From the pool to a worker process.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ToChild {
    /// The first message: what to load, and the protocol version.
    Hello {
        version: u32,
        module_name: String,
        module: Vec<u8>,
        /// The pool's runtime settings, so that the worker's runtime
        /// matches it in every one (stack size, cache, ...).
        settings: RuntimeSettings,
    },
    /// Run one task; answered by `Done` with the same id.
    Run { id: u64, task: WireTask },
    /// Cancel the task with this id, if it is still running.
    Cancel { id: u64 },
}

/// From a worker process to the pool.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ToParent {
    /// The module is loaded; tasks may come.
    Ready { version: u32, pid: u32 },
    /// The worker cannot serve (a version mismatch, a module that does not
    /// load); it exits after sending this.
    Refused { message: String },
    /// The outcome of the task `id`.
    Done { id: u64, outcome: Outcome },
}

/// A task as it crosses the pipe: everything but in-process handles.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct WireTask {
    entry: Entry,
    input: Vec<u8>,
    argv: Vec<String>,
    stdin: Option<Vec<u8>>,
    discard_stdout: bool,
    discard_stderr: bool,
    caps: Capabilities,
    limits: Option<Limits>,
    rejected: Option<String>,
}

impl WireTask {
    /// The task in wire form; a `BadInvocation` error names what cannot
    /// cross a process boundary.
    pub(crate) fn from_task(task: &Task) -> Result<WireTask, Error> {
        let stdin = match &task.stdin {
            Stdin::Empty => None,
            Stdin::Bytes(bytes) => Some(bytes.to_vec()),
            Stdin::Inherit => {
                return Err(Error::new(
                    ErrorKind::BadInvocation,
                    "a worker process cannot read the host's stdin: give the task \
                     Stdin::Bytes, or use thread isolation",
                ));
            }
        };
        let discard = |output: &Output, which: &str| match output {
            Output::Capture => Ok(false),
            Output::Discard => Ok(true),
            Output::Inherit | Output::Writer(_) => Err(Error::new(
                ErrorKind::BadInvocation,
                format!(
                    "a worker process captures the guest's {which}: use Output::Capture or \
                     Output::Discard, or thread isolation"
                ),
            )),
        };
        Ok(WireTask {
            entry: task.entry.clone(),
            input: task.input.to_vec(),
            argv: task.argv.clone(),
            stdin,
            discard_stdout: discard(&task.stdout, "stdout")?,
            discard_stderr: discard(&task.stderr, "stderr")?,
            caps: task.caps.clone(),
            limits: task.limits.clone(),
            rejected: task.rejected.clone(),
        })
    }

    /// The task again, on the worker's side.
    pub(crate) fn into_task(self) -> Task {
        let output = |discard: bool| {
            if discard {
                Output::Discard
            } else {
                Output::Capture
            }
        };
        let mut task = Task::new(self.entry, self.input)
            .args(self.argv)
            .capabilities(self.caps)
            .stdin(
                self.stdin
                    .map_or(Stdin::Empty, |bytes| Stdin::Bytes(bytes.into())),
            )
            .stdout(output(self.discard_stdout))
            .stderr(output(self.discard_stderr));
        task.limits = self.limits;
        task.rejected = self.rejected;
        task
    }
}

/// Writes one frame.
pub(crate) fn write_frame<T: Serialize>(out: &mut impl Write, message: &T) -> std::io::Result<()> {
    let bytes = postcard::to_stdvec(message).map_err(std::io::Error::other)?;
    if bytes.len() > MAX_FRAME {
        return Err(std::io::Error::other(format!(
            "a message of {} bytes is over the frame limit of {MAX_FRAME}",
            bytes.len()
        )));
    }
    let len = u32::try_from(bytes.len()).map_err(std::io::Error::other)?;
    out.write_all(&len.to_le_bytes())?;
    out.write_all(&bytes)?;
    out.flush()
}

/// Reads one frame; `Ok(None)` at a clean end of the stream.
pub(crate) fn read_frame<T: for<'de> Deserialize<'de>>(
    input: &mut impl Read,
) -> std::io::Result<Option<T>> {
    let mut len = [0u8; 4];
    match input.read_exact(&mut len) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(error) => return Err(error),
    }
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(std::io::Error::other(format!(
            "a frame of {len} bytes is over the limit of {MAX_FRAME}: the stream is corrupt"
        )));
    }
    let mut bytes = vec![0u8; len];
    input.read_exact(&mut bytes)?;
    postcard::from_bytes(&bytes)
        .map(Some)
        .map_err(|error| std::io::Error::other(format!("a malformed frame: {error}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let mut pipe = Vec::new();
        write_frame(&mut pipe, &ToChild::Cancel { id: 7 }).unwrap();
        write_frame(
            &mut pipe,
            &ToParent::Refused {
                message: "no".into(),
            },
        )
        .unwrap();
        let mut reader = &pipe[..];
        assert!(matches!(
            read_frame::<ToChild>(&mut reader).unwrap(),
            Some(ToChild::Cancel { id: 7 })
        ));
        assert!(matches!(
            read_frame::<ToParent>(&mut reader).unwrap(),
            Some(ToParent::Refused { .. })
        ));
        assert!(
            read_frame::<ToParent>(&mut reader).unwrap().is_none(),
            "a clean end"
        );
    }

    #[test]
    fn oversized_and_malformed_frames_are_errors() {
        let huge = (u32::MAX).to_le_bytes();
        assert!(read_frame::<ToChild>(&mut &huge[..]).is_err());
        let mut garbage = 3u32.to_le_bytes().to_vec();
        garbage.extend_from_slice(&[0xff, 0xff, 0xff]);
        assert!(read_frame::<ToChild>(&mut &garbage[..]).is_err());
        let truncated = 10u32.to_le_bytes();
        assert!(read_frame::<ToChild>(&mut &truncated[..]).is_err());
    }

    #[test]
    fn in_process_handles_do_not_cross() {
        let inherit = Task::command().stdin(Stdin::Inherit);
        assert!(
            WireTask::from_task(&inherit)
                .unwrap_err()
                .message()
                .contains("stdin")
        );
        let writer: std::sync::Arc<std::sync::Mutex<dyn Write + Send>> =
            std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        assert!(WireTask::from_task(&Task::command().stdout(Output::Writer(writer))).is_err());
        let fine = Task::call("square", &3)
            .unwrap()
            .stdin(Stdin::Bytes((&b"x"[..]).into()));
        let back = WireTask::from_task(&fine).unwrap().into_task();
        assert_eq!(&*back.input, b"3");
    }
}
