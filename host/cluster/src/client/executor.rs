//! [`ClusterExecutor`]: a cluster as a [`wasmproc::Executor`], the same
//! interface a local pool has.

use std::sync::{Arc, Mutex};

use wasmproc::{
    Executor, MapOptions, Results, Task, TaskHandle, TaskSender, TaskStream, Transform,
};

use super::streams;
use super::submitted::Outbox;
use super::{Cluster, RemoteModule};

/// How many hand-overs of tasks a map's sender may have waiting: the job's
/// own window bounds what is out; this only lets a producer run ahead.
const WAITING_HAND_OVERS: usize = 64;

/// Runs one module's tasks on a cluster's worker hosts
/// ([`Cluster::executor`]). Each map and each submitted task is a job of
/// its own; every task ends in exactly one outcome, as on a local pool.
///
/// ```no_run
/// use wasmproc::Executor;
/// use wasmproc_cluster::{Cluster, NatsOptions};
///
/// let cluster = Cluster::connect(NatsOptions::new("nats://127.0.0.1:4222"))?;
/// let squares = cluster.executor(&cluster.upload_file("squares.wasm")?);
/// let total: u64 = squares
///     .map_args("square", 0..1000u64)
///     .map(|(_, outcome)| outcome.decode::<u64>().unwrap())
///     .sum();
/// # Ok::<(), wasmproc::Error>(())
/// ```
#[derive(Clone)]
pub struct ClusterExecutor {
    cluster: Cluster,
    module: RemoteModule,
    /// The jobs that may still run, for `cancel_all`.
    jobs: Arc<Mutex<Vec<Arc<Outbox>>>>,
}

impl ClusterExecutor {
    pub(super) fn new(cluster: Cluster, module: RemoteModule) -> Self {
        ClusterExecutor {
            cluster,
            module,
            jobs: Arc::default(),
        }
    }

    /// The module this executor runs.
    pub fn module(&self) -> &RemoteModule {
        &self.module
    }

    /// Starts a job, remembered until it is over.
    fn start(&self) -> super::Submitted {
        let job = self.cluster.start(&self.module);
        let mut jobs = crate::poison::lock(&self.jobs);
        jobs.retain(|job| !job.is_over());
        jobs.push(job.outbox());
        job
    }
}

impl Executor for ClusterExecutor {
    /// Submits one task as a job of its own. A task's streams work as well
    /// as they can from afar: an inherited stdin (or a reader) is read
    /// here first, up to the task's `max_args`, and sent as bytes; output
    /// to be passed through (inherited, or a writer) comes back captured
    /// and is written out when the outcome arrives.
    fn submit(&self, task: Task) -> Result<TaskHandle, wasmproc::Error> {
        let job = self.start();
        let outbox = job.outbox();
        let (handle, completion) = TaskHandle::pending();
        // The handle's cancel withdraws the task: watched on the cluster's
        // async side, until the outcome is in.
        let cancel = completion.cancel_token().clone();
        let withdraw = Arc::clone(&outbox);
        let watch = self.cluster.tokio().spawn(async move {
            cancel.cancelled().await;
            withdraw.cancel();
        });
        std::thread::Builder::new()
            .name("wasmproc-cluster-task".into())
            .spawn(move || {
                let (task, passed) = streams::for_the_wire(task);
                outbox.send(vec![task]);
                outbox.close();
                let outcome = job.in_order().next().map(|(_, outcome)| outcome);
                watch.abort();
                if let Some(mut outcome) = outcome {
                    passed.write_out(&mut outcome);
                    completion.finish(outcome);
                }
                // Without an outcome the completion, dropped, reports the
                // task lost.
            })
            .map_err(|error| {
                wasmproc::Error::new(
                    wasmproc::ErrorKind::Setup,
                    format!("cannot start a thread to wait for the task: {error}"),
                )
            })?;
        Ok(handle)
    }

    fn map_stream_with<T: Send + 'static>(
        &self,
        options: MapOptions,
        transform: Box<Transform<T>>,
    ) -> (TaskSender, Results<'_, T>) {
        let job = self.start();
        let (sender, stream) = TaskStream::channel(WAITING_HAND_OVERS);
        let outbox = job.outbox();
        let closer = Arc::clone(&outbox);
        let feeding = std::thread::Builder::new()
            .name("wasmproc-cluster-feed".into())
            .spawn(move || feed(stream, &outbox));
        // Without the thread the stream is dropped, so sends fail
        // (`PoolClosed`) and the job, closed empty, ends its results.
        if feeding.is_err() {
            closer.close();
        }
        let results = if options.unordered {
            Results::new(
                job.when_they_end()
                    .map(move |(index, outcome)| (index, transform(index, outcome))),
            )
        } else {
            Results::new(
                job.in_order()
                    .map(move |(index, outcome)| (index, transform(index, outcome))),
            )
        };
        (sender, results)
    }

    fn cancel_all(&self) {
        let jobs = std::mem::take(&mut *crate::poison::lock(&self.jobs));
        for job in jobs {
            job.cancel();
        }
    }
}

/// Hands a map's tasks to its job as they are sent; the stream's end (every
/// sender dropped) closes the job.
fn feed(mut stream: TaskStream, outbox: &Outbox) {
    while let Some(tasks) = stream.recv() {
        if !outbox.send(tasks) {
            return;
        }
    }
    outbox.close();
}
