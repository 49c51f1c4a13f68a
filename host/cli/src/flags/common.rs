//! Flag groups that several commands flatten in: limits, how a module is
//! loaded, the initializer, capabilities, NATS, `--isolation`. Only their
//! definitions and help texts: `convert` turns them into library objects.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::values::{parse_duration, parse_size};

/// Limits: each ends the task with its own exit status when hit.
#[derive(Debug, Args)]
pub(crate) struct LimitArgs {
    /// End the task after this much wall-clock time, even while it sleeps or
    /// waits for input (e.g. `500ms`, `5s`, `2m`). Exit status 142.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) timeout: Option<Duration>,

    /// Give the task N units of fuel (about one per wasm instruction).
    /// Exit status 152 when it runs out.
    #[arg(long, value_name = "N")]
    pub(crate) fuel: Option<u64>,

    /// Cap the task's linear memory (e.g. `64MiB`, `1GiB`; default 4GiB).
    /// Exit status 137 when the guest needs more.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub(crate) max_memory: Option<u64>,

    /// Cap each captured output stream with --json (default 1MiB); the rest
    /// is dropped and the stream marked truncated.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub(crate) max_output: Option<u64>,

    /// Cap each of a task's inputs: its argument, its argv and env together,
    /// its stdin bytes (default 64MiB, at most 1GiB). Exit status 128 when
    /// one is larger.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub(crate) max_args: Option<u64>,

    /// Cap an SDK task's result (default 64MiB, at most 1GiB). Exit status
    /// 137 when the guest hands back more.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub(crate) max_result: Option<u64>,
}

impl LimitArgs {
    /// Whether any limit was given.
    pub(crate) fn any(&self) -> bool {
        let LimitArgs {
            timeout,
            fuel,
            max_memory,
            max_output,
            max_args,
            max_result,
        } = self;
        timeout.is_some()
            || fuel.is_some()
            || max_memory.is_some()
            || max_output.is_some()
            || max_args.is_some()
            || max_result.is_some()
    }
}

/// How a module is loaded.
#[derive(Debug, Args)]
pub(crate) struct LoadArgs {
    /// Refuse modules that define more than N functions (default 100000),
    /// before compiling: compilation runs outside every other limit.
    #[arg(long, value_name = "N")]
    pub(crate) max_functions: Option<u32>,

    /// Load modules that import functions wasmproc does not provide (an
    /// optional host hook, say `host::call`): each such import traps when
    /// called, ending the task `trapped` (134) with a message naming it.
    /// Without it such a module cannot run (126). Unknown globals, memories
    /// and tables are refused either way.
    #[arg(long)]
    pub(crate) stub_imports: bool,
}

/// Which exported function to call instead of `_start` or an SDK task.
#[derive(Debug, Args)]
pub(crate) struct InvokeArgs {
    /// Call the module's exported function NAME, as `wasmtime run
    /// --invoke` does: its `_initialize` first if it has one (a reactor).
    /// Its arguments are the guest's argv (numbers: i32, i64, f32, f64),
    /// one word per parameter. A `() -> i32` function's result is the exit
    /// status (0–125; another value ends it trapped, 134); other results
    /// are printed one per line. A bad or missing argument: 128.
    #[arg(long, value_name = "NAME", conflicts_with = "task")]
    pub(crate) invoke: Option<String>,
}

/// An initializer to start the tasks from.
#[derive(Debug, Args)]
pub(crate) struct InitArgs {
    /// Start from the state that the module's initializer NAME (a
    /// `#[wasmproc_guest::init]` function) leaves: it runs once, with the
    /// same --dir, --env and limits as the task, and its snapshot is cached
    /// for later runs (e.g. `--init table`; default: none). When it fails,
    /// wasmproc exits with the status a task would get.
    #[arg(long, value_name = "NAME")]
    pub(crate) init: Option<String>,

    /// The initializer's argument as JSON (default `null`; e.g.
    /// `--init-args '{"len": 1000}'`). Needs --init.
    #[arg(long, value_name = "JSON", allow_hyphen_values = true)]
    pub(crate) init_args: Option<String>,
}

/// Capabilities: nothing is granted unless named here.
#[derive(Debug, Args)]
pub(crate) struct CapabilityArgs {
    /// Run workers as threads of this process (the default), or as
    /// supervised child processes (`map` picks them above 4 workers, where
    /// they scale better). Outcomes, stdin and output are the same either
    /// way.
    #[arg(long, value_name = "thread|process", value_enum)]
    pub(crate) isolation: Option<IsolationArg>,

    #[command(flatten)]
    pub(crate) grants: GrantArgs,
}

/// What the guest may touch: the part of the capabilities that `compile`
/// takes too, for an initializer.
#[derive(Debug, Args)]
pub(crate) struct GrantArgs {
    /// Grant the host directory HOST to the guest at GUEST (default: the
    /// same path). Repeatable.
    #[arg(long = "dir", value_name = "HOST[::GUEST]")]
    pub(crate) dirs: Vec<String>,

    /// Set the guest's environment variable KEY; `--env KEY` passes the
    /// host's value. Repeatable.
    #[arg(long = "env", value_name = "KEY=VALUE")]
    pub(crate) env: Vec<String>,
}

impl GrantArgs {
    /// Whether nothing is granted.
    pub(crate) fn is_empty(&self) -> bool {
        self.dirs.is_empty() && self.env.is_empty()
    }
}

/// Where a cluster's NATS server is, for `map`, `run` and `worker`.
#[derive(Debug, Args)]
pub(crate) struct NatsArgs {
    /// Run on a cluster: submit to the worker hosts (`wasmproc worker`)
    /// pulling from the NATS JetStream server at URL (e.g.
    /// `nats://127.0.0.1:4222`; `nats://user:pass@host`, `nats://token@host`
    /// and `tls://host` work).
    #[arg(long, value_name = "URL")]
    pub(crate) nats: Option<String>,

    /// Authenticate to NATS with this credentials file (JWT and NKey seed).
    #[arg(long, value_name = "FILE", requires = "nats")]
    pub(crate) nats_creds: Option<PathBuf>,

    /// Trust this CA certificate (PEM) for NATS's TLS, and require TLS.
    #[arg(long, value_name = "FILE", requires = "nats")]
    pub(crate) nats_ca: Option<PathBuf>,
}

/// The values of `--isolation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum IsolationArg {
    /// Threads of this process.
    Thread,
    /// Supervised child processes.
    Process,
}
