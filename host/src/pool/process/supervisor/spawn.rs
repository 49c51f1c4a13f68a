//! Starting a worker process (spawn, the thread that reads its frames,
//! the `Hello` handshake, the module's load) and the handle of a live one.

use std::io::{BufReader, BufWriter, Write};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::Receiver;

use super::{Ended, lost};
use crate::error::Error;
use crate::module::Module;
use crate::mutex::Mutex;
use crate::pool::process::handover;
use crate::pool::process::protocol::{
    ToChild, ToParent, VERSION, WireModule, WireTask, holds_frame, read_frame_with, write_frame,
    write_frame_buffered,
};
use crate::pool::process::share_server::{Relay, ToWorker};
use crate::pool::process::{ProcessOptions, WORKER_ENV};
use crate::share::Holder;
use crate::task::{Socket, Task};

/// How long a worker process may take to start and answer `Hello`.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long it may then take to load its module (from the cache, usually).
const LOAD_TIMEOUT: Duration = Duration::from_secs(120);

/// One live worker process.
pub(super) struct Worker {
    pub(super) process: Child,
    /// Shared with the relay, which answers the guests' sharing
    /// operations.
    to_child: ToWorker,
    /// Holds what the tasks were granted, and answers their guests.
    pub(super) relay: Relay,
    /// Its frames, read by a thread of their own; disconnected once the
    /// process has closed its stdout (it exited or died).
    pub(super) from_child: Receiver<std::io::Result<ToParent>>,
    pub(super) pid: u32,
}

