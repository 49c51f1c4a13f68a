//! The crash-loop breaker: a worker process that keeps dying (or a
//! program that never starts as one) is not restarted in a loop.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::lost;
use crate::error::Error;

/// One supervisor's recent deaths and failed starts, within a window.
pub(super) struct Breaker {
    /// How many deaths (or failed starts) the window allows.
    max_restarts: u32,
    window: Duration,
    /// When this worker's recent processes died.
    deaths: VecDeque<Instant>,
    /// When recent processes failed to start at all (not a worker, a module
    /// that does not load): while too many did, none is started.
    failed_starts: VecDeque<Instant>,
    /// Why the last one died.
    last_death: String,
}

impl Breaker {
    pub(super) fn new(max_restarts: u32, window: Duration) -> Self {
        Breaker {
            max_restarts,
            window,
            deaths: VecDeque::new(),
            failed_starts: VecDeque::new(),
            last_death: String::new(),
        }
    }

    /// Why the last worker process died.
    pub(super) fn last_death(&self) -> &str {
        &self.last_death
    }

    /// Records a death under a task (or while idle) and why; whether the
    /// breaker has tripped: more deaths within the window than allowed.
    /// The task at hand then fails for good (it may be poison); later
    /// tasks still get a new worker.
    pub(super) fn record_death(&mut self, why: String) -> bool {
        tracing::warn!(target: "wasmproc::pool", "worker process ended: {why}");
        self.deaths.push_back(Instant::now());
        self.last_death = why;
        within_window(&mut self.deaths, self.window) > self.max_restarts as usize
    }

    /// Records a worker that could not start; whether starts now fail too
    /// often to try again (see [`starts_failing`](Self::starts_failing)).
    pub(super) fn record_failed_start(&mut self, why: String) -> bool {
        self.failed_starts.push_back(Instant::now());
        self.record_death(why);
        self.starts_failing()
    }

    /// Whether more workers failed to start within the window than
    /// allowed: then tasks fail at once and none is started until the
    /// window has passed, so a program that is no worker (or a module that
    /// does not load) costs at most `max_restarts` starts per window.
    pub(super) fn starts_failing(&mut self) -> bool {
        within_window(&mut self.failed_starts, self.window) > self.max_restarts as usize
    }

    /// The error of a task failed by the tripped breaker, after the last
    /// death.
    pub(super) fn poison(&self) -> Error {
        lost(format!(
            "{}; the worker process died {} times within {}: the task fails for good \
             (it may be poison to its worker)",
            self.last_death,
            self.deaths.len(),
            humantime::format_duration(self.window)
        ))
    }

    /// The error of a task failed without a try while starts fail.
    pub(super) fn no_start(&self) -> Error {
        lost(format!(
            "{}; {} worker processes failed to start within {}: the task fails without \
             another try",
            self.last_death,
            self.failed_starts.len(),
            humantime::format_duration(self.window)
        ))
    }
}

/// How many of `times` fall within the last `window` (older ones are
/// dropped).
fn within_window(times: &mut VecDeque<Instant>, window: Duration) -> usize {
    let now = Instant::now();
    while times.front().is_some_and(|t| now - *t > window) {
        times.pop_front();
    }
    times.len()
}
