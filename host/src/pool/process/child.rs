//! The worker side: a process that loads one module and runs the tasks
//! its pool sends, one at a time, each in a fresh instance.
//!
//! Two threads: the main one runs tasks and writes their frames; a reader
//! takes the pool's frames as they come, so that a `Cancel` or a stdin
//! chunk reaches a running task, and a closed pipe ends the process even
//! mid-task.

use std::collections::{HashMap, HashSet};
use std::io::{BufReader, Read, Write};
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use super::handover::inbox::{Inbox, Received};
use super::protocol::{
    StreamName, ToChild, ToParent, VERSION, WireGrants, WireModule, read_frame, read_frame_with,
    write_frame_buffered,
};
use super::share_client::{Board, FrameOut, Settled, TaskLink};
use crate::cache::Identity;
use crate::cancel::CancelToken;
use crate::engine::EngineSettings;
use crate::module::Module;
use crate::mutex::Mutex;
use crate::outcome::Outcome;
use crate::run::{run_chunk_each, take_abandoned_host_call};
use crate::runtime::{Runtime, RuntimeSettings};
use crate::share::Remote;
use crate::status::ExitStatus;
use crate::task::{
    Credits, DirectSocket, Meter, OUTPUT_WINDOW, RelayedOutput, Socket, Stdin, Task,
};

/// The frames to the pool, shared by the task loop and the streams it
/// relays (stdin credits, streamed output, sharing operations).
///
/// A frame written now (`send`) goes out on the caller's thread, in one
/// write with whatever `send_soon` or `send_with_next` left before it.
/// `send_soon` only appends to `pending`; a flusher thread writes the
/// batch outside that lock, so that a producer keeps appending while the
/// last batch crosses the pipe (one write for many frames, and no wait for
/// the pipe). `send_with_next` appends without waking the flusher: the
/// frame goes with the next write, the task's `Done` at the latest.
#[derive(Clone)]
struct ToPool {
    pipe: Arc<PoolPipe>,
    /// Asks the flusher thread to write what `send_soon` left.
    flush: Sender<()>,
}

struct PoolPipe {
    /// Frames `send_soon` and `send_with_next` encoded, not yet written.
    pending: Mutex<Pending>,
    /// The pipe, held while bytes are written, so frames keep their order.
    /// The process's stdout itself, not `std::io::Stdout`, which would
    /// split binary frames at their newline bytes.
    out: Mutex<std::fs::File>,
}

impl PoolPipe {
    /// Writes what is pending, then `frame`, if any, in one write.
    fn write_pending(&self, frame: Option<&ToParent>) -> std::io::Result<()> {
        let mut out = self.out.lock();
        let mut bytes = {
            let mut pending = self.pending.lock();
            pending.flush_asked = false;
            std::mem::take(&mut pending.bytes)
        };
        if let Some(frame) = frame {
            write_frame_buffered(&mut bytes, frame)?;
        }
        if bytes.is_empty() {
            return Ok(());
        }
        let written = out.write_all(&bytes);
        drop(out);
        // The buffer back for the next batch, unless one was started.
        bytes.clear();
        let mut pending = self.pending.lock();
        if pending.bytes.is_empty() && pending.bytes.capacity() < bytes.capacity() {
            pending.bytes = bytes;
        }
        written
    }
}

/// Encoded frames waiting for a write.
#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
    /// Whether the flusher was asked to write them (a `send_soon` frame is
    /// among them).
    flush_asked: bool,
}

/// The process's stdout, the pipe to the pool, as a plain file.
fn raw_stdout() -> std::io::Result<std::fs::File> {
    #[cfg(unix)]
    let owned = std::os::fd::AsFd::as_fd(&std::io::stdout()).try_clone_to_owned()?;
    #[cfg(windows)]
    let owned =
        std::os::windows::io::AsHandle::as_handle(&std::io::stdout()).try_clone_to_owned()?;
    Ok(std::fs::File::from(owned))
}

impl ToPool {
    /// The pipe to the pool, with a thread that writes what `send_soon`
    /// leaves pending.
    fn new() -> std::io::Result<ToPool> {
        let pipe = Arc::new(PoolPipe {
            pending: Mutex::new(Pending::default()),
            out: Mutex::new(raw_stdout()?),
        });
        let (flush, flushes) = crossbeam_channel::bounded::<()>(1);
        let flushed = Arc::clone(&pipe);
        // Should the thread not start, its channel is gone with it, and
        // `send_soon` writes at once.
        let _ = std::thread::Builder::new()
            .name("wasmproc-worker-flusher".into())
            .spawn(move || {
                for () in flushes {
                    let _ = flushed.write_pending(None);
                }
            });
        Ok(ToPool { pipe, flush })
    }

