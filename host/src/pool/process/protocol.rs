//! The framed, versioned protocol between a pool and its worker processes.
//!
//! Each message is a frame: a 4-byte little-endian length, then that many
//! bytes of postcard-encoded serde data. Frames are bounded; a frame that is
//! too large or does not decode ends that connection (and so that child),
//! never the parent. Guest output travels inside frames (`Output` while it
//! streams, `Done` when captured), never on the raw pipe.
//!
//! A conversation: `Hello` → `Started` (the child is a wasmproc worker) →
//! `Ready` (its module is loaded); then any number of `Run` (consecutive
//! ones may form a chunk that shares an instance), each answered by one
//! `Done`, with `Cancel`, `Input`/`InputEnd`/`InputFailed` → `InputTaken` (a
//! streamed stdin, flow-controlled), `Output` → `OutputTaken` (a streamed
//! stdout or stderr, flow-controlled) and `Share` → `ShareReply` (a queue, pipe or wait operation of
//! the task, carried out by the pool) in between.

use std::io::{Read, Write};

use serde::{Deserialize, Serialize};

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::error::Error;
use crate::module::Module;
use crate::outcome::Outcome;
use crate::runtime::RuntimeSettings;
use crate::share::{Grant, Granted, Grants, Remote, RemoteLink, SharedRegion, Window};
use crate::task::{Initializer, Output, RelayedOutput, Stdin, Task, TaskSpec};

/// Bumped on any change to the messages below; the handshake checks it.
pub(crate) const VERSION: u32 = 14;

/// The largest frame either side accepts: what a 4-byte length can say.
/// Every input, result and output of a task is capped at
/// `MAX_SIZE_LIMIT` (1 GiB), so a task's messages always fit; a length
/// past what the stream holds fails when the stream ends, without
/// allocating it up front.
const MAX_FRAME: usize = u32::MAX as usize;

/// The module a worker process loads.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum WireModule {
    /// The module's wasm.
    Wasm(#[serde(with = "serde_bytes")] Vec<u8>),
    /// The module file the pool loaded, and the module it holds (its
    /// wasm's hash): the worker loads it the same way, the cache knowing an
    /// unchanged file without reading it (a 100 MB module is not shipped),
    /// and refuses a file that is no longer that module.
    File {
        path: std::path::PathBuf,
        identity: [u8; 32],
    },
    /// A snapshot in the cache: the worker initializes `base` with `init`,
    /// which finds the snapshot there (the pool never ships it). Should
    /// the entry be gone, the worker runs the initializer itself.
    Snapshot {
        base: Box<WireModule>,
        init: Initializer,
    },
}

impl WireModule {
    /// How a worker process gets `module`.
    pub(crate) fn of(module: &Module) -> Result<WireModule, Error> {
        Ok(match module.origin() {
            Some(origin) if origin.cached => {
                // The base first: writing its entry back may evict others
                // under a small budget, and the snapshot's is the one the
                // worker needs most.
                let base = Box::new(WireModule::of(&origin.base)?);
                module.keep_snapshot_cached();
                WireModule::Snapshot {
                    base,
                    init: origin.init.clone(),
                }
            }
            // A path serde cannot carry (not UTF-8) sends the wasm instead.
            _ => match module
                .unread_source()
                .filter(|path| path.to_str().is_some())
            {
                Some(path) => WireModule::File {
                    path: path.to_owned(),
                    identity: *module.identity().as_bytes(),
                },
                None => WireModule::Wasm(module.wasm()?.to_vec()),
            },
        })
    }
}

