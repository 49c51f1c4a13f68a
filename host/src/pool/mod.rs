//! A pool of workers: `multiprocessing.Pool` with sandboxed Wasm workers.
//!
//! The pool's example, guarantees and shutting down are on [`Pool`].

mod handle;
mod map;
pub mod process;
mod queue;
mod thread;
mod workers;

use std::sync::Arc;

use crossbeam_channel::Sender;
use serde::Serialize;

use crate::cancel::CancelToken;
use crate::error::{Error, ErrorKind};
use crate::limits::Limits;
use crate::module::Module;
use crate::mutex::Mutex;
use crate::outcome::Outcome;
use crate::share::{self, Grants, PipeEnd};
use crate::status::ExitStatus;
use crate::task::{Capabilities, Initializer, Task};

pub use handle::{Completion, TaskHandle};
pub use map::{MAX_CHUNKSIZE, MapResults, TaskSender, TaskSource, TaskStream, UnorderedResults};

use handle::HandleState;
use process::ProcessOptions;
use queue::{Job, Reply};
use workers::Workers;

/// Where a pool's workers run. Outcomes are the same either way.
///
/// Choose threads for few or small pools and lowest latency; choose
/// processes to scale with many cores (the kernel's memory-map work of
/// instantiation serializes within one process) and to be able to kill a
/// worker that stops answering. See [`ProcessOptions`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Isolation {
    /// Workers are threads of this process: nothing to spawn, lowest
    /// latency. Each task still runs in its own sandboxed instance.
    #[default]
    Thread,
    /// Workers are supervised child processes of a wasmproc executable.
    /// A task's streamed stdin and output are relayed by the pool.
    Process(ProcessOptions),
}

/// How [`Pool::shutdown`] treats the tasks not yet ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shutdown {
    /// Run every queued task to its end first.
    Drain,
    /// Cancel queued and running tasks: each ends `Cancelled` at once.
    Cancel,
}

/// Builds a [`Pool`]; every setting has a documented default.
#[derive(Debug, Clone)]
#[must_use]
pub struct PoolBuilder {
    module: Module,
    workers: Option<usize>,
    queue_bound: Option<usize>,
    limits: Limits,
    caps: Capabilities,
    /// Shared with every task (under names the task does not use itself).
    grants: Grants,
    /// Why a `share` was refused; `build` fails with it.
    refused: Option<String>,
    /// Run once at `build`; the workers start from its snapshot.
    initializer: Option<Result<Initializer, Error>>,
    isolation: Isolation,
    cancel: CancelToken,
}

