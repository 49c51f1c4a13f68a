//! `wasmproc worker`'s flags.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::common::{IsolationArg, LimitArgs, LoadArgs, NatsArgs};
use super::values::parse_duration;

#[derive(Debug, Args)]
// `--nats` is shared with `run` and `map`, whose help speaks of submitting:
// a host pulls tasks.
#[command(mut_arg("nats", |arg| arg.help(
    "Join the cluster of the NATS JetStream server at URL: pull its tasks, run them here, \
     send back the outcomes (e.g. `nats://127.0.0.1:4222`; `nats://user:pass@host`, \
     `nats://token@host` and `tls://host` work)"
)))]
pub(crate) struct WorkerArgs {
    #[command(flatten)]
    pub(crate) nats: NatsArgs,

    /// Run N tasks at once (default: the number of CPUs).
    #[arg(short = 'j', long = "jobs", value_name = "N")]
    pub(crate) jobs: Option<usize>,

    /// Let tasks mount DIR or a directory below it. Repeatable. Without
    /// it, no task gets a directory.
    #[arg(long = "allow-dir", value_name = "DIR")]
    pub(crate) allow_dirs: Vec<PathBuf>,

    /// Let tasks set the environment variable NAME. Repeatable.
    #[arg(long = "allow-env", value_name = "NAME")]
    pub(crate) allow_env: Vec<String>,

    /// How long a host may go silent about a task before the task goes to
    /// another host (hosts speak up every third of it while a task runs).
    /// One value for every host: given, it replaces the one in force for
    /// all of them; left out, the host takes the one in force (30s if it is
    /// the first).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) ack_wait: Option<Duration>,

    /// Start a task at most N times: a task whose hosts keep dying under it
    /// then ends `worker_lost` (139). Like --ack-wait, one value for every
    /// host, changed for all when given (3 if the first host leaves it out).
    #[arg(long, value_name = "N")]
    pub(crate) attempts: Option<u32>,

    /// The most a task may have here: --timeout, --fuel and --max-memory
    /// cap what submitters ask for (and apply when they ask for none).
    #[command(flatten)]
    pub(crate) limits: LimitArgs,

    #[command(flatten)]
    pub(crate) load: LoadArgs,

    /// Run workers as threads of this process (default) or as supervised
    /// child processes.
    #[arg(long, value_name = "thread|process", value_enum)]
    pub(crate) isolation: Option<IsolationArg>,
}