/// From the pool to a worker process.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ToChild {
    /// The first message: what to load, and the protocol version.
    Hello {
        version: u32,
        module_name: String,
        module: WireModule,
        /// The pool's runtime settings, so that the worker's runtime
        /// matches it in every one (stack size, cache, ...).
        settings: RuntimeSettings,
    },
    /// Run one task; answered by `Done` with the same id. With
    /// `shares_with_next`, the task shares an instance with the task of
    /// the `Run` frame that follows (a map's chunk, sent whole in one
    /// write): the worker runs them as one chunk, answering each as it
    /// ends.
    Run {
        id: u64,
        task: WireTask,
        shares_with_next: bool,
    },
    /// Windows: a connection's socket, duplicated into the worker
    /// (`WSADuplicateSocketW`'s protocol information), for the `Run` frame
    /// that follows it (`handover`). On Unix the socket rides with the
    /// `Run` frame itself.
    Socket {
        #[serde(with = "serde_bytes")]
        protocol_info: Vec<u8>,
    },
    /// Cancel the task with this id, if it is still running.
    Cancel { id: u64 },
    /// The next bytes of task `id`'s streamed stdin.
    Input {
        id: u64,
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
    },
    /// The end of task `id`'s streamed stdin.
    InputEnd { id: u64 },
    /// Reading task `id`'s streamed stdin failed (a directory, say): its
    /// guest's next read fails as it would in a thread worker.
    InputFailed {
        id: u64,
        /// The OS's error number, when the error had one.
        os_code: Option<i32>,
        message: String,
    },
    /// The answer to task `id`'s `Share` operation `seq`.
    ShareReply {
        id: u64,
        seq: u64,
        reply: ShareReply,
    },
    /// `count` more of task `id`'s sends that went ahead are in their
    /// channels: credits back, one frame for a batch (written with the
    /// task's next reply, at `CREDIT_BATCH`, or once the task settles).
    Credits { id: u64, count: u32 },
    /// The pool wrote `bytes` of task `id`'s `stream` out: room for as
    /// many more (`task::OUTPUT_WINDOW` bytes may be out at once). With
    /// `broken`, it could not (the reader went away): the guest's later
    /// writes fail.
    OutputTaken {
        id: u64,
        stream: StreamName,
        bytes: u64,
        broken: bool,
    },
}

/// From a worker process to the pool.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ToParent {
    /// The answer to `Hello`, before the module loads: this program is a
    /// wasmproc worker (a program that forgot to call
    /// `run_worker_if_requested` never says it).
    Started { version: u32, pid: u32 },
    /// The module is loaded; tasks may come.
    Ready,
    /// The worker cannot serve (a version mismatch, a module that does not
    /// load); it exits after sending this.
    Refused { message: String },
    /// The outcome of the task `id`. With `retire`, the worker exits after
    /// this frame (a thread of it may be stuck in the OS on the task's
    /// behalf) and is replaced; tasks sent after `id` never started.
    Done {
        id: u64,
        outcome: Outcome,
        retire: bool,
        /// The last `Share` operation whose reply the guest took (0: none):
        /// a message received for a later one goes back to its channel.
        taken: u64,
    },
    /// Bytes task `id` wrote to a streamed stdout or stderr.
    Output {
        id: u64,
        stream: StreamName,
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
    },
    /// Task `id`'s guest took this many bytes of its streamed stdin: room
    /// for as many more.
    InputTaken { id: u64, bytes: u64 },
    /// Task `id`'s guest read `read` bytes from its connection's socket,
    /// and wrote `wrote` to it, since the last `Moved`: the server counts
    /// them and times the connection's silences by them.
    Moved { id: u64, read: u64, wrote: u64 },
    /// An operation on task `id`'s grants, numbered `seq` from 1; `taken`
    /// as in `Done`.
    Share {
        id: u64,
        seq: u64,
        taken: u64,
        op: ShareOp,
    },
}

/// An operation on a task's grants, which the pool holds. `grant` is the
/// grant's index among the task's names in order (`share::PIPE` for its
/// pipe); timeouts are in nanoseconds, negative for none; offsets are from
/// the region's start.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ShareOp {
    /// Answered by `Sent` when the message is in the channel. With
    /// `ahead`, the worker did not wait for the answer (a send that waits
    /// as long as it takes): it is answered by `Credits` once in its
    /// channel, or by `NotSent` when refused.
    Send {
        grant: u32,
        #[serde(with = "serde_bytes")]
        message: Vec<u8>,
        timeout: i64,
        ahead: bool,
    },
    Recv {
        grant: u32,
        timeout: i64,
    },
    /// Not answered.
    Close {
        grant: u32,
    },
    Wait {
        grant: u32,
        offset: u64,
        expected: u32,
        timeout: i64,
        lock: bool,
    },
    /// Not answered: an unlock must not wait a round trip.
    Notify {
        grant: u32,
        offset: u64,
        count: u32,
    },
    /// The task is ending and waits for the credits of its sends gone
    /// ahead: the pool writes each as it comes from now on (before, it
    /// holds them for a batch or for the task's next reply).
    Settle,
}