    fn send(&self, message: &ToParent) -> std::io::Result<()> {
        self.pipe.write_pending(Some(message))
    }

    /// Adds `frame` to the next write, whenever that comes (the task's
    /// `Done` at the latest), waking nobody: for a report that may wait.
    fn send_with_next(&self, frame: &ToParent) -> std::io::Result<()> {
        write_frame_buffered(&mut self.pipe.pending.lock().bytes, frame)
    }
}

impl FrameOut for ToPool {
    fn send(&self, frame: &ToParent) -> std::io::Result<()> {
        ToPool::send(self, frame)
    }

    fn send_soon(&self, frame: &ToParent) -> std::io::Result<()> {
        let first = {
            let mut pending = self.pipe.pending.lock();
            write_frame_buffered(&mut pending.bytes, frame)?;
            !std::mem::replace(&mut pending.flush_asked, true)
        };
        // The first of a batch wakes the flusher; the frames appended
        // while it writes go with the next batch.
        if first
            && let Err(crossbeam_channel::TrySendError::Disconnected(())) = self.flush.try_send(())
        {
            self.pipe.write_pending(None)?;
        }
        Ok(())
    }
}

/// The task running now, cancellations of tasks not started yet, and the
/// stdin channels of tasks with a streamed stdin.
#[derive(Default)]
struct Current {
    /// The tasks running now (a chunk's that have not ended yet) and
    /// their canceller.
    running: Option<(Vec<u64>, CancelToken)>,
    cancelled: HashSet<u64>,
    inputs: HashMap<u64, Sender<std::io::Result<Vec<u8>>>>,
    /// The sharing operations in flight of tasks with grants.
    boards: HashMap<u64, Arc<Board>>,
    /// The credits of the running task's streamed outputs.
    outputs: HashMap<(u64, StreamName), Arc<Credits>>,
}

/// Serves the pool on stdin and stdout until stdin closes; returns the
/// process's exit code.
///
/// When the parent goes away (even killed), stdin closes, the reader sees
/// the end and the process exits at once: no worker outlives its pool.
pub(crate) fn worker_main() -> i32 {
    let (stdin, received) = Inbox::stdin();
    let mut input = BufReader::new(stdin);
    let Ok(to_pool) = ToPool::new() else {
        return 2;
    };

    let (module_name, module, settings) = match read_frame::<ToChild>(&mut input) {
        Ok(Some(ToChild::Hello {
            version,
            module_name,
            module,
            settings,
        })) if version == VERSION => (module_name, module, settings),
        Ok(Some(ToChild::Hello { version, .. })) => {
            let message = format!("protocol version {version}, but this worker speaks {VERSION}");
            let _ = to_pool.send(&ToParent::Refused { message });
            return 2;
        }
        _ => return 2,
    };
    let started = ToParent::Started {
        version: VERSION,
        pid: std::process::id(),
    };
    if to_pool.send(&started).is_err() {
        return 2;
    }
    if let Err(message) = start_thread_pool() {
        let _ = to_pool.send(&ToParent::Refused { message });
        return 2;
    }
    // The pool's settings, except the instance pool: this process runs one
    // task at a time.
    let settings = RuntimeSettings {
        engine: EngineSettings {
            max_instances: 2,
            ..settings.engine
        },
        ..settings
    };
    let loaded =
        Runtime::with_settings(settings).and_then(|runtime| load(&runtime, &module_name, module));
    let module = match loaded {
        Ok(module) => module,
        Err(error) => {
            let message = error.to_string();
            let _ = to_pool.send(&ToParent::Refused { message });
            return 2;
        }
    };
    if to_pool.send(&ToParent::Ready).is_err() {
        return 2;
    }

    let current: Arc<Mutex<Current>> = Arc::default();
    let (tasks, queue) = crossbeam_channel::unbounded();
    let reader_current = Arc::clone(&current);
    let reader = std::thread::Builder::new()
        .name("wasmproc-worker-reader".into())
        .spawn(move || read_frames(&mut input, &received, &reader_current, &tasks));
    if reader.is_err() {
        return 2;
    }

    let worker = Serving {
        module: &module,
        current: &current,
        to_pool: &to_pool,
        queue: &queue,
    };
    // A chunk's tasks come together, in one write: gathered until its last.
    let mut chunk = Vec::new();
    for incoming in &queue {
        let goes_on = incoming.shares_with_next;
        chunk.push(incoming);
        if goes_on {
            continue;
        }
        let chunk = std::mem::take(&mut chunk);
        let go_on = if chunk.len() > 1 && chunk.iter().all(|task| task.task.grants.is_none()) {
            worker.run_chunk(chunk)
        } else {
            // Tasks with grants each have their own sharing link, so they
            // never share an instance anyway.
            chunk.into_iter().all(|incoming| worker.run_alone(incoming))
        };
        if !go_on {
            return 0;
        }
    }
    0
}

