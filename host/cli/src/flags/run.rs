//! `wasmproc run`'s flags.

use std::path::PathBuf;

use clap::Args;

use super::common::{CapabilityArgs, InitArgs, InvokeArgs, LimitArgs, LoadArgs, NatsArgs};

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// Run the SDK task NAME instead of the module's `_start` (by default:
    /// `_start`, else the module's only task).
    #[arg(long, value_name = "NAME")]
    pub(crate) task: Option<String>,

    /// The SDK task's argument as JSON, or `-` to read it from stdin.
    #[arg(long, value_name = "JSON|-", allow_hyphen_values = true)]
    pub(crate) args: Option<String>,

    #[command(flatten)]
    pub(crate) invoke: InvokeArgs,

    #[command(flatten)]
    pub(crate) init: InitArgs,

    /// Print one JSON object (status, exit_code, result, stdout, stderr,
    /// fuel_used, peak_memory_bytes, duration_ms, …) instead of passing the
    /// guest's output through.
    #[arg(long)]
    pub(crate) json: bool,

    /// If the task does not exit 0, write a bundle of everything it ran
    /// with (and the stdin it read) into DIR, for `wasmproc replay`.
    #[arg(long, value_name = "DIR")]
    pub(crate) replay_dir: Option<PathBuf>,

    #[command(flatten)]
    pub(crate) limits: LimitArgs,

    #[command(flatten)]
    pub(crate) load: LoadArgs,

    #[command(flatten)]
    pub(crate) caps: CapabilityArgs,

    #[command(flatten)]
    pub(crate) nats: NatsArgs,

    /// The module file (`.wasm` or `.wat`), then the guest's arguments.
    #[arg(
        value_name = "MODULE [--] [GUEST_ARGS]",
        required = true,
        trailing_var_arg = true
    )]
    pub(crate) command: Vec<String>,
}

impl RunArgs {
    /// The module and the guest's argv, split from the trailing arguments.
    pub(crate) fn module_and_argv(&self) -> (PathBuf, Vec<String>) {
        let mut rest = self.command.iter();
        let module = PathBuf::from(rest.next().map(String::as_str).unwrap_or_default());
        (module, rest.cloned().collect())
    }
}
