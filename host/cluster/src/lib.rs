//! wasmproc beyond one machine: the same sandboxed tasks, run by many
//! hosts that pull them from a NATS JetStream server.
//!
//! - A [`WorkerHost`] (`wasmproc worker --nats URL`) pulls task batches
//!   while it has free workers, fetches each module once from JetStream's
//!   object store by its SHA-256, runs the tasks on a local
//!   [`wasmproc::Pool`] (threads or worker processes, the same limits and
//!   statuses), stores the outcomes and acknowledges.
//! - A [`Cluster`] (`wasmproc map --nats URL …`) submits tasks and reads one
//!   outcome per task back, through the same [`wasmproc::Executor`] interface
//!   a local pool has.
//!
//! Hosts are stateless: start more to go faster, stop or lose one and its
//! unfinished batches go to the others after the ack wait (one value for
//! every host; a host that asks for another changes it for all). A
//! submitter hears from the hosts which of its tasks they hold, and says
//! when one of them stops answering ([`ClusterEvent`]). A worker host
//! grants only the capabilities its own [`Policy`] allows, and caps the
//! submitter's limits with its own.
//!
//! ```no_run
//! use wasmproc::Executor;
//! use wasmproc_cluster::{Cluster, NatsOptions};
//!
//! let cluster = Cluster::connect(NatsOptions::new("nats://127.0.0.1:4222"))?;
//! let squares = cluster.executor(&cluster.upload_file("squares.wasm")?);
//! let squares: Vec<u64> = squares
//!     .map_args("square", 0..1000u64)
//!     .map(|(_, outcome)| outcome.decode())
//!     .collect::<Result<_, _>>()?;
//! # Ok::<(), wasmproc::Error>(())
//! ```

mod client;
mod error;
mod events;
mod held;
mod job;
mod link;
mod names;
mod poison;
mod policy;
mod publish;
mod wire;
mod worker;

pub use client::{Cluster, ClusterExecutor, HostsSeen, RemoteModule};
pub use events::ClusterEvent;
pub use link::NatsOptions;
pub use policy::Policy;
pub use worker::{
    MIN_ACK_WAIT, StopHandle, WorkerEvent, WorkerHost, WorkerHostBuilder, WorkerSummary,
};
