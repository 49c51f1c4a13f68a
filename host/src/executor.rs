//! [`Executor`]: one interface over every place tasks run, so that a front
//! end (the `wasmproc` binary, the Python package) drives a local [`Pool`]
//! and a cluster of hosts (`wasmproc-cluster`) through the same calls.
//!
//! A back end implements three things: submit one task, a streamed map with
//! its [`MapOptions`], and cancel everything. The rest (maps over an
//! iterator, typed maps, a blocking run) follow from those, the same for
//! every back end.

use std::sync::Arc;

use serde::Serialize;

use crate::cancel::CancelToken;
use crate::error::Error;
use crate::outcome::Outcome;
use crate::pool::{Pool, TaskHandle, TaskSender, calls};
use crate::task::Task;

/// What a map asks of its back end besides its tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct MapOptions {
    /// Outcomes as tasks end (`imap_unordered`) rather than in input order.
    pub unordered: bool,
    /// How many tasks one instance runs in a row (`chunksize`), where the
    /// back end runs instances itself; a cluster's hosts choose their own.
    pub chunksize: usize,
}

impl Default for MapOptions {
    fn default() -> Self {
        MapOptions {
            unordered: false,
            chunksize: 1,
        }
    }
}

impl MapOptions {
    /// Outcomes in input order, one task per instance.
    pub fn new() -> Self {
        Self::default()
    }

    /// Outcomes as tasks end.
    pub fn unordered(mut self, unordered: bool) -> Self {
        self.unordered = unordered;
        self
    }

    /// Sets the chunk size (see [`MapOptions::chunksize`]).
    pub fn chunksize(mut self, chunksize: usize) -> Self {
        self.chunksize = chunksize;
        self
    }
}

/// What a map's transform does with each outcome, where the task ended.
pub type Transform<T> = dyn Fn(usize, Outcome) -> T + Send + Sync;

/// A map's results, from any back end: `(input index, value)`, in input
/// order unless the map was [`unordered`](MapOptions::unordered). The
/// iterator ends once every task sent has its result. Dropping it cancels
/// what is still running.
pub struct Results<'e, T> {
    items: Box<dyn Iterator<Item = (usize, T)> + Send + 'e>,
}

impl<'e, T> Results<'e, T> {
    /// Results read from `items`: for back ends.
    pub fn new(items: impl Iterator<Item = (usize, T)> + Send + 'e) -> Self {
        Results {
            items: Box::new(items),
        }
    }
}

impl<T> Iterator for Results<'_, T> {
    type Item = (usize, T);

    fn next(&mut self) -> Option<(usize, T)> {
        self.items.next()
    }
}

impl<T> std::fmt::Debug for Results<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Results")
    }
}

/// Somewhere tasks run: a local [`Pool`], or a cluster of hosts
/// (`wasmproc_cluster::ClusterExecutor`). Every task ends in exactly one
/// outcome whichever it is.
///
/// ```
/// # use wasmproc::{Executor, Pool, Runtime, Task};
/// # let runtime = Runtime::builder().no_cache().build()?;
/// # let module = runtime.load_bytes("t.wat", br#"(module
/// #   (import "wasmproc_v1" "input_len" (func $len (result i32)))
/// #   (import "wasmproc_v1" "input_read" (func $read (param i32)))
/// #   (import "wasmproc_v1" "output_write" (func $write (param i32 i32)))
/// #   (memory (export "memory") 1)
/// #   (func (export "wasmproc_task:echo") (result i32)
/// #     (call $read (i32.const 0)) (call $write (i32.const 0) (call $len)) (i32.const 0)))"#)?;
/// /// Sums the echoes wherever they run.
/// fn total(executor: &impl Executor) -> u64 {
///     executor
///         .map_args("echo", [1u64, 2, 3])
///         .map(|(_, outcome)| outcome.decode::<u64>().unwrap())
///         .sum()
/// }
/// let pool = Pool::builder(&module).workers(2).build()?;
/// assert_eq!(total(&pool), 6);
/// # Ok::<(), wasmproc::Error>(())
/// ```
pub trait Executor: Send + Sync {
    /// Submits one task; its handle waits for its outcome or cancels it.
    ///
    /// # Errors
    ///
    /// When the back end takes no more tasks ([`ErrorKind::PoolClosed`](crate::ErrorKind::PoolClosed)).
    fn submit(&self, task: Task) -> Result<TaskHandle, Error>;

