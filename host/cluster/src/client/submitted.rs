//! One job's blocking ends: tasks go out numbered and made portable
//! ([`TaskSpec`]), within a window of tasks out; outcomes come back by
//! index, in order or as they end.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex};

use crossbeam_channel::Receiver;
use tokio::sync::mpsc;
use wasmproc::{Limits, Outcome, Stdin, Task, TaskSpec};

use crate::job::Command;
use crate::wire::WireTask;

/// How many tasks of one job may be out (sent, no outcome yet) at once.
const WINDOW: u64 = 65_536;

/// A job started by [`Cluster::start`](super::Cluster::start): its tasks
/// go through its [`Outbox`], its outcomes come back here. Dropping it
/// withdraws what has not started (after the job's end, that goes
/// nowhere).
pub(crate) struct Submitted {
    outbox: Arc<Outbox>,
    outcomes: Receiver<Vec<(u64, Outcome)>>,
}

/// Where a job's tasks go out: numbered, made portable, within the job's
/// window. Shared by whoever sends.
pub(crate) struct Outbox {
    commands: mpsc::UnboundedSender<Command>,
    window: Window,
    /// The limits of tasks that set none of their own.
    limits: Option<Limits>,
    /// The most bytes one message takes.
    budget: usize,
    /// The index of the next task sent.
    next: Mutex<u64>,
}

impl Submitted {
    pub(crate) fn new(
        commands: mpsc::UnboundedSender<Command>,
        outcomes: Receiver<Vec<(u64, Outcome)>>,
        limits: Option<Limits>,
        budget: usize,
    ) -> Self {
        let outbox = Outbox {
            commands,
            window: Window::default(),
            limits,
            budget,
            next: Mutex::new(0),
        };
        Submitted {
            outbox: Arc::new(outbox),
            outcomes,
        }
    }

    /// Where the job's tasks go.
    pub(crate) fn outbox(&self) -> Arc<Outbox> {
        Arc::clone(&self.outbox)
    }

    /// The next outcomes; `None` when the job is over.
    fn receive(&self) -> Option<Vec<(u64, Outcome)>> {
        let received = self.outcomes.recv().ok()?;
        self.outbox.window.give_back(received.len() as u64);
        Some(received)
    }

    /// The outcomes in input order.
    pub(crate) fn in_order(self) -> InOrder {
        InOrder {
            job: self,
            next: 0,
            early: HashMap::new(),
        }
    }

    /// The outcomes as tasks end.
    pub(crate) fn when_they_end(self) -> AsTheyEnd {
        AsTheyEnd {
            job: self,
            ready: Vec::new(),
        }
    }
}

impl Drop for Submitted {
    fn drop(&mut self) {
        self.outbox.cancel();
    }
}

impl Outbox {
    /// Sends `tasks`, numbered on from the last; waits while the job has
    /// its fill of tasks out. `false` once the job has ended.
    pub(crate) fn send(&self, tasks: Vec<Task>) -> bool {
        let mut next = crate::poison::lock(&self.next);
        let count = tasks.len() as u64;
        let wire: Vec<WireTask> = tasks
            .into_iter()
            .zip(*next..)
            .map(|(task, index)| self.to_wire(index, &task))
            .collect();
        *next += count;
        self.window.take(count);
        // Sent under the lock, so that indices reach the job in order.
        self.commands.send(Command::Tasks(wire)).is_ok()
    }

    /// Says that no more tasks will come.
    pub(crate) fn close(&self) {
        let _ = self.commands.send(Command::Close);
    }

    /// Ends the job: tasks not yet started are withdrawn, and every
    /// unfinished task ends `Cancelled` (one already running on a host runs
    /// to its end there).
    pub(crate) fn cancel(&self) {
        let _ = self.commands.send(Command::Cancel);
    }

    /// Whether the job has ended (nothing more reaches it).
    pub(crate) fn is_over(&self) -> bool {
        self.commands.is_closed()
    }

    /// The task as it travels; a task that cannot travel (a streamed stdin,
    /// shared objects) is sent rejected, with why.
    fn to_wire(&self, index: u64, task: &Task) -> WireTask {
        let mut spec = TaskSpec::from(task);
        let stdin_too_large = spec.stdin.len() > self.budget / 2;
        let refusal = if task.shared_names().next().is_some() || task.has_pipe() {
            Some(
                "queues, pipes and shared regions do not reach other hosts: run tasks that use \
                 them on a local pool"
                    .to_owned(),
            )
        } else if matches!(task.get_stdin(), Stdin::Inherit | Stdin::Reader(_)) {
            Some(
                "a task's stdin must be bytes (Stdin::Bytes) to travel to a cluster host"
                    .to_owned(),
            )
        } else if stdin_too_large {
            Some(format!(
                "the task's stdin ({} bytes) is larger than a cluster message takes ({} bytes): \
                 pass large data as the task's argument instead",
                spec.stdin.len(),
                self.budget / 2
            ))
        } else {
            None
        };
        if spec.rejected.is_none() {
            spec.rejected = refusal;
        }
        if spec.rejected.is_some() {
            spec.stdin = Vec::new();
        }
        if spec.limits.is_none() {
            spec.limits = self.limits.clone();
        }
        WireTask {
            index,
            spec,
            stored_input: None,
        }
    }
}

/// How many tasks are out; senders wait while the window is full.
#[derive(Default)]
struct Window {
    out: Mutex<u64>,
    room: Condvar,
}

impl Window {
    fn take(&self, count: u64) {
        let mut out = crate::poison::lock(&self.out);
        while *out >= WINDOW {
            out = crate::poison::wait(&self.room, out);
        }
        *out += count;
    }

    fn give_back(&self, count: u64) {
        let mut out = crate::poison::lock(&self.out);
        *out = out.saturating_sub(count);
        self.room.notify_all();
    }
}

/// A job's outcomes in input order, each with its index.
pub(crate) struct InOrder {
    job: Submitted,
    next: u64,
    early: HashMap<u64, Outcome>,
}

impl Iterator for InOrder {
    type Item = (usize, Outcome);

    fn next(&mut self) -> Option<(usize, Outcome)> {
        loop {
            if let Some(outcome) = self.early.remove(&self.next) {
                self.next += 1;
                return Some((self.next as usize - 1, outcome));
            }
            for (index, outcome) in self.job.receive()? {
                self.early.insert(index, outcome);
            }
        }
    }
}

/// A job's outcomes as tasks end, each with its index.
pub(crate) struct AsTheyEnd {
    job: Submitted,
    ready: Vec<(u64, Outcome)>,
}

impl Iterator for AsTheyEnd {
    type Item = (usize, Outcome);

    fn next(&mut self) -> Option<(usize, Outcome)> {
        loop {
            if let Some((index, outcome)) = self.ready.pop() {
                return Some((index as usize, outcome));
            }
            let mut received = self.job.receive()?;
            received.reverse();
            self.ready = received;
        }
    }
}
