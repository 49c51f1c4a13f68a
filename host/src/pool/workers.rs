//! A pool's worker threads: the first starts with the pool (with process
//! isolation, `ProcessOptions::min_workers` of them), the others on demand,
//! when work is queued and no worker is idle, up to the pool's size. A pool
//! of 1,000 workers given 10 tasks starts about 10.
//!
//! With process isolation the workers also go: once the pool's idle
//! timeout has passed since the last moment every worker was busy, a
//! worker that is idle stops (its process, then its thread), down to the
//! minimum, so that a pool sized for bursts does not keep a process per
//! place through a quiet spell.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering, fence};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;

use super::Isolation;
use super::process::{self, Place, Roster, Verdict, WorkerPids};
use super::queue::{Idle, Job};
use crate::error::{Error, ErrorKind};
use crate::module::Module;
use crate::mutex::Mutex;

/// The worker threads of one pool.
pub(super) struct Workers {
    crew: Arc<Crew>,
}

/// What the workers share with the pool (and, with process isolation, each
/// worker with the others: the pool's `Roster`).
struct Crew {
    module: Module,
    isolation: Isolation,
    queue: Receiver<Job>,
    pids: WorkerPids,
    size: usize,
    idle: Idle,
    started: Mutex<Started>,
    /// Set while every place has a worker: `grow` then costs no lock.
    full: AtomicBool,
    /// With process isolation: how many workers stay, and after how long
    /// the others may go.
    min: usize,
    idle_timeout: Option<Duration>,
    /// When the pool started; `busy` counts from it.
    epoch: Instant,
    /// Microseconds after `epoch` from when the idle timeout counts: the
    /// last moment every worker was busy (or the pool was at its minimum).
    busy: AtomicU64,
    /// This crew, for the workers it starts.
    me: Weak<Crew>,
}

struct Started {
    /// The live workers' threads, by index.
    threads: HashMap<usize, JoinHandle<()>>,
    /// Threads of workers that stopped, joined by `join` (or dropped once
    /// they have ended).
    retired: Vec<JoinHandle<()>>,
    /// The index the next worker gets.
    next_index: usize,
    /// Set by `join`: no thread starts after it.
    closed: bool,
}

impl Workers {
    /// The workers of a pool of `size`, with the first ones started.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Setup`] when the first worker thread cannot start.
    pub(super) fn start(
        module: Module,
        isolation: Isolation,
        queue: Receiver<Job>,
        size: usize,
    ) -> Result<Self, Error> {
        let (min, idle_timeout) = match &isolation {
            Isolation::Thread => (1, None),
            Isolation::Process(options) => (options.min_workers.min(size), options.idle_timeout),
        };
        let crew = Arc::new_cyclic(|me| Crew {
            module,
            isolation,
            queue,
            pids: WorkerPids::default(),
            size,
            idle: Idle::default(),
            started: Mutex::new(Started {
                threads: HashMap::with_capacity(size.min(64)),
                retired: Vec::new(),
                next_index: 0,
                closed: false,
            }),
            full: AtomicBool::new(false),
            min,
            idle_timeout,
            epoch: Instant::now(),
            busy: AtomicU64::new(0),
            me: me.clone(),
        });
        {
            let mut started = crew.started.lock();
            crew.start_one(&mut started, true)?;
            for _ in 1..min {
                // The first is enough to serve: the rest are a head start.
                let _ = crew.start_one(&mut started, true);
            }
        }
        Ok(Workers { crew })
    }

    /// Starts another worker, up to the pool's size, when work was just
    /// queued and no worker is idle to take it; `waiting`: a job waits for
    /// room in the queue (which may then look empty, as a queue of no room
    /// always does). A worker that cannot start leaves the queued work to
    /// the others.
    pub(super) fn grow(&self, waiting: bool) {
        self.crew.grow(waiting);
    }

    /// The pids of the live worker processes.
    pub(super) fn pids(&self) -> Vec<u32> {
        self.crew.pids.live()
    }

    /// Waits for every worker thread to exit (the queue must be closed);
    /// no worker starts afterwards.
    pub(super) fn join(&self) {
        let threads = {
            let mut started = self.crew.started.lock();
            started.closed = true;
            let mut threads: Vec<_> = started.threads.drain().map(|(_, thread)| thread).collect();
            threads.append(&mut started.retired);
            threads
        };
        for thread in threads {
            // Workers catch every panic of a task, so a join error would be
            // a bug in the pool itself; there is nothing left to clean up.
            let _ = thread.join();
        }
    }
}