impl PoolBuilder {
    /// Sets the number of workers: how many tasks run at once. The first
    /// starts with the pool, the others as work arrives while none is idle.
    /// With process isolation, idle workers also stop again (see
    /// [`ProcessOptions::min_workers`] and [`ProcessOptions::idle_timeout`]).
    /// By default, the machine's available parallelism.
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = Some(workers);
        self
    }

    /// Sets how many submitted tasks may wait for a worker before
    /// [`Pool::submit`] blocks. By default four per worker.
    pub fn queue_bound(mut self, bound: usize) -> Self {
        self.queue_bound = Some(bound);
        self
    }

    /// Sets the limits of tasks that have none of their own. By default
    /// [`Limits::default()`].
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Grants these capabilities to every task, before the task's own. By
    /// default nothing is granted.
    pub fn capabilities(mut self, caps: Capabilities) -> Self {
        self.caps = caps;
        self
    }

    /// Shares `object` with every task of the pool under `name`, as
    /// [`Task::share`] does for one (a task's own grant of that name wins):
    /// then `map` and `map_unordered`, which take arguments rather than
    /// tasks, can share too.
    ///
    /// ```
    /// # let module = wasmproc::Runtime::builder().no_cache().build()?
    /// #     .load_bytes("m.wat", b"(module)")?;
    /// let counts = wasmproc::SharedRegion::new(64)?;
    /// let pool = wasmproc::Pool::builder(&module).share("counts", &counts).build()?;
    /// # drop(pool);
    /// # Ok::<(), wasmproc::Error>(())
    /// ```
    ///
    /// A name that is not 1 to 128 of `[A-Za-z0-9_.-]`, or is shared twice,
    /// makes [`build`](PoolBuilder::build) fail with `BadInvocation`.
    pub fn share(mut self, name: &str, object: &impl share::Shared) -> Self {
        if let Err(refused) = self.grants.add(name, object.grant()) {
            self.refused.get_or_insert(refused.into_message());
        }
        self
    }

    /// Gives every task without a pipe of its own this end of a pipe: the
    /// tasks all talk to whoever holds the other end (progress from a whole
    /// map, say). The other end's `recv` ends once the pool and its tasks
    /// are gone.
    pub fn pipe(mut self, end: PipeEnd) -> Self {
        self.grants.pipe = Some(end);
        self
    }

    /// Runs the module's initializer `name` with `arg` once, when the pool
    /// is built, and starts every task from the state it leaves: the
    /// `multiprocessing` spelling (`Pool(initializer=…, initargs=…)`) of
    /// [`Module::initialize`]. The initializer gets the pool's
    /// capabilities and limits; [`initializer_with`] sets its own.
    ///
    /// Unlike `multiprocessing`, it runs once, not once per worker: worker
    /// processes map the snapshot from the cache.
    ///
    /// [`initializer_with`]: PoolBuilder::initializer_with
    pub fn initializer<A: serde::Serialize + ?Sized>(mut self, name: &str, arg: &A) -> Self {
        self.initializer = Some(Initializer::call(name, arg));
        self
    }

    /// As [`initializer`](PoolBuilder::initializer), with an
    /// [`Initializer`] of its own grants and limits (the pool's
    /// capabilities come first, as for tasks; its limits apply when the
    /// initializer sets none).
    pub fn initializer_with(mut self, init: Initializer) -> Self {
        self.initializer = Some(Ok(init));
        self
    }

    /// Chooses where workers run. By default [`Isolation::Thread`].
    pub fn isolation(mut self, isolation: Isolation) -> Self {
        self.isolation = isolation;
        self
    }

    /// Cancels every queued and running task of the pool when `token` is
    /// cancelled (by a Ctrl-C handler, say), as [`Pool::cancel_all`] does.
    /// By default only the pool itself cancels its tasks.
    pub fn cancel_on(mut self, token: &CancelToken) -> Self {
        self.cancel = token.clone();
        self
    }

    /// Starts the workers.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::BadInvocation`] for zero workers or an invalid default
    /// limit, [`ErrorKind::Setup`] when a worker thread cannot start; the
    /// errors of [`Module::initialize_with`] when the initializer fails.
    pub fn build(mut self) -> Result<Pool, Error> {
        let workers = self
            .workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
        if workers == 0 {
            return Err(Error::new(
                ErrorKind::BadInvocation,
                "a pool needs at least one worker",
            ));
        }
        self.limits.validate()?;
        if let Some(refused) = self.refused {
            return Err(Error::new(ErrorKind::BadInvocation, refused));
        }
        if let Isolation::Process(_) = self.isolation {
            process::refuse_in_a_worker()?;
        }
        if let Some(init) = self.initializer.take() {
            let mut init = init?;
            let mut caps = self.caps.clone();
            caps.dirs.append(&mut init.caps.dirs);
            caps.env.append(&mut init.caps.env);
            init.caps = caps;
            init.limits.get_or_insert_with(|| self.limits.clone());
            self.module = self.module.initialize_with_cancel(&init, &self.cancel)?;
        }
        let queue_bound = self.queue_bound.unwrap_or(4 * workers);
        let (jobs, queue) = crossbeam_channel::bounded::<Job>(queue_bound);
        let shared = Arc::new(Shared {
            module: self.module,
            limits: self.limits,
            caps: self.caps,
            grants: self.grants,
            cancel_all: Mutex::new(self.cancel.child()),
            cancel_root: self.cancel,
        });
        let threads = Workers::start(shared.module.clone(), self.isolation, queue, workers)?;
        Ok(Pool {
            shared,
            jobs: Mutex::new(Some(jobs)),
            threads,
            workers,
            queue_bound,
        })
    }
}

