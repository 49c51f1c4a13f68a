//! The binary's commands: flags in, outcomes and exit statuses out.

mod args;
mod inspect;
mod map;
mod report;
mod run;

use std::process::ExitCode;

use clap::Parser;
use wasmproc::ExitStatus;

use args::{Cli, Command};

/// An error of the binary's own making (a bad flag value), with the exit
/// status it ends the process with.
#[derive(Debug)]
pub(crate) struct Usage(pub(crate) String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

/// Parses the command line, runs the command, and maps every failure to
/// the exit-status table.
pub(crate) fn main() -> ExitCode {
    let cli = match Cli::try_parse_from(args::hoist_run_options(std::env::args_os().collect())) {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return match error.kind() {
                clap::error::ErrorKind::DisplayHelp
                | clap::error::ErrorKind::DisplayVersion
                | clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                    ExitCode::SUCCESS
                }
                _ => ExitCode::from(ExitStatus::BadInvocation.code()),
            };
        }
    };
    let result = match cli.command {
        Command::Run(args) => run::run(args),
        Command::Map(args) => map::map(args),
        Command::Compile(args) => inspect::compile(args),
        Command::Inspect(args) => inspect::inspect(args),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            eprintln!("wasmproc: error: {error:#}");
            ExitCode::from(exit_status_of(&error).code())
        }
    }
}

/// The table's status for an error that stopped a command before any task
/// ran.
pub(crate) fn exit_status_of(error: &anyhow::Error) -> ExitStatus {
    if let Some(error) = error.downcast_ref::<wasmproc::Error>() {
        error.exit_status()
    } else if error.is::<Usage>() {
        ExitStatus::BadInvocation
    } else {
        ExitStatus::CannotRun
    }
}
