//! A pool's worker threads: the first starts with the pool, the others on
//! demand, when work is queued and no worker is idle, up to the pool's size.
//! A pool of 1,000 workers given 10 tasks starts about 10.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use crossbeam_channel::Receiver;

use super::process::{self, WorkerPids};
use super::queue::{Idle, Job};
use super::{Isolation, lock};
use crate::error::{Error, ErrorKind};
use crate::module::Module;

/// The worker threads of one pool.
pub(super) struct Workers {
    module: Module,
    isolation: Isolation,
    queue: Receiver<Job>,
    pids: WorkerPids,
    size: usize,
    idle: Idle,
    started: Mutex<Started>,
    /// Set once every worker has started: `grow` then costs no lock.
    all_started: AtomicBool,
}

struct Started {
    threads: Vec<JoinHandle<()>>,
    /// Set by `join`: no thread starts after it.
    closed: bool,
}

impl Workers {
    /// The workers of a pool of `size`, with the first one started.
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
        let workers = Workers {
            module,
            isolation,
            queue,
            pids: WorkerPids::new(size),
            size,
            idle: Idle::default(),
            started: Mutex::new(Started {
                threads: Vec::with_capacity(size.min(64)),
                closed: false,
            }),
            all_started: AtomicBool::new(false),
        };
        workers.start_one(&mut lock(&workers.started))?;
        Ok(workers)
    }

    /// Starts another worker, up to the pool's size, when work was just
    /// queued and either no worker is idle or the work is still waiting
    /// (a worker counted idle may be one that has just taken a job and not
    /// yet said so: a job queued behind a long task, such as a connection,
    /// must not wait for it). A worker that cannot start leaves the queued
    /// work to the others (there is always at least one).
    pub(super) fn grow(&self) {
        if self.all_started.load(Ordering::Relaxed) || (self.idle.any() && self.queue.is_empty()) {
            return;
        }
        let mut started = lock(&self.started);
        if !started.closed && started.threads.len() < self.size {
            let _ = self.start_one(&mut started);
        }
    }

    fn start_one(&self, started: &mut Started) -> Result<(), Error> {
        let index = started.threads.len();
        let queue = self.queue.clone();
        let module = self.module.clone();
        let isolation = self.isolation.clone();
        let pids = self.pids.clone();
        let idle = self.idle.clone();
        let thread = std::thread::Builder::new()
            .name(format!("wasmproc-worker-{index}"))
            .spawn(move || match isolation {
                Isolation::Thread => super::thread::serve(&module, &queue, &idle),
                Isolation::Process(options) => {
                    process::serve(module, options, pids, index, &queue, &idle)
                }
            })
            .map_err(|error| {
                Error::new(
                    ErrorKind::Setup,
                    format!("cannot start worker thread {index}: {error}"),
                )
            })?;
        tracing::debug!(
            target: "wasmproc::pool",
            "worker {index} started ({} of at most {})",
            index + 1,
            self.size
        );
        started.threads.push(thread);
        if started.threads.len() == self.size {
            self.all_started.store(true, Ordering::Relaxed);
        }
        Ok(())
    }

    /// The pids of the live worker processes.
    pub(super) fn pids(&self) -> Vec<u32> {
        self.pids.live()
    }

    /// Waits for every worker thread to exit (the queue must be closed);
    /// no worker starts afterwards.
    pub(super) fn join(&self) {
        let threads = {
            let mut started = lock(&self.started);
            started.closed = true;
            std::mem::take(&mut started.threads)
        };
        for thread in threads {
            // Workers catch every panic of a task, so a join error would be
            // a bug in the pool itself; there is nothing left to clean up.
            let _ = thread.join();
        }
    }
}