    /// A map fed from elsewhere: tasks sent with the [`TaskSender`] (from
    /// any thread) run as `options` says, `transform` makes each outcome
    /// into the value the results yield (on the thread that ended the task,
    /// where the back end has one), and the results end once every sender is
    /// dropped and every task sent has ended.
    fn map_stream_with<T: Send + 'static>(
        &self,
        options: MapOptions,
        transform: Box<Transform<T>>,
    ) -> (TaskSender, Results<'_, T>);

    /// Cancels every task queued or running here; each ends `Cancelled`.
    /// Tasks submitted afterwards run normally.
    fn cancel_all(&self);

    /// [`map_stream_with`](Executor::map_stream_with), outcomes as they
    /// are, in input order.
    fn map_stream(&self) -> (TaskSender, Results<'_, Outcome>) {
        self.map_stream_with(MapOptions::new(), Box::new(|_, outcome| outcome))
    }

    /// Runs each task; `(input index, outcome)` in input order. The tasks
    /// are sent from a thread of their own as the map has room (if the
    /// system refuses that thread, none is sent and the results are empty;
    /// a warning says why).
    fn map_tasks<I>(&self, tasks: I) -> Results<'_, Outcome>
    where
        I: IntoIterator<Item = Task>,
        I::IntoIter: Send + 'static,
    {
        let (sender, results) = self.map_stream();
        let tasks = tasks.into_iter();
        let feeding = std::thread::Builder::new()
            .name("wasmproc-map-feed".into())
            .spawn(move || {
                for task in tasks {
                    // The results were dropped: nobody wants the rest.
                    if sender.send(task).is_err() {
                        break;
                    }
                }
            });
        // Without the thread no task was sent: the results end at once,
        // empty, rather than the program panicking.
        if let Err(error) = feeding {
            tracing::warn!(target: "wasmproc::pool", "cannot start a thread to feed a map: {error}");
        }
        results
    }

    /// Runs the typed task `name` on each argument (`Pool.imap`); an
    /// argument that cannot be serialized gets a `BadInvocation` outcome in
    /// its place.
    fn map_args<A, I>(&self, name: &str, args: I) -> Results<'_, Outcome>
    where
        A: Serialize + 'static,
        I: IntoIterator<Item = A> + 'static,
        I::IntoIter: Send + 'static,
    {
        self.map_tasks(calls(name, args))
    }

    /// Runs one task to its outcome, waiting here; cancelling `cancel`
    /// cancels the task (its outcome is then `Cancelled`, unless it ended
    /// first).
    fn run(&self, task: Task, cancel: &CancelToken) -> Outcome {
        let handle = match self.submit(task) {
            Ok(handle) => handle,
            Err(error) => return Outcome::from(error),
        };
        // Woken by the end of the task or by the cancel, not by a clock.
        let (wake, woken) = crossbeam_channel::bounded(2);
        let done = wake.clone();
        handle.on_done(move |_| {
            let _ = done.try_send(());
        });
        let _watch = cancel.watch(&wake);
        let _ = woken.recv();
        if !handle.is_finished() {
            handle.cancel();
        }
        handle.into_outcome()
    }
}

impl Executor for Pool {
    fn submit(&self, task: Task) -> Result<TaskHandle, Error> {
        Pool::submit(self, task)
    }

    fn map_stream_with<T: Send + 'static>(
        &self,
        options: MapOptions,
        transform: Box<Transform<T>>,
    ) -> (TaskSender, Results<'_, T>) {
        let transform: Arc<Transform<T>> = Arc::from(transform);
        let apply = move |index: usize, outcome: Outcome| transform(index, outcome);
        if options.unordered {
            let (sender, results) = Pool::map_stream_unordered(self);
            let results = results.chunksize(options.chunksize).transform(apply);
            (sender, Results::new(results))
        } else {
            let (sender, results) = Pool::map_stream(self);
            let results = results.chunksize(options.chunksize).transform(apply);
            (sender, Results::new(results.enumerate()))
        }
    }

    fn cancel_all(&self) {
        Pool::cancel_all(self);
    }
}