/// N workers running tasks of one module, each task in a fresh instance:
/// `multiprocessing.Pool` with sandboxed Wasm workers.
///
/// ```
/// use wasmproc::{ExitStatus, Pool, Runtime, Task};
///
/// # const ECHO: &str = r#"(module
/// #   (import "wasmproc_v1" "input_len" (func $len (result i32)))
/// #   (import "wasmproc_v1" "input_read" (func $read (param i32)))
/// #   (import "wasmproc_v1" "output_write" (func $write (param i32 i32)))
/// #   (memory (export "memory") 1)
/// #   (func (export "wasmproc_task:echo") (result i32)
/// #     (call $read (i32.const 0))
/// #     (call $write (i32.const 0) (call $len))
/// #     (i32.const 0))
/// #   (func (export "wasmproc_task:spin") (result i32)
/// #     (loop br 0)
/// #     (i32.const 0)))"#;
/// // A module whose task `echo` answers with its argument and whose task
/// // `spin` never ends (see the crate docs).
/// let runtime = Runtime::builder().no_cache().build()?;
/// let module = runtime.load_bytes("echo.wat", ECHO.as_bytes())?;
/// let pool = Pool::builder(&module).workers(4).build()?;
///
/// // One task, waited for later (`apply_async`).
/// let handle = pool.submit(Task::call("echo", "hello")?)?;
///
/// // Many, results in input order, streamed (`imap`).
/// let echoed: Vec<u64> = pool.map("echo", 0..1000u64).map(|o| o.decode().unwrap()).collect();
///
/// // As they end, each with its input's index (`imap_unordered`).
/// let mut seen: Vec<usize> = pool.map_unordered("echo", 0..10u64).map(|(i, _)| i).collect();
/// seen.sort();
///
/// assert_eq!(handle.wait().decode::<String>()?, "hello");
/// assert_eq!(echoed[999], 999);
/// assert_eq!(seen, (0..10).collect::<Vec<_>>());
///
/// // A task is cancelled before it starts, or within milliseconds after.
/// let one_worker = Pool::builder(&module).workers(1).build()?;
/// let running = one_worker.submit(Task::call("spin", &())?)?;
/// let queued = one_worker.submit(Task::call("echo", &1)?)?;
/// queued.cancel();
/// running.cancel();
/// assert_eq!(queued.wait().status, ExitStatus::Cancelled);
/// assert_eq!(running.wait().status, ExitStatus::Cancelled);
/// # Ok::<(), wasmproc::Error>(())
/// ```
///
/// # Guarantees
///
/// - Every submitted task ends in exactly one [`Outcome`], whatever its
///   guest does: traps, limits, panics, output floods and host panics each
///   end that task with its status, and the worker goes on.
/// - Queues are bounded: `submit` waits when the queue is full, and `map`
///   keeps a bounded window of tasks in flight, pulling its inputs lazily.
/// - No lock is held across a guest call.
///
/// # Shutting down
///
/// [`Pool::close`] stops new submissions; queued tasks still run.
/// [`Pool::join`] closes, then waits until every queued and running task has
/// ended and the worker threads have exited. [`Pool::shutdown`] with
/// [`Shutdown::Cancel`] cancels what is queued or running first (each such
/// task ends `Cancelled`). Dropping a pool shuts it down with
/// `Shutdown::Cancel` and joins its threads: no thread outlives the pool.
pub struct Pool {
    shared: Arc<Shared>,
    /// `None` once the pool is closed.
    jobs: Mutex<Option<Sender<Job>>>,
    threads: Workers,
    workers: usize,
    queue_bound: usize,
}

struct Shared {
    module: Module,
    limits: Limits,
    caps: Capabilities,
    grants: Grants,
    /// The parent of every task's cancel token; replaced after
    /// [`Pool::cancel_all`] so that later tasks run.
    cancel_all: Mutex<CancelToken>,
    /// The token `cancel_all` descends from ([`PoolBuilder::cancel_on`]).
    cancel_root: CancelToken,
}

impl Pool {
    /// A builder for a pool running tasks of `module`.
    pub fn builder(module: &Module) -> PoolBuilder {
        PoolBuilder {
            module: module.clone(),
            workers: None,
            queue_bound: None,
            limits: Limits::default(),
            caps: Capabilities::default(),
            grants: Grants::default(),
            refused: None,
            initializer: None,
            isolation: Isolation::default(),
            cancel: CancelToken::new(),
        }
    }

    /// The number of workers.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// The process ids of the live worker processes, with process
    /// isolation (empty with threads). A worker whose process died shows
    /// the new one once it has started.
    pub fn worker_pids(&self) -> Vec<u32> {
        self.threads.pids()
    }

    /// Queues a task; the handle waits for, or cancels, it. Blocks while the
    /// queue is full.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::PoolClosed`] after [`close`](Pool::close),
    /// [`join`](Pool::join) or [`shutdown`](Pool::shutdown).
    pub fn submit(&self, task: Task) -> Result<TaskHandle, Error> {
        let task = task.with_defaults(&self.shared.limits, &self.shared.caps, &self.shared.grants);
        let cancel = self.cancel_parent().child();
        let state = Arc::new(HandleState::queued(cancel.clone()));
        let job = Job::single(task, Reply::Handle(Arc::clone(&state)), cancel);
        self.enqueue(job)?;
        Ok(TaskHandle::new(state))
    }

