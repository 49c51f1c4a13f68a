//! `wasmproc serve`'s flags.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::common::{CapabilityArgs, InitArgs, InvokeArgs, LimitArgs, LoadArgs};
use super::values::parse_duration;

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Where to listen: HOST:PORT (port 0 picks a free one, printed at
    /// start), or the path of a Unix socket (Unix only).
    #[arg(long, value_name = "HOST:PORT|PATH")]
    pub(crate) listen: String,

    /// Serve with the SDK handler (or task) NAME (by default: `_start`,
    /// else the module's only task).
    #[arg(long, value_name = "NAME")]
    pub(crate) task: Option<String>,

    #[command(flatten)]
    pub(crate) invoke: InvokeArgs,

    #[command(flatten)]
    pub(crate) init: InitArgs,

    /// Serve at most N connections at once; more wait to be accepted in the
    /// kernel's backlog (1024; past it the system refuses or drops new
    /// ones).
    #[arg(long, value_name = "N", default_value_t = wasmproc::serve::DEFAULT_MAX_CONNECTIONS)]
    pub(crate) max_connections: usize,

    /// Let one peer (an IP address; for IPv6 a /64) have at most N
    /// connections open at once; its others are closed as soon as they
    /// are accepted, logged `cancelled` (`0` for no cap: behind a proxy or
    /// a load tester on one host, every connection comes from one address).
    #[arg(long, value_name = "N", default_value_t = wasmproc::serve::DEFAULT_MAX_PER_PEER)]
    pub(crate) max_per_peer: usize,

    /// End a connection on which no byte moved either way this long after
    /// it was accepted: the client sent nothing and the handler wrote
    /// nothing (`0` for never). Logged as `timed_out`.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "5s")]
    pub(crate) first_byte_timeout: Duration,

    /// End a connection on which no byte moved either way for this long
    /// (`0` for never). Logged as `timed_out`.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "60s")]
    pub(crate) idle_timeout: Duration,

    /// With --isolation process: keep N worker processes however idle
    /// (they start with the server); the others start when connections
    /// need them, up to --max-connections.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub(crate) min_workers: usize,

    /// With --isolation process: once no moment in this long needed every
    /// worker process, idle ones stop, down to --min-workers (`0` for
    /// never).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "30s")]
    pub(crate) worker_idle_timeout: Duration,

    /// After Ctrl-C or SIGTERM, how long connections in flight may finish
    /// before they are ended.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "10s")]
    pub(crate) grace: Duration,

    /// Append the per-connection NDJSON lines to FILE instead of stderr.
    #[arg(long, value_name = "FILE")]
    pub(crate) log: Option<PathBuf>,

    #[command(flatten)]
    pub(crate) limits: LimitArgs,

    #[command(flatten)]
    pub(crate) load: LoadArgs,

    #[command(flatten)]
    pub(crate) caps: CapabilityArgs,

    /// The module file.
    #[arg(value_name = "MODULE")]
    pub(crate) module: PathBuf,

    /// The guest's arguments, after `--` (as an inetd server's argv).
    #[arg(value_name = "GUEST_ARGS", last = true)]
    pub(crate) argv: Vec<String>,
}
