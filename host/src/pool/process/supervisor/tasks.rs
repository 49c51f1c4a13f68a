//! Handing tasks to the worker process and collecting their answers:
//! the tasks are sent at once (pipelined) and run in order; meanwhile the
//! running task's streams are relayed, cancellations are passed on, and a
//! worker that overruns a deadline is given up.

use std::collections::VecDeque;
use std::io::Write;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvError, select};

use super::spawn::Worker;
use super::stdin::StdinRelay;
use super::{Ended, Outcomes, Supervisor, gone, lost, soon};
use crate::mutex;
use crate::outcome::Outcome;
use crate::pool::process::protocol::{StreamName, ToChild, ToParent};
use crate::pool::process::{Batched, handover};
use crate::status::ExitStatus;
use crate::task::Output;

/// What the worker sent, as its frame channel gives it: a frame, a frame
/// that did not decode, or the channel's end (the worker is gone).
type Frame = Result<std::io::Result<ToParent>, RecvError>;

/// A task sent to the worker and not yet answered.
struct InFlight {
    index: usize,
    id: u64,
    cancel_sent: bool,
}

impl Supervisor {
    /// Sends every pending task to the worker and collects answers until
    /// all are in, or the worker is lost or retires (the unanswered stay
    /// pending). Streams of the running task are relayed meanwhile.
    pub(super) fn run_tasks(
        &mut self,
        tasks: &[Batched<'_>],
        pending: &mut VecDeque<usize>,
        woken: &Receiver<()>,
        outcomes: &mut impl Outcomes,
    ) -> Result<(), Ended> {
        self.ready_worker()?;
        drop_cancelled(tasks, pending, outcomes);
        let in_flight = self.hand_over(tasks, pending)?;
        let worker = self.worker.as_mut().expect("made ready above");
        let mut running = Running::new(tasks, in_flight, self.options.grace)?;
        while running.any() {
            if let Some(frame) = running.next_frame(worker, woken, outcomes)? {
                running.take(worker, frame, pending, outcomes)?;
            }
        }
        Ok(())
    }

    /// Makes sure a live worker is there. One that died while idle is
    /// replaced before tasks are handed over: they never saw it, so it
    /// costs them no attempt.
    fn ready_worker(&mut self) -> Result<(), Ended> {
        if self.worker.as_ref().is_some_and(|w| !w.idle_and_alive()) {
            self.set_worker(None);
        }
        if self.worker.is_none() {
            let worker = Worker::spawn(&self.module, &self.options).map_err(Ended::NoStart)?;
            self.set_worker(Some(worker));
        }
        Ok(())
    }

    /// Sends the pending tasks to the worker, in order.
    fn hand_over(
        &mut self,
        tasks: &[Batched<'_>],
        pending: &VecDeque<usize>,
    ) -> Result<VecDeque<InFlight>, Ended> {
        let worker = self.worker.as_mut().expect("made ready before");
        let mut in_flight = VecDeque::new();
        let stopped =
            |e: std::io::Error| lost(format!("the worker process stopped taking tasks ({e})"));
        for (position, &index) in pending.iter().enumerate() {
            self.next_id += 1;
            let id = self.next_id;
            let mut task = worker.wire(id, tasks[index].task)?;
            // Computed from what is sent now: a chunk's tasks cancelled
            // before they were sent, or answered before a retry, are not
            // among them.
            let shares_with_next = pending
                .get(position + 1)
                .is_some_and(|&next| tasks[next].chunk == tasks[index].chunk);
            match &tasks[index].task.direct {
                // A server's connection: its socket goes with the frame,
                // and the worker holds it from then on (ours is dropped
                // here; the server keeps its own, to hang it up).
                Some(direct) => {
                    let socket = direct.take().ok_or_else(|| {
                        lost("the connection's socket was already handed to a worker process")
                    })?;
                    task.socket = Some(handover::kind(&socket));
                    let sent = worker.send_with_socket(
                        &ToChild::Run {
                            id,
                            task,
                            shares_with_next: false,
                        },
                        &socket,
                    );
                    if let Err(error) = sent {
                        // The worker never ran this task (its frame did not
                        // get through): the connection is untouched, and
                        // the task may go to a new worker with its socket.
                        direct.put_back(socket);
                        return Err(stopped(error).into());
                    }
                }
                // Buffered: the batch goes in one write below (a socket's
                // frame writes what is buffered before it).
                None => worker
                    .send_later(&ToChild::Run {
                        id,
                        task,
                        shares_with_next,
                    })
                    .map_err(stopped)?,
            }
            in_flight.push_back(InFlight {
                index,
                id,
                cancel_sent: false,
            });
        }
        worker.flush().map_err(stopped)?;
        Ok(in_flight)
    }
}

/// Answers the tasks cancelled before they were sent: they never start.
fn drop_cancelled(
    tasks: &[Batched<'_>],
    pending: &mut VecDeque<usize>,
    outcomes: &mut impl Outcomes,
) {
    pending.retain(|&index| {
        let cancelled = tasks[index].cancel.is_cancelled();
        if cancelled {
            outcomes.deliver(
                index,
                Outcome::failed(
                    ExitStatus::Cancelled,
                    "the task was cancelled before it started",
                ),
            );
        }
        !cancelled
    });
}

/// The tasks in the worker's hands, the one at the front running.
///
/// The worker enforces each task's own limits; the supervisor steps in
/// only when it fails to answer in time. The front's clock starts when
/// the one before it ends.
struct Running<'t> {
    tasks: &'t [Batched<'t>],
    in_flight: VecDeque<InFlight>,
    grace: Duration,
    /// When the front task started running.
    front_since: Instant,
    /// When a cancelled front must have answered by.
    cancel_by: Option<Instant>,
    /// The front task's streamed stdin.
    stdin: StdinRelay,
}

impl<'t> Running<'t> {
    fn new(
        tasks: &'t [Batched<'t>],
        in_flight: VecDeque<InFlight>,
        grace: Duration,
    ) -> Result<Self, Ended> {
        let front_since = Instant::now();
        let stdin = StdinRelay::start(in_flight.front().map(|f| tasks[f.index].task))?;
        Ok(Running {
            tasks,
            in_flight,
            grace,
            front_since,
            cancel_by: None,
            stdin,
        })
    }