    /// Queues a task and calls `callback` with its outcome when it ends
    /// (`apply_async(callback=…, error_callback=…)`: look at the outcome's
    /// status). The callback runs on the pool thread that ends the task, so
    /// it must be quick. Also returns the handle, to wait, await or cancel.
    ///
    /// # Errors
    ///
    /// As [`submit`](Pool::submit); the callback is then never called.
    pub fn submit_with_callback(
        &self,
        task: Task,
        callback: impl FnOnce(&Outcome) + Send + 'static,
    ) -> Result<TaskHandle, Error> {
        let handle = self.submit(task)?;
        handle.on_done(callback);
        Ok(handle)
    }

    /// Queues a task whose outcome goes to `then` (called on the thread
    /// that ends it, so it must be quick); returns the task's cancel token.
    /// Blocks while the queue is full.
    ///
    /// # Errors
    ///
    /// As [`submit`](Pool::submit); `then` still gets the task's outcome.
    pub(crate) fn submit_then(
        &self,
        task: Task,
        then: impl FnOnce(Outcome) + Send + 'static,
    ) -> Result<CancelToken, Error> {
        let task = task.with_defaults(&self.shared.limits, &self.shared.caps, &self.shared.grants);
        let cancel = self.cancel_parent().child();
        let job = Job::single(task, Reply::Call(Box::new(then)), cancel.clone());
        self.enqueue(job)?;
        Ok(cancel)
    }