/// The answer to a [`ShareOp`], as the sharing imports' codes.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ShareReply {
    Sent(i32),
    /// A send that went ahead on `grant` was refused with `code` (a closed
    /// channel): the worker's later sends there fail at once.
    NotSent {
        grant: u32,
        code: i32,
    },
    Received(Result<Vec<u8>, i32>),
    Waited(i32),
}

/// What a task was granted, as it crosses the pipe: the names in order
/// (their positions are their indices), the pipe, and the lock-holder id
/// the pool gave it.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct WireGrants {
    pub(crate) named: Vec<(String, WireGrant)>,
    pub(crate) pipe: bool,
    pub(crate) holder: u32,
    /// How many sends the task may have ahead of their answers
    /// (`share_client::ahead_window`, the same number the pool uses).
    pub(crate) window: u32,
    /// The channels it sends on that were closed when it was handed over,
    /// by index (`PIPE` for the pipe).
    pub(crate) closed: Vec<u32>,
}

/// How many sends may travel ahead of their answers, at most.
pub(crate) const AHEAD: u32 = 256;

/// How many sends a task with `grants` may have ahead of their answers:
/// [`AHEAD`], or fewer when a channel it sends on holds fewer messages, so
/// that a producer on a small queue waits for room about when a thread
/// worker's would (and a close finds it waiting, as there, not told that
/// sends the pool then drops went through). The pool and the worker use
/// the same number (it crosses in the task's grants).
pub(crate) fn ahead_window(grants: &Grants) -> u32 {
    grants
        .sendable()
        .iter()
        .map(|(_, channel)| u32::try_from(channel.capacity()).unwrap_or(u32::MAX))
        .fold(AHEAD, u32::min)
        .max(1)
}

/// One grant on the wire.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum WireGrant {
    Channel {
        max_message: u64,
    },
    /// The worker maps the region's file itself.
    Window {
        path: std::path::PathBuf,
        region_len: u64,
        base: u64,
        len: u64,
    },
}

impl WireGrants {
    /// `grants` on the wire, for a task whose holder id is `holder`.
    pub(crate) fn from_grants(grants: &Grants, holder: u32) -> WireGrants {
        let named = grants
            .named
            .iter()
            .map(|(name, grant)| {
                let wire = match &grant.0 {
                    Granted::Channel(channel) => WireGrant::Channel {
                        max_message: channel.max_message() as u64,
                    },
                    Granted::RemoteChannel { max_message } => WireGrant::Channel {
                        max_message: *max_message as u64,
                    },
                    Granted::Window(window) => WireGrant::Window {
                        path: window.region.inner.path().to_owned(),
                        region_len: window.region.len() as u64,
                        base: window.base,
                        len: window.len,
                    },
                };
                (name.clone(), wire)
            })
            .collect();
        WireGrants {
            named,
            pipe: grants.pipe.is_some(),
            holder,
            window: ahead_window(grants),
            closed: grants
                .sendable()
                .into_iter()
                .filter(|(_, channel)| channel.is_closed())
                .map(|(index, _)| index)
                .collect(),
        }
    }

    /// The grants again, on the worker's side: regions mapped here, the
    /// rest reached through `to`.
    pub(crate) fn into_grants(self, to: Arc<dyn Remote>) -> Result<Grants, Error> {
        let mut named = BTreeMap::new();
        for (name, wire) in self.named {
            let granted = match wire {
                WireGrant::Channel { max_message } => Granted::RemoteChannel {
                    max_message: usize::try_from(max_message).unwrap_or(usize::MAX),
                },
                WireGrant::Window {
                    path,
                    region_len,
                    base,
                    len,
                } => {
                    let size = usize::try_from(region_len).unwrap_or(usize::MAX);
                    let region = SharedRegion::open(&path, size)?;
                    Granted::Window(Window { region, base, len })
                }
            };
            named.insert(name, Grant(granted));
        }
        Ok(Grants {
            named,
            pipe: None,
            remote: Some(RemoteLink {
                to,
                holder: self.holder,
                pipe: self.pipe,
            }),
        })
    }
}

