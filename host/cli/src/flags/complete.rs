//! `wasmproc completions SHELL`: a completion script made from the flag
//! definitions.

use clap::{Args, CommandFactory};

use super::Cli;

#[derive(Debug, Args)]
pub(crate) struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_name = "SHELL", value_enum)]
    pub(crate) shell: clap_complete::Shell,
}

/// Writes the completion script for `shell` to stdout.
pub(crate) fn completions(args: CompletionsArgs) -> anyhow::Result<u8> {
    let mut command = Cli::command();
    clap_complete::generate(args.shell, &mut command, "wasmproc", &mut std::io::stdout());
    Ok(0)
}