    /// Whether a task is still unanswered.
    fn any(&self) -> bool {
        !self.in_flight.is_empty()
    }

    fn front(&self) -> &InFlight {
        self.in_flight.front().expect("a task is in flight")
    }

    /// Sends the cancels that came since the last look; a cancelled front
    /// gets the grace to answer.
    fn pass_cancels(&mut self, worker: &Worker) {
        if send_cancels(worker, &mut self.in_flight, self.tasks) {
            self.cancel_by = Some(Instant::now() + self.grace);
        }
    }

    /// When the worker is given up unless it answers: the front's time
    /// limit plus the grace, or the grace after its cancel.
    fn deadline(&self) -> Option<Instant> {
        let front = self.front();
        let limit = self.tasks[front.index]
            .task
            .limits
            .as_ref()
            .and_then(|l| l.timeout);
        [
            limit.and_then(|t| self.front_since.checked_add(t + self.grace)),
            self.cancel_by,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The worker's next frame; `None` when something else woke the wait
    /// (a stdin chunk, forwarded; a cancellation; the deadline), and the
    /// caller looks again.
    fn next_frame(
        &mut self,
        worker: &mut Worker,
        woken: &Receiver<()>,
        outcomes: &mut impl Outcomes,
    ) -> Result<Option<Frame>, Ended> {
        let front_id = self.front().id;
        self.pass_cancels(worker);
        self.stdin.ask();
        let deadline = self.deadline();
        let timer = match deadline {
            Some(deadline) => crossbeam_channel::at(deadline),
            None => crossbeam_channel::never(),
        };
        let stdin_chunks = self.stdin.chunks();
        let overdue = || {
            gone(format!(
                "the worker process did not answer within the task's limit plus {} of \
                 grace, and was killed",
                humantime::format_duration(self.grace)
            ))
        };
        // Past the deadline, a frame that came while this thread was
        // blocked (writing a task's output to a slow reader, say) still
        // counts: the worker answered in time, the pool was late.
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return match worker.from_child.try_recv() {
                Ok(frame) => Ok(Some(Ok(frame))),
                Err(_) => Err(overdue()),
            };
        }
        // The next frame usually follows within microseconds: wait for it
        // briefly before sleeping in the select (which, unlike a plain
        // receive, sleeps at once, and a wake-up costs more).
        if !self.stdin.active()
            && let Some(frame) = soon(&worker.from_child)
        {
            return Ok(Some(frame));
        }
        // About to sleep: the outcomes held to go together go now.
        outcomes.flush();
        Ok(select! {
            recv(worker.from_child) -> frame => Some(frame),
            recv(stdin_chunks) -> chunk => {
                self.stdin.forward(worker, front_id, chunk)?;
                None
            }
            // A task was cancelled: the next look sends the `Cancel`.
            recv(woken) -> _ => None,
            // Woken at the deadline: the next look takes a frame that came
            // at the same time, or gives the worker up.
            recv(timer) -> _ => None,
        })
    }

    /// Acts on one frame from the worker.
    fn take(
        &mut self,
        worker: &mut Worker,
        frame: Frame,
        pending: &mut VecDeque<usize>,
        outcomes: &mut impl Outcomes,
    ) -> Result<(), Ended> {
        let front_id = self.front().id;
        match frame {
            Ok(Ok(ToParent::Done {
                id,
                outcome,
                retire,
                taken,
            })) if id == front_id => {
                worker.relay.done(id, taken);
                pending.pop_front();
                let front = self.in_flight.pop_front().expect("the front");
                outcomes.deliver(front.index, outcome);
                if retire {
                    return Err(Ended::Retired);
                }
                self.next_runs()
            }
            Ok(Ok(ToParent::Output { id, stream, bytes })) if id == front_id => {
                self.relay_output(worker, stream, bytes);
                Ok(())
            }
            Ok(Ok(ToParent::InputTaken { id, bytes })) if id == front_id => {
                self.stdin.taken(bytes);
                Ok(())
            }
            Ok(Ok(ToParent::Moved { id, read, wrote })) if id == front_id => {
                let task = self.tasks[self.front().index].task;
                if let Some(direct) = &task.direct {
                    let bytes = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
                    if read > 0 {
                        direct.meter.read(bytes(read));
                    }
                    if wrote > 0 {
                        direct.meter.wrote(bytes(wrote));
                    }
                }
                Ok(())
            }
            Ok(Ok(_)) => Err(gone("the worker process answered out of turn")),
            Ok(Err(error)) => Err(gone(format!(
                "the worker process sent a malformed frame ({error})"
            ))),
            Err(_) => {
                let status = worker
                    .process
                    .wait()
                    .map(|s| s.to_string())
                    .unwrap_or_default();
                Err(gone(format!(
                    "the worker process died under the task ({status})"
                )))
            }
        }
    }

    /// The front task was answered: the next one's clock starts (already
    /// cancelled, it gets the grace from now), and its stdin is relayed.
    fn next_runs(&mut self) -> Result<(), Ended> {
        self.front_since = Instant::now();
        self.cancel_by = self
            .in_flight
            .front()
            .filter(|task| task.cancel_sent)
            .map(|_| self.front_since + self.grace);
        self.stdin = StdinRelay::start(self.in_flight.front().map(|f| self.tasks[f.index].task))?;
        Ok(())
    }

    /// Writes the front task's output where it goes, then gives the worker
    /// the credit back.
    fn relay_output(&mut self, worker: &Worker, stream: StreamName, bytes: Vec<u8>) {
        let front = self.front();
        let (id, task) = (front.id, self.tasks[front.index].task);
        let output = match stream {
            StreamName::Stdout => &task.stdout,
            StreamName::Stderr => &task.stderr,
        };
        let written = write_output(output, stream, &bytes);
        // A cancel that came while the write was blocked goes first: the
        // guest must see it before the credits (or the broken stream) that
        // end its wait.
        self.pass_cancels(worker);
        // Written out (or failed): the worker may send as many more. Until
        // then a guest whose reader does not read waits in its worker, and
        // nothing piles up here.
        let taken = ToChild::OutputTaken {
            id,
            stream,
            bytes: bytes.len() as u64,
            broken: written.is_err(),
        };
        // A worker that cannot take it has ended: after its task timed out
        // in that wait, it retires once its `Done` is sent. What it sent
        // before it went is still to be read, and the read side says how it
        // ended.
        let _ = worker.send(&taken);
    }
}

/// Sends `Cancel` for each task in flight whose token was cancelled since
/// the last look; whether the running one (the front) was among them.
fn send_cancels(
    worker: &Worker,
    in_flight: &mut VecDeque<InFlight>,
    tasks: &[Batched<'_>],
) -> bool {
    let front_id = in_flight.front().map(|task| task.id);
    let mut front_cancelled = false;
    for task in in_flight.iter_mut() {
        if !task.cancel_sent && tasks[task.index].cancel.is_cancelled() {
            task.cancel_sent = true;
            let _ = worker.send(&ToChild::Cancel { id: task.id });
            front_cancelled |= Some(task.id) == front_id;
        }
    }
    front_cancelled
}

/// Writes a relayed stream's bytes where the task's output goes. A host
/// stream that fails (a closed pipe, a peer gone) drops them, and the
/// worker is told: the guest's later writes fail, as in a thread worker.
fn write_output(output: &Output, stream: StreamName, bytes: &[u8]) -> std::io::Result<()> {
    match (output, stream) {
        (Output::Inherit, StreamName::Stdout) => {
            let mut out = std::io::stdout().lock();
            out.write_all(bytes).and_then(|()| out.flush())
        }
        (Output::Inherit, StreamName::Stderr) => std::io::stderr().write_all(bytes),
        (Output::Writer(writer), _) => mutex::lock(writer).write_all(bytes),
        (Output::Capture | Output::Discard, _) => Ok(()),
    }
}