impl Crew {
    fn grow(&self, waiting: bool) {
        let queued = || waiting || !self.queue.is_empty();
        match self.isolation {
            // Thread workers also start when the work is still waiting
            // while a worker counts as idle: that may be one that has just
            // taken a job and not yet said so, and a job queued behind a
            // long task, such as a connection, must not wait for it.
            Isolation::Thread => {
                if self.full.load(Ordering::Relaxed) || (self.idle.any() && !queued()) {
                    return;
                }
            }
            // A worker process costs a process: one starts only when no
            // worker is idle. A worker counted idle that has in fact just
            // taken a job looks again once it has said so (`took_job`):
            // whichever of the two looks last sees the job waiting.
            Isolation::Process(_) => {
                fence(Ordering::SeqCst);
                if self.idle.any() {
                    return;
                }
                // Every worker is busy: the pool needs all it has.
                self.mark_busy();
                if self.full.load(Ordering::Relaxed) || !queued() {
                    return;
                }
            }
        }
        let mut started = self.started.lock();
        if !started.closed && started.threads.len() < self.size {
            let _ = self.start_one(&mut started, false);
        }
    }

    /// Notes that every worker was busy just now: the idle timeout counts
    /// from here.
    fn mark_busy(&self) {
        let since = u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.busy.fetch_max(since, Ordering::Relaxed);
    }

    /// Starts a worker; `warm`: its process starts before its first task.
    fn start_one(&self, started: &mut Started, warm: bool) -> Result<(), Error> {
        let index = started.next_index;
        let queue = self.queue.clone();
        let module = self.module.clone();
        let isolation = self.isolation.clone();
        let pids = self.pids.clone();
        let idle = self.idle.clone();
        let roster: Arc<dyn Roster> = self.me.upgrade().expect("the crew starts its workers");
        let thread = std::thread::Builder::new()
            .name(format!("wasmproc-worker-{index}"))
            .spawn(move || match isolation {
                Isolation::Thread => super::thread::work(&module, &queue, &idle),
                Isolation::Process(options) => {
                    let place = Place {
                        index,
                        warm,
                        roster,
                    };
                    process::feed_worker(module, options, pids, place, &queue, &idle)
                }
            })
            .map_err(|error| {
                Error::new(
                    ErrorKind::Setup,
                    format!("cannot start worker thread {index}: {error}"),
                )
                .caused_by(error)
            })?;
        started.next_index += 1;
        started.threads.insert(index, thread);
        // Threads of stopped workers that have ended need no join.
        started.retired.retain(|thread| !thread.is_finished());
        tracing::debug!(
            target: "wasmproc::pool",
            "worker {index} started ({} of at most {})",
            started.threads.len(),
            self.size
        );
        if started.threads.len() == self.size {
            self.full.store(true, Ordering::Relaxed);
        }
        Ok(())
    }
}

impl Roster for Crew {
    fn took_job(&self) {
        self.grow(false);
    }

    fn retire_at(&self) -> Option<Instant> {
        let since = self.epoch + Duration::from_micros(self.busy.load(Ordering::Relaxed));
        self.idle_timeout.map(|idle| since + idle)
    }

    fn retire(&self, index: usize) -> Verdict {
        let Some(due) = self.retire_at() else {
            return Verdict::Wait;
        };
        // As in `grow`: this worker has stopped counting as idle; a task
        // queued meanwhile is seen here, or its sender saw no idle worker.
        fence(Ordering::SeqCst);
        let mut started = self.started.lock();
        if started.closed || Instant::now() < due || !self.queue.is_empty() {
            return Verdict::Wait;
        }
        if started.threads.len() <= self.min {
            // Nothing to let go: the next look is an idle timeout away.
            self.mark_busy();
            return Verdict::Keep;
        }
        // Counted gone from now on, so that a task queued meanwhile starts
        // another worker if none is idle (the index stays this one's).
        if let Some(thread) = started.threads.remove(&index) {
            started.retired.push(thread);
        }
        self.full.store(false, Ordering::Relaxed);
        Verdict::Stop
    }
}