/// Which output stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) enum StreamName {
    Stdout,
    Stderr,
}

/// A task's stdout or stderr as it crosses the pipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum WireOutput {
    Capture,
    Discard,
    /// Relayed with `Output` frames as the guest writes.
    Streamed,
}

/// A task as it crosses the pipe: its plain data (the same [`TaskSpec`] a
/// cluster carries), and how its host-side parts travel.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct WireTask {
    spec: TaskSpec,
    /// Whether stdin is relayed with `Input` frames as the guest reads (an
    /// inherited stdin or a reader; bytes travel in the spec).
    pub(crate) stdin_streamed: bool,
    pub(crate) stdout: WireOutput,
    pub(crate) stderr: WireOutput,
    pub(crate) grants: Option<WireGrants>,
    /// A server's connection, its socket handed over with the `Run` frame
    /// (`handover`): the guest's stdin and stdout are that socket.
    pub(crate) socket: Option<WireSocket>,
}

/// What kind of socket came with a `Run` frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum WireSocket {
    Tcp,
    Unix,
}

impl WireTask {
    /// The task in wire form: in-process stdin and outputs become streams
    /// that the pool relays.
    /// `holder` is the lock-holder id the pool gave a task with grants.
    pub(crate) fn from_task(task: &Task, holder: Option<u32>) -> WireTask {
        WireTask {
            spec: TaskSpec::from(task),
            stdin_streamed: matches!(task.stdin, Stdin::Inherit | Stdin::Reader(_)),
            stdout: wire_output(&task.stdout),
            stderr: wire_output(&task.stderr),
            grants: holder.map(|holder| WireGrants::from_grants(&task.grants, holder)),
            socket: None,
        }
    }

    /// The task again, on the worker's side: `stdin` and `streamed` make
    /// the relays of a streamed stdin and outputs (only those: most tasks
    /// have none, and this runs for every task).
    pub(crate) fn into_task(
        self,
        stdin: impl FnOnce() -> Stdin,
        streamed: impl Fn(StreamName) -> RelayedOutput,
    ) -> Task {
        let output = |wire: WireOutput| match wire {
            WireOutput::Capture => Output::Capture,
            WireOutput::Discard | WireOutput::Streamed => Output::Discard,
        };
        let relayed = |wire: WireOutput, stream: StreamName| {
            (wire == WireOutput::Streamed).then(|| streamed(stream))
        };
        let mut task = Task::from(self.spec)
            .stdout(output(self.stdout))
            .stderr(output(self.stderr));
        if self.stdin_streamed {
            task = task.stdin(stdin());
        }
        task.relayed = [
            relayed(self.stdout, StreamName::Stdout),
            relayed(self.stderr, StreamName::Stderr),
        ];
        task
    }

    /// Takes the task's grants off, to be made with `WireGrants::into_grants`.
    pub(crate) fn take_grants(&mut self) -> Option<WireGrants> {
        self.grants.take()
    }
}

fn wire_output(output: &Output) -> WireOutput {
    match output {
        Output::Capture => WireOutput::Capture,
        Output::Discard => WireOutput::Discard,
        Output::Inherit | Output::Writer(_) => WireOutput::Streamed,
    }
}

/// Writes one frame and flushes it.
pub(crate) fn write_frame<T: Serialize>(out: &mut impl Write, message: &T) -> std::io::Result<()> {
    write_frame_buffered(out, message)?;
    out.flush()
}