/// What the task loop serves tasks with.
struct Serving<'w> {
    module: &'w Module,
    current: &'w Mutex<Current>,
    to_pool: &'w ToPool,
    queue: &'w Receiver<Incoming>,
}

impl Serving<'_> {
    /// Runs one task in a fresh instance and answers it; whether this
    /// worker goes on serving.
    fn run_alone(&self, incoming: Incoming) -> bool {
        let token = CancelToken::new();
        let (id, task, grants) = self.prepare(incoming);
        self.start(&[id], &token);
        let (outcome, taken) = match grants {
            None => (self.module.run_with(&task, &token), 0),
            Some(grants) => run_sharing(
                self.module,
                task,
                grants,
                id,
                self.to_pool,
                self.current,
                &token,
            ),
        };
        self.answer(id, outcome, taken, false)
    }

    /// Runs a map's chunk as a thread worker does (consecutive typed tasks
    /// in one instance), answering each task as it ends, so that the pool
    /// starts the next one's clock then; whether this worker goes on.
    fn run_chunk(&self, chunk: Vec<Incoming>) -> bool {
        let token = CancelToken::new();
        let (ids, tasks): (Vec<u64>, Vec<Task>) = chunk
            .into_iter()
            .map(|incoming| {
                let (id, task, _) = self.prepare(incoming);
                (id, task)
            })
            .unzip();
        self.start(&ids, &token);
        let mut ended = 0;
        let mut go_on = true;
        run_chunk_each(self.module, &tasks, &token, |outcome| {
            let id = ids[ended];
            ended += 1;
            go_on = self.answer(id, outcome, 0, ended < ids.len());
            if go_on {
                ControlFlow::Continue(())
            } else {
                ControlFlow::Break(())
            }
        });
        go_on
    }

    /// The task in the form the run layer takes, with its relays, and
    /// its grants to make (they need the task's sharing link).
    fn prepare(&self, incoming: Incoming) -> (u64, Task, Option<WireGrants>) {
        let Incoming {
            id,
            mut task,
            stdin,
            socket,
            ..
        } = incoming;
        let grants = task.take_grants();
        let mut task = task.into_task(
            || {
                stdin.map_or(Stdin::Empty, |chunks| {
                    Stdin::reader(InputRelay::new(id, chunks, self.to_pool.clone()))
                })
            },
            |stream| {
                let credits = Credits::new(OUTPUT_WINDOW);
                self.current
                    .lock()
                    .outputs
                    .insert((id, stream), Arc::clone(&credits));
                relayed_output(id, stream, credits, self.to_pool.clone())
            },
        );
        // A server's connection: the guest's stdin and stdout are its
        // socket, read and written by the store as in a thread worker.
        if let Some(socket) = socket {
            task.direct = Some(DirectSocket {
                socket: Arc::new(std::sync::Mutex::new(Some(socket))),
                meter: Arc::new(SocketMeter::new(id, self.to_pool.clone())),
            });
        }
        (id, task, grants)
    }

    /// Marks tasks `ids` running under `token`, cancelled at once if the
    /// pool cancelled one of them before it started (the tasks of a chunk
    /// share their job's canceller in the pool).
    fn start(&self, ids: &[u64], token: &CancelToken) {
        let mut current = self.current.lock();
        let mut cancelled = false;
        for id in ids {
            cancelled |= current.cancelled.remove(id);
        }
        if cancelled {
            token.cancel();
        }
        current.running = Some((ids.to_vec(), token.clone()));
    }

    /// Sends task `id`'s `Done` (`more`: other tasks of its chunk follow);
    /// whether this worker goes on serving.
    fn answer(&self, id: u64, outcome: Outcome, taken: u64, more: bool) -> bool {
        {
            let mut current = self.current.lock();
            if let Some((running, _)) = &mut current.running {
                running.retain(|running| *running != id);
            }
            current.inputs.remove(&id);
            current.boards.remove(&id);
            current.outputs.retain(|(task, _), _| *task != id);
        }
        // A task that ended while the guest waited in a host call may have
        // left a thread blocked in the OS (opening a FIFO, say): this
        // process then retires, and the stuck thread goes with it.
        let retire = take_abandoned_host_call();
        let done = ToParent::Done {
            id,
            outcome,
            retire,
            taken,
        };
        // With the next task already here, the outcome goes by the
        // flusher, which writes the outcomes that pile up meanwhile in one
        // write: one wake-up of the pool for several tiny tasks instead of
        // one each. It writes whether or not the next task ends, so an
        // outcome never waits behind a long or stuck task. The last one
        // before this process waits for tasks goes at once.
        let sent = if retire || (!more && self.queue.is_empty()) {
            self.to_pool.send(&done)
        } else {
            self.to_pool.send_soon(&done)
        };
        sent.is_ok() && !retire
    }
}

