//! `wasmproc map`'s flags.

use std::path::PathBuf;

use clap::Args;

use super::common::{CapabilityArgs, InitArgs, InvokeArgs, LimitArgs, LoadArgs, NatsArgs};

#[derive(Debug, Args)]
pub(crate) struct MapArgs {
    /// Run the SDK task NAME (by default: `_start`, else the module's only
    /// task).
    #[arg(long, value_name = "NAME")]
    pub(crate) task: Option<String>,

    #[command(flatten)]
    pub(crate) invoke: InvokeArgs,

    #[command(flatten)]
    pub(crate) init: InitArgs,

    /// Run N tasks at once (default: the number of CPUs).
    #[arg(short = 'j', long = "jobs", value_name = "N")]
    pub(crate) jobs: Option<usize>,

    /// Write results as tasks end, not in input order.
    #[arg(long)]
    pub(crate) unordered: bool,

    /// Write only the answers: a typed task's result as one JSON line, a
    /// command's stdout as it wrote it, in input order. A failed task
    /// writes nothing on stdout; its line, status and message go to
    /// stderr, and the exit status is still 123.
    #[arg(long)]
    pub(crate) results_only: bool,

    /// For each task that does not exit 0, write a bundle of everything it
    /// ran with into DIR, for `wasmproc replay`.
    #[arg(long, value_name = "DIR")]
    pub(crate) replay_dir: Option<PathBuf>,

    /// Run K consecutive inputs of an SDK task in one instance: faster for
    /// tiny tasks, at the price of isolation between them.
    #[arg(long, value_name = "K", default_value_t = 1)]
    pub(crate) chunksize: usize,

    #[command(flatten)]
    pub(crate) limits: LimitArgs,

    #[command(flatten)]
    pub(crate) load: LoadArgs,

    #[command(flatten)]
    pub(crate) caps: CapabilityArgs,

    #[command(flatten)]
    pub(crate) nats: NatsArgs,

    /// The module file.
    #[arg(value_name = "MODULE")]
    pub(crate) module: PathBuf,

    /// The NDJSON input file, or `-` for stdin (the default).
    #[arg(value_name = "INPUT")]
    pub(crate) input: Option<PathBuf>,
}