    /// Runs the typed task `name` on each argument, yielding outcomes in
    /// input order as they become available (`Pool.imap`).
    ///
    /// Arguments are pulled lazily and a bounded window of tasks is in
    /// flight, so an endless input streams in constant memory. An argument
    /// that cannot be serialized yields a `BadInvocation` outcome in its
    /// place. Dropping the iterator cancels the tasks still in flight.
    pub fn map<'p, A, I>(
        &'p self,
        name: &str,
        args: I,
    ) -> MapResults<'p, impl Iterator<Item = Task> + use<A, I>>
    where
        A: Serialize,
        I: IntoIterator<Item = A>,
    {
        self.map_tasks(calls(name, args))
    }

    /// As [`map`](Pool::map), yielding `(input index, outcome)` in the order
    /// tasks end (`Pool.imap_unordered`).
    pub fn map_unordered<'p, A, I>(
        &'p self,
        name: &str,
        args: I,
    ) -> UnorderedResults<'p, impl Iterator<Item = Task> + use<A, I>>
    where
        A: Serialize,
        I: IntoIterator<Item = A>,
    {
        self.map_tasks_unordered(calls(name, args))
    }

    /// Runs any tasks (commands, typed tasks, mixed), yielding outcomes in
    /// input order.
    pub fn map_tasks<I: IntoIterator<Item = Task>>(&self, tasks: I) -> MapResults<'_, I::IntoIter> {
        MapResults::new(self, tasks.into_iter())
    }

    /// Runs any tasks, yielding `(input index, outcome)` as they end.
    pub fn map_tasks_unordered<I: IntoIterator<Item = Task>>(
        &self,
        tasks: I,
    ) -> UnorderedResults<'_, I::IntoIter> {
        UnorderedResults::new(self, tasks.into_iter())
    }

    /// Runs tasks as a producer sends them, yielding outcomes in input order,
    /// each as soon as its turn comes (`Pool.imap` over a generator that
    /// waits): unlike [`map_tasks`](Pool::map_tasks), a producer that is
    /// slow to give the next task never holds up the results of the ones
    /// before it.
    ///
    /// Send from any thread; dropping every [`TaskSender`] ends the stream,
    /// and dropping the results cancels what is in flight and makes `send`
    /// fail.
    ///
    /// ```
    /// # use wasmproc::{Pool, Runtime, Task};
    /// # const ECHO: &str = r#"(module
    /// #   (import "wasmproc_v1" "input_len" (func $len (result i32)))
    /// #   (import "wasmproc_v1" "input_read" (func $read (param i32)))
    /// #   (import "wasmproc_v1" "output_write" (func $write (param i32 i32)))
    /// #   (memory (export "memory") 1)
    /// #   (func (export "wasmproc_task:echo") (result i32)
    /// #     (call $read (i32.const 0))
    /// #     (call $write (i32.const 0) (call $len))
    /// #     (i32.const 0)))"#;
    /// # let runtime = Runtime::builder().no_cache().build()?;
    /// # let module = runtime.load_bytes("echo.wat", ECHO.as_bytes())?;
    /// let pool = Pool::builder(&module).workers(2).build()?;
    /// let (tasks, outcomes) = pool.map_stream();
    /// std::thread::spawn(move || {
    ///     for n in 0..3u32 {
    ///         // e.g. one line at a time from a socket or a `tail -f`
    ///         tasks.send(Task::call("echo", &n).unwrap()).unwrap();
    ///     }
    /// });
    /// let echoed: Vec<u32> = outcomes.map(|o| o.decode().unwrap()).collect();
    /// assert_eq!(echoed, [0, 1, 2]);
    /// # Ok::<(), wasmproc::Error>(())
    /// ```
    pub fn map_stream(&self) -> (TaskSender, MapResults<'_, TaskStream>) {
        let (sender, stream) = map::task_stream(self.window());
        (sender, MapResults::new(self, stream))
    }

    /// As [`map_stream`](Pool::map_stream), yielding `(input index,
    /// outcome)` in the order tasks end.
    pub fn map_stream_unordered(&self) -> (TaskSender, UnorderedResults<'_, TaskStream>) {
        let (sender, stream) = map::task_stream(self.window());
        (sender, UnorderedResults::new(self, stream))
    }

    /// Cancels every queued and running task; each ends `Cancelled`. Tasks
    /// submitted afterwards run normally.
    pub fn cancel_all(&self) {
        let mut parent = self.shared.cancel_all.lock();
        parent.cancel();
        *parent = self.shared.cancel_root.child();
    }

    /// Stops accepting tasks; queued ones still run. Idempotent.
    pub fn close(&self) {
        self.jobs.lock().take();
    }

    /// Closes the pool and waits until every queued and running task has
    /// ended and every worker thread has exited.
    pub fn join(&self) {
        self.close();
        self.threads.join();
    }

    /// Closes the pool, draining or cancelling what is left, and joins the
    /// workers.
    pub fn shutdown(&self, how: Shutdown) {
        self.close();
        if how == Shutdown::Cancel {
            self.cancel_all();
        }
        self.join();
    }

    fn cancel_parent(&self) -> CancelToken {
        self.shared.cancel_all.lock().clone()
    }

    /// How many tasks a map keeps in flight per chunk size.
    fn window(&self) -> usize {
        self.queue_bound.max(8 * self.workers)
    }

    /// Whether queueing a job now would wait for room. A queue of no
    /// room (`queue_bound(0)`) hands each job straight to a worker: it is
    /// never "full" in that sense, only waited on.
    fn queue_is_full(&self) -> bool {
        self.queue_bound > 0 && self.jobs.lock().as_ref().is_some_and(Sender::is_full)
    }

    /// Queues a job, blocking while the queue is full. The lock is released
    /// before blocking, so `close` is never held up by a full queue.
    ///
    /// A job that cannot be queued still answers each of its tasks, so that
    /// whoever counts outcomes gets one per task.
    fn enqueue(&self, job: Job) -> Result<(), Error> {
        let jobs = self.jobs.lock().clone();
        let refuse = |job: Job, status: ExitStatus, why: &str| {
            for (reply, task) in job.replies.into_iter().zip(&job.tasks) {
                task.hang_up();
                reply.send(Outcome::failed(status, why));
            }
            Err(Error::new(
                ErrorKind::PoolClosed,
                "the pool is closed: it takes no new tasks",
            ))
        };
        let Some(jobs) = jobs else {
            return refuse(
                job,
                ExitStatus::Cancelled,
                "the pool was closed before the task was queued",
            );
        };
        let sent = match jobs.try_send(job) {
            Ok(()) => Ok(()),
            // No room: a worker may be missing, not only busy. A queue of
            // no room (`queue_bound(0)`) always looks empty, so the workers
            // are told that a job waits, before this thread waits with it.
            Err(crossbeam_channel::TrySendError::Full(job)) => {
                self.threads.grow(true);
                jobs.send(job).map_err(|error| error.0)
            }
            Err(crossbeam_channel::TrySendError::Disconnected(job)) => Err(job),
        };
        match sent {
            Ok(()) => {
                self.threads.grow(false);
                Ok(())
            }
            // Every worker is gone (only possible after a bug in the pool).
            Err(job) => refuse(job, ExitStatus::WorkerLost, "the pool's workers are gone"),
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shutdown(Shutdown::Cancel);
    }
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("module", &self.shared.module.name())
            .field("workers", &self.workers)
            .field("queue_bound", &self.queue_bound)
            .finish()
    }
}

/// Typed-task calls of `name`, one per argument; an argument that does not
/// serialize becomes a rejected task in its place.
pub(crate) fn calls<A, I>(name: &str, args: I) -> impl Iterator<Item = Task> + use<A, I>
where
    A: Serialize,
    I: IntoIterator<Item = A>,
{
    let name = name.to_owned();
    args.into_iter().map(move |arg| {
        Task::call(&name, &arg).unwrap_or_else(|error| Task::rejected(error.to_string()))
    })
}