/// Runs a task with grants: its regions mapped here, its other operations
/// relayed to the pool. Returns the outcome and the last operation whose
/// answer the guest took.
fn run_sharing(
    module: &Module,
    mut task: Task,
    grants: WireGrants,
    id: u64,
    to_pool: &ToPool,
    current: &Mutex<Current>,
    token: &CancelToken,
) -> (Outcome, u64) {
    let started = Instant::now();
    let board = Board::new(grants.window, grants.closed.iter().copied());
    current.lock().boards.insert(id, Arc::clone(&board));
    let link = Arc::new(TaskLink::new(
        id,
        Arc::new(to_pool.clone()),
        Arc::clone(&board),
    ));
    match grants.into_grants(Arc::clone(&link) as Arc<dyn Remote>) {
        Ok(grants) => task.grants = grants,
        Err(error) => return (Outcome::from(error), 0),
    }
    let mut outcome = module.run_with(&task, token);
    let timeout = task.get_limits().and_then(|limits| limits.timeout);
    let deadline = timeout.and_then(|timeout| started.checked_add(timeout));
    // A guest whose last sends still wait for room when its time is up
    // ends as it would have in a thread worker, stopped inside a send:
    // whatever it did after that send (exited with its own code, trapped)
    // never happened there.
    let stopped = match link.settle(deadline, token) {
        Settled::Sent => None,
        Settled::TimedOut => Some((
            ExitStatus::TimedOut,
            format!(
                "the task's time limit of {} passed while its last sends waited for room",
                humantime::format_duration(timeout.unwrap_or_default())
            ),
        )),
        Settled::Cancelled => Some((
            ExitStatus::Cancelled,
            "the task was cancelled while its last sends waited for room".to_owned(),
        )),
    };
    if let Some((status, message)) = stopped
        && !matches!(outcome.status, ExitStatus::TimedOut | ExitStatus::Cancelled)
    {
        let duration = outcome.duration;
        outcome = Outcome::failed(status, message);
        outcome.duration = duration;
    }
    (outcome, link.taken())
}

/// A task as the reader hands it to the task loop, with its stdin's
/// chunks when they are streamed, and the socket that came with it.
struct Incoming {
    id: u64,
    task: super::protocol::WireTask,
    stdin: Option<Receiver<std::io::Result<Vec<u8>>>>,
    socket: Option<Socket>,
    /// It shares an instance with the next task (a map's chunk).
    shares_with_next: bool,
}

