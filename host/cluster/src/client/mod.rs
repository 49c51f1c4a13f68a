//! The submitting side: [`Cluster`] uploads modules and runs tasks on
//! whatever worker hosts are pulling, through the library's one interface
//! over back ends (`executor.rs`); `submitted.rs` is one job's sending and
//! receiving ends.

mod executor;
mod streams;
mod submitted;

use std::path::Path;
use std::sync::Arc;

use async_nats::jetstream::context::ConsumerInfoErrorKind;
use tokio::sync::mpsc;
use wasmproc::{Error, ErrorKind, Limits};

use crate::events::{ClusterEvent, Listener};
use crate::job::{self, JobModule};
use crate::link::{Link, NatsOptions};
use crate::names;
use crate::publish::message_budget;
use crate::worker::hex_sha256;

pub use executor::ClusterExecutor;
pub(crate) use submitted::Submitted;

/// A client of a wasmproc cluster: submits tasks to the worker hosts
/// pulling from the same NATS server, and reads back one outcome per task.
///
/// Tasks run through [`Cluster::executor`], a [`wasmproc::Executor`] as a
/// local [`wasmproc::Pool`] is: `submit`, `map_args`, `map_tasks`,
/// `map_stream_with`, `run`. Tasks carry their arguments, argv, stdin
/// bytes, capabilities and limits; the host decides which capabilities it
/// grants and caps the limits ([`Policy`](crate::Policy)). Cheap to clone
/// (one connection).
///
/// Every task ends in exactly one outcome, as on a local pool: a task run
/// twice (its host died after running it) is reported once, a task whose
/// hosts keep dying ends `WorkerLost`, and if NATS stays unreachable
/// (two minutes) the unfinished tasks end `WorkerLost` with the reason.
///
/// The API blocks; call it from threads, not from inside an async runtime.
#[derive(Clone)]
pub struct Cluster {
    tokio: Arc<tokio::runtime::Runtime>,
    link: Link,
    listener: Listener,
}

/// The worker hosts' activity ([`Cluster::hosts`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HostsSeen {
    /// Free worker places asking for a batch now (each host has one per
    /// free worker).
    pub pulling: usize,
    /// Batches taken and not yet acknowledged: running.
    pub working: usize,
    /// Batches waiting for a host.
    pub queued: u64,
}

impl HostsSeen {
    /// Whether no host seems to be there: none asks for work, none works.
    pub fn none(&self) -> bool {
        self.pulling == 0 && self.working == 0
    }
}

/// A module in the cluster's module store, ready to run.
#[derive(Debug, Clone)]
pub struct RemoteModule {
    digest: String,
    name: String,
    limits: Option<Limits>,
}

impl RemoteModule {
    /// The module's SHA-256, hex: its name in the store.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// The module's file name, for messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The limits of tasks that set none of their own (still capped by each
    /// host).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = Some(limits);
        self
    }
}

impl Cluster {
    /// Connects to the NATS server of `options`.
    pub fn connect(options: NatsOptions) -> Result<Cluster, Error> {
        let tokio = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("wasmproc-nats")
            .enable_all()
            .build()
            .map_err(|error| {
                crate::error::cluster_error(format!(
                    "cannot start the NATS client's threads: {error}"
                ))
            })?;
        let link = tokio.block_on(Link::connect(&options))?;
        Ok(Cluster {
            tokio: Arc::new(tokio),
            link,
            listener: Listener::default(),
        })
    }

    /// Calls `f` for each [`ClusterEvent`] of this cluster's jobs, those
    /// running now included (in place of an earlier `f`). `f` runs on the
    /// cluster's NATS threads: it should be quick.
    pub fn on_event(&self, f: impl Fn(&ClusterEvent) + Send + Sync + 'static) {
        self.listener.set(Arc::new(f));
    }

    /// What the worker hosts are doing now, as JetStream sees it: for
    /// telling a user who waits that no host is there.
    pub fn hosts(&self) -> Result<HostsSeen, Error> {
        self.tokio.block_on(async {
            match self.link.tasks.consumer_info(names::WORKERS).await {
                Ok(info) => Ok(HostsSeen {
                    pulling: info.num_waiting,
                    working: info.num_ack_pending,
                    queued: info.num_pending,
                }),
                // No host has ever joined.
                Err(error)
                    if matches!(
                        error.kind(),
                        ConsumerInfoErrorKind::NotFound | ConsumerInfoErrorKind::StreamNotFound
                    ) =>
                {
                    Ok(HostsSeen::default())
                }
                Err(error) => Err(crate::error::nats_error(
                    "ask about the worker hosts",
                    error,
                )),
            }
        })
    }

    /// Puts a module in the module store (once: it is named by its
    /// SHA-256).
    pub fn upload(&self, name: &str, bytes: &[u8]) -> Result<RemoteModule, Error> {
        let digest = hex_sha256(bytes);
        self.tokio.block_on(async {
            if self.link.modules.info(&digest).await.is_err() {
                Link::write_object(&self.link.modules, &digest, bytes).await?;
            }
            Ok::<_, Error>(())
        })?;
        Ok(RemoteModule {
            digest,
            name: name.to_owned(),
            limits: None,
        })
    }

    /// Reads a module file and uploads it.
    pub fn upload_file(&self, path: impl AsRef<Path>) -> Result<RemoteModule, Error> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|error| {
            let kind = match error.kind() {
                std::io::ErrorKind::NotFound => ErrorKind::NotFound,
                _ => ErrorKind::CannotRun,
            };
            Error::new(
                kind,
                format!("cannot read the module `{}`: {error}", path.display()),
            )
        })?;
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |name| name.to_string_lossy().into_owned(),
        );
        self.upload(&name, &bytes)
    }

    /// Runs tasks of `module` on this cluster's worker hosts, through the
    /// library's one interface over back ends ([`wasmproc::Executor`]):
    /// `submit`, `map_args`, `map_tasks`, `map_stream_with`, `run`.
    pub fn executor(&self, module: &RemoteModule) -> ClusterExecutor {
        ClusterExecutor::new(self.clone(), module.clone())
    }

    /// Starts a job for `module` on the cluster's async side: its tasks go
    /// through the returned [`Submitted`].
    pub(crate) fn start(&self, module: &RemoteModule) -> Submitted {
        let id = names::new_job_id();
        let (commands, receiving) = mpsc::unbounded_channel();
        let (deliver, outcomes) = crossbeam_channel::unbounded();
        let job_module = JobModule {
            digest: module.digest.clone(),
            name: module.name.clone(),
        };
        self.tokio.spawn(job::drive(
            self.link.clone(),
            id,
            job_module,
            receiving,
            deliver,
            self.listener.clone(),
        ));
        Submitted::new(
            commands,
            outcomes,
            module.limits.clone(),
            message_budget(&self.link),
        )
    }

    /// The cluster's async runtime, for the waits of the blocking API.
    pub(crate) fn tokio(&self) -> &tokio::runtime::Runtime {
        &self.tokio
    }
}