/// Writes one frame, leaving it in `out`'s buffer.
pub(crate) fn write_frame_buffered<T: Serialize>(
    out: &mut impl Write,
    message: &T,
) -> std::io::Result<()> {
    thread_local! {
        /// Where a frame is encoded: one buffer per thread, reused, so a
        /// stream of small frames allocates nothing.
        static ENCODED: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    ENCODED.with_borrow_mut(|reused| {
        let mut bytes = std::mem::take(reused);
        bytes.clear();
        let bytes = postcard::to_extend(message, bytes).map_err(std::io::Error::other)?;
        let written = write_encoded(out, &bytes);
        // A large message's buffer is not kept.
        if bytes.capacity() <= 1 << 20 {
            *reused = bytes;
        }
        written
    })
}

/// Writes one encoded frame's length and bytes.
fn write_encoded(out: &mut impl Write, bytes: &[u8]) -> std::io::Result<()> {
    if bytes.len() > MAX_FRAME {
        return Err(std::io::Error::other(format!(
            "a message of {} bytes is over the frame limit of {MAX_FRAME}",
            bytes.len()
        )));
    }
    let len = u32::try_from(bytes.len()).map_err(std::io::Error::other)?;
    out.write_all(&len.to_le_bytes())?;
    out.write_all(bytes)
}

/// Whether `buffered` bytes hold a whole frame: reading it needs no wait.
pub(crate) fn holds_frame(buffered: &[u8]) -> bool {
    match buffered.first_chunk::<4>() {
        Some(len) => buffered.len() - 4 >= u32::from_le_bytes(*len) as usize,
        None => false,
    }
}

/// Reads one frame; `Ok(None)` at a clean end of the stream.
pub(crate) fn read_frame<T: for<'de> Deserialize<'de>>(
    input: &mut impl Read,
) -> std::io::Result<Option<T>> {
    read_frame_with(input, &mut Vec::new())
}

/// Reads one frame into `bytes` (a buffer a reader keeps from frame to
/// frame, so a stream of small frames allocates nothing for them);
/// `Ok(None)` at a clean end of the stream.
pub(crate) fn read_frame_with<T: for<'de> Deserialize<'de>>(
    input: &mut impl Read,
    bytes: &mut Vec<u8>,
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
    // Grown as bytes arrive, so a corrupt length costs nothing.
    bytes.clear();
    if bytes.capacity() > 1 << 20 {
        *bytes = Vec::new();
    }
    bytes.reserve(len.min(1 << 20));
    input.take(len as u64).read_to_end(bytes)?;
    if bytes.len() < len {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!("a frame of {len} bytes ended after {}", bytes.len()),
        ));
    }
    postcard::from_bytes(bytes)
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
        // A length of 4 GiB with nothing behind it fails at the end of the
        // stream, without allocating 4 GiB first.
        let huge = (u32::MAX).to_le_bytes();
        assert!(read_frame::<ToChild>(&mut &huge[..]).is_err());
        let mut garbage = 3u32.to_le_bytes().to_vec();
        garbage.extend_from_slice(&[0xff, 0xff, 0xff]);
        assert!(read_frame::<ToChild>(&mut &garbage[..]).is_err());
        let truncated = 10u32.to_le_bytes();
        assert!(read_frame::<ToChild>(&mut &truncated[..]).is_err());
    }

    #[test]
    fn in_process_streams_cross_as_relays() {
        let writer: std::sync::Arc<std::sync::Mutex<dyn Write + Send>> =
            std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let task = Task::command()
            .stdin(Stdin::Inherit)
            .stdout(Output::Writer(writer))
            .stderr(Output::Discard);
        let wire = WireTask::from_task(&task, None);
        assert!(wire.stdin_streamed);
        assert_eq!(wire.stdout, WireOutput::Streamed);
        assert_eq!(wire.stderr, WireOutput::Discard);
        let fine = Task::call("square", &3)
            .unwrap()
            .stdin(Stdin::Bytes((&b"x"[..]).into()));
        let back = WireTask::from_task(&fine, None)
            .into_task(|| Stdin::Empty, |_| unreachable!("nothing is streamed"));
        assert_eq!(&*back.input, b"3");
        assert!(matches!(back.stdin, Stdin::Bytes(_)));
    }
}