/// Takes the pool's frames until the pipe closes, then exits the process.
fn read_frames(
    input: &mut impl Read,
    received: &Received,
    current: &Mutex<Current>,
    tasks: &Sender<Incoming>,
) {
    let mut frame = Vec::new();
    loop {
        match read_frame_with::<ToChild>(input, &mut frame) {
            Ok(Some(ToChild::Run {
                id,
                task,
                shares_with_next,
            })) => {
                // Its socket came with the frame's first byte, so it is
                // here already; without it the pool and this worker
                // disagree, and the worker ends (the task fails as lost).
                let socket = match task.socket {
                    Some(kind) => match received.take(kind) {
                        Some(socket) => Some(socket),
                        None => break,
                    },
                    None => None,
                };
                let stdin = task.stdin_streamed.then(|| {
                    // Unbounded: the pool sends no more than its window
                    // beyond what the guest has taken.
                    let (chunks, receiver) = crossbeam_channel::unbounded();
                    current.lock().inputs.insert(id, chunks);
                    receiver
                });
                let incoming = Incoming {
                    id,
                    task,
                    stdin,
                    socket,
                    shares_with_next,
                };
                if tasks.send(incoming).is_err() {
                    break;
                }
            }
            // Windows: the socket for the `Run` frame that follows. A
            // socket that cannot be made ends the worker, as a missing one
            // does (its task fails as lost); on Unix none comes this way.
            Ok(Some(ToChild::Socket { protocol_info })) => {
                #[cfg(windows)]
                if let Err(error) = received.arrived(&protocol_info) {
                    eprintln!("wasmproc worker: {error}");
                    break;
                }
                #[cfg(unix)]
                {
                    let _ = protocol_info;
                    break;
                }
            }
            Ok(Some(ToChild::Cancel { id })) => {
                let mut current = current.lock();
                match &current.running {
                    Some((running, token)) if running.contains(&id) => token.cancel(),
                    // Not started yet (or already done): it must not start.
                    _ => {
                        current.cancelled.insert(id);
                    }
                }
            }
            Ok(Some(ToChild::Input { id, bytes })) => {
                if let Some(chunks) = current.lock().inputs.get(&id) {
                    let _ = chunks.send(Ok(bytes));
                }
            }
            Ok(Some(ToChild::InputEnd { id })) => {
                current.lock().inputs.remove(&id);
            }
            Ok(Some(ToChild::InputFailed {
                id,
                os_code,
                message,
            })) => {
                if let Some(chunks) = current.lock().inputs.remove(&id) {
                    let error = match os_code {
                        Some(code) => std::io::Error::from_raw_os_error(code),
                        None => std::io::Error::other(message),
                    };
                    let _ = chunks.send(Err(error));
                }
            }
            Ok(Some(ToChild::ShareReply { id, seq, reply })) => {
                let board = current.lock().boards.get(&id).cloned();
                if let Some(board) = board {
                    board.answer(seq, reply);
                }
            }
            Ok(Some(ToChild::OutputTaken {
                id,
                stream,
                bytes,
                broken,
            })) => {
                if let Some(credits) = current.lock().outputs.get(&(id, stream)) {
                    if broken {
                        credits.break_off();
                    }
                    credits.give(bytes);
                }
            }
            Ok(Some(ToChild::Credits { id, count })) => {
                let board = current.lock().boards.get(&id).cloned();
                if let Some(board) = board {
                    board.credit(count);
                }
            }
            // The parent is gone, or spoke nonsense: stop now.
            Ok(Some(ToChild::Hello { .. })) | Ok(None) | Err(_) => break,
        }
    }
    std::process::exit(0);
}

/// A task's streamed stdin: the chunks the pool relays, with a credit back
/// for every byte the guest takes.
struct InputRelay {
    id: u64,
    chunks: Receiver<std::io::Result<Vec<u8>>>,
    leftover: Vec<u8>,
    to_pool: ToPool,
}

impl InputRelay {
    fn new(id: u64, chunks: Receiver<std::io::Result<Vec<u8>>>, to_pool: ToPool) -> Self {
        InputRelay {
            id,
            chunks,
            leftover: Vec::new(),
            to_pool,
        }
    }
}

impl Read for InputRelay {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.leftover.is_empty() {
            match self.chunks.recv() {
                Ok(chunk) => self.leftover = chunk?,
                // `InputEnd`, or the task is over.
                Err(_) => return Ok(0),
            }
        }
        let n = self.leftover.len().min(buf.len());
        buf[..n].copy_from_slice(&self.leftover[..n]);
        self.leftover.drain(..n);
        let taken = ToParent::InputTaken {
            id: self.id,
            bytes: n as u64,
        };
        self.to_pool.send(&taken)?;
        Ok(n)
    }
}

/// Counts a handed-over connection's bytes for the server, which times
/// its silences by them (the first-byte and idle timeouts) and logs them.
///
/// A move after a quiet spell of [`MOVED_REPORT_GAP`] is reported at once,
/// on the guest's thread, so the count is the pool's before the guest does
/// anything else: the first byte is always known to the server as it
/// moves. Moves within that gap of the last report go with the next frame
/// written (the task's `Done` at the latest) instead of a write and a
/// wake-up of the server each: a short connection (a request, an answer)
/// then costs one report, not one per read and write. So the server's
/// last move of a connection is at most the gap earlier than the true one,
/// and an idle timeout can strike at most that much early.
struct SocketMeter {
    id: u64,
    to_pool: ToPool,
    /// When the last report was written at once.
    reported: Mutex<Option<Instant>>,
}