impl Worker {
    /// Starts a worker process for `module`: spawns it, starts the thread
    /// that reads its frames, and waits for its answer to `Hello` and for
    /// it to load the module.
    pub(super) fn spawn(module: &Module, options: &ProcessOptions) -> Result<Worker, Error> {
        let executable = options.worker_executable()?;
        // One spawn at a time: on Windows a child inherits every inheritable
        // handle that exists while it is created, so two workers started at
        // once could each hold the other's pipe open, and neither would see
        // its pool go away.
        static SPAWNING: Mutex<()> = Mutex::new(());
        let spawning = SPAWNING.lock();
        let (child_stdin, ours) = handover::child_input()
            .map_err(|e| lost(format!("cannot make the pipe to a worker process: {e}")))?;
        let mut process = Command::new(&executable)
            .args(options.worker_args())
            .env(WORKER_ENV, "1")
            .stdin(child_stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| {
                lost(format!(
                    "cannot start the worker process `{}`: {e}",
                    executable.display()
                ))
            })?;
        drop(spawning);
        tracing::debug!(target: "wasmproc::pool", "worker process {} started", process.id());
        let stdin = handover::our_end(ours, &mut process)
            .map_err(|e| lost(format!("cannot talk to the worker process: {e}")))?;
        let stdout = process.stdout.take().expect("piped");
        let (frames, from_child) = crossbeam_channel::unbounded();
        let to_child = Arc::new(Mutex::new(BufWriter::new(stdin)));
        let (relay, inlet) = Relay::new(Arc::clone(&to_child));
        std::thread::Builder::new()
            .name("wasmproc-supervisor-reader".into())
            .spawn(move || {
                let mut stdout = BufReader::new(stdout);
                let mut frame = Vec::new();
                loop {
                    // Answers written on this thread go out before it may
                    // wait for the worker (which may wait for them).
                    if !holds_frame(stdout.buffer()) {
                        inlet.flush();
                    }
                    match read_frame_with::<ToParent>(&mut stdout, &mut frame) {
                        // Straight to the relay: a guest's operation is
                        // answered without a trip through the supervisor.
                        Ok(Some(ToParent::Share { id, seq, taken, op })) => {
                            inlet.op(id, seq, taken, op)
                        }
                        Ok(Some(message)) => {
                            if frames.send(Ok(message)).is_err() {
                                break;
                            }
                        }
                        Ok(None) => break,
                        Err(error) => {
                            let _ = frames.send(Err(error));
                            break;
                        }
                    }
                }
            })
            .map_err(|e| lost(format!("cannot start a supervisor thread: {e}")))?;
        let pid = process.id();
        let worker = Worker {
            process,
            to_child,
            relay,
            from_child,
            pid,
        };
        let hello = ToChild::Hello {
            version: VERSION,
            module_name: module.name().to_owned(),
            module: WireModule::of(module).map_err(|error| lost(error.into_message()))?,
            settings: module.runtime().settings().clone(),
        };
        let not_a_worker = || {
            lost(format!(
                "`{}` did not start as a wasmproc worker: it must be the wasmproc binary, or a \
                 program that calls wasmproc::run_worker_if_requested() first thing in \
                 main (see ProcessOptions::executable)",
                executable.display()
            ))
        };
        // A program that is no worker may be gone before it reads `Hello`.
        if worker.send(&hello).is_err() {
            return Err(not_a_worker());
        }
        // A worker answers `Hello` at once; a program that is no worker
        // (it forgot the hook, or is another program) never does.
        match worker.from_child.recv_timeout(HANDSHAKE_TIMEOUT) {
            Ok(Ok(ToParent::Started { version, .. })) if version == VERSION => {}
            Ok(Ok(ToParent::Refused { message })) => {
                return Err(lost(format!("the worker process refused: {message}")));
            }
            _ => return Err(not_a_worker()),
        }
        match worker.from_child.recv_timeout(LOAD_TIMEOUT) {
            Ok(Ok(ToParent::Ready)) => Ok(worker),
            Ok(Ok(ToParent::Refused { message })) => {
                Err(lost(format!("the worker process refused: {message}")))
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => Err(lost(format!(
                "the worker process did not load the module within {}",
                humantime::format_duration(LOAD_TIMEOUT)
            ))),
            _ => Err(lost("the worker process died while loading the module")),
        }
    }

    /// Sends one frame to the worker.
    pub(super) fn send(&self, message: &ToChild) -> std::io::Result<()> {
        let mut to_child = self.to_child.lock();
        write_frame(&mut *to_child, message)
    }

    /// Adds one frame to what goes to the worker at the next
    /// [`flush`](Worker::flush) (or sooner, when the buffer fills): a batch
    /// of tasks crosses in one write, and the worker's reader wakes once
    /// for all of them.
    pub(super) fn send_later(&self, message: &ToChild) -> std::io::Result<()> {
        let mut to_child = self.to_child.lock();
        write_frame_buffered(&mut *to_child, message)
    }

    /// Writes out the frames [`send_later`](Worker::send_later) left.
    pub(super) fn flush(&self) -> std::io::Result<()> {
        self.to_child.lock().flush()
    }

    /// Sends one frame with a connection's socket, which the worker then
    /// holds (our duplicate is the caller's to drop).
    pub(super) fn send_with_socket(
        &self,
        message: &ToChild,
        socket: &Socket,
    ) -> std::io::Result<()> {
        let mut to_child = self.to_child.lock();
        handover::send_with_socket(&mut to_child, message, socket, self.pid)
    }

    /// The task in wire form; a task with grants gets a lock-holder id
    /// here, and the relay holds its objects.
    pub(super) fn wire(&mut self, id: u64, task: &Task) -> Result<WireTask, Ended> {
        if task.grants.is_empty() {
            return Ok(WireTask::from_task(task, None));
        }
        let holder = Holder::new();
        let wire = WireTask::from_task(task, Some(holder.id()));
        self.relay
            .start_task(id, task.grants.clone(), holder)
            .map_err(|e| lost(format!("cannot start a relay thread: {e}")))?;
        Ok(wire)
    }

    /// Whether an idle worker is still there: its frame channel is open
    /// and quiet (an idle worker has nothing to say; a frame now is out of
    /// turn, and the worker is replaced anyway).
    pub(super) fn idle_and_alive(&self) -> bool {
        matches!(
            self.from_child.try_recv(),
            Err(crossbeam_channel::TryRecvError::Empty)
        )
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // Closing stdin asks it to exit; the kill makes sure, and the wait
        // reaps it so that no zombie is left.
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}