impl SocketMeter {
    fn new(id: u64, to_pool: ToPool) -> SocketMeter {
        SocketMeter {
            id,
            to_pool,
            reported: Mutex::new(None),
        }
    }

    fn moved(&self, read: usize, wrote: usize) {
        // Nothing moved: nothing to report, and no report window to start.
        if read == 0 && wrote == 0 {
            return;
        }
        let moved = ToParent::Moved {
            id: self.id,
            read: read as u64,
            wrote: wrote as u64,
        };
        let now = Instant::now();
        let at_once = {
            let mut reported = self.reported.lock();
            let at_once = reported.is_none_or(|at| now.duration_since(at) >= MOVED_REPORT_GAP);
            if at_once {
                *reported = Some(now);
            }
            at_once
        };
        // A pool that is gone ends this process through its reader.
        let _ = if at_once {
            self.to_pool.send(&moved)
        } else {
            self.to_pool.send_with_next(&moved)
        };
    }
}

/// How long after a report of a connection's bytes the next moves may wait
/// for another frame ([`SocketMeter`]): far below any timeout a server
/// would set, far above a short connection's life.
const MOVED_REPORT_GAP: Duration = Duration::from_millis(5);

impl Meter for SocketMeter {
    fn read(&self, n: usize) {
        self.moved(n, 0);
    }

    fn wrote(&self, n: usize) {
        self.moved(0, n);
    }
}

/// A task's streamed stdout or stderr: each write becomes an `Output`
/// frame, sent under `credits`, which the pool's `OutputTaken` frames give
/// back.
fn relayed_output(
    id: u64,
    stream: StreamName,
    credits: Arc<Credits>,
    to_pool: ToPool,
) -> RelayedOutput {
    let send = move |bytes: &[u8]| {
        to_pool.send(&ToParent::Output {
            id,
            stream,
            bytes: bytes.to_vec(),
        })
    };
    RelayedOutput {
        credits,
        send: Arc::new(send),
    }
}

/// The most threads a worker process gives the shared thread pool: it runs
/// one task at a time, and the pool only hashes and compiles.
const MAX_POOL_THREADS: usize = 4;

/// Starts the thread pool that hashing a cached module and compiling use
/// (rayon's global pool) with as many threads as the system lets this
/// process start, down to one. Left to itself, rayon panics on first use
/// when the system refuses a thread (a low process limit, many workers):
/// here the worker runs with fewer threads, or says why it cannot start.
fn start_thread_pool() -> Result<(), String> {
    let wanted = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(MAX_POOL_THREADS);
    // How many threads the system gives now: each probe waits until all
    // are counted, so that they exist at once, as the pool's will.
    let (release, released) = crossbeam_channel::bounded::<()>(0);
    let probes: Vec<_> = (0..wanted)
        .map_while(|_| {
            let released = released.clone();
            std::thread::Builder::new()
                .stack_size(64 << 10)
                .spawn(move || {
                    let _ = released.recv();
                })
                .ok()
        })
        .collect();
    let threads = probes.len();
    drop(release);
    for probe in probes {
        let _ = probe.join();
    }
    let cannot = |cause: String| {
        format!(
            "the worker process cannot start a thread ({cause}): the system's limit on processes \
             and threads is reached; raise it (ulimit -u) or run fewer workers (-j)"
        )
    };
    if threads == 0 {
        return Err(cannot("the system refused the first one".into()));
    }
    rayon_core::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|index| format!("wasmproc-pool-{index}"))
        .build_global()
        .map_err(|error| cannot(error.to_string()))
}

/// Loads the module the pool sent: its wasm, or a snapshot found in the
/// cache by what made it.
fn load(runtime: &Runtime, name: &str, module: WireModule) -> Result<Module, crate::Error> {
    match module {
        WireModule::Wasm(wasm) => runtime.load_bytes(name, &wasm),
        WireModule::File { path, identity } => {
            // The pool's module from the cache; the file only when the
            // cache lost it (and then it must still be that module).
            let identity = Identity::from_bytes(identity);
            match runtime.load_compiled(name, &path, identity)? {
                Some(module) => Ok(module),
                None => runtime.load_file(&path, Some(identity)),
            }
        }
        WireModule::Snapshot { base, init } => load(runtime, name, *base)?.initialize_with(&init),
    }
}
