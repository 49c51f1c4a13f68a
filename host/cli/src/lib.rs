//! The `wasmproc` command line: flags in, outcomes and exit statuses out,
//! over the `wasmproc` library. The binary (`main.rs`) only calls [`main`];
//! this library exists so that the command line's parts can be tested and
//! fuzzed on their own (`fuzzing`).

/// `eprintln!` that ignores a closed stderr (`2>&1 | head`, a log reader
/// gone): what the binary says there is for a reader who may have left,
/// and losing it must not turn the command's status into a panic's.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

mod argument_errors;
mod bundle;
mod cache;
mod flags;
#[doc(hidden)]
pub mod fuzzing;
mod inspect;
mod map;
mod poison;
#[cfg(test)]
mod readme;
mod replay;
mod report;
mod run;
mod serve;
mod signals;
mod stdin;
mod waiting;
mod words;
mod worker;

use std::process::ExitCode;

use wasmproc::{ErrorKind, ExitStatus};

use flags::Command;

/// Runs the command line of this process and says how to exit.
pub fn main() -> ExitCode {
    let (cli, separated) = match flags::parse(std::env::args_os().collect()) {
        Ok(parsed) => parsed,
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
    log_to_stderr(cli.verbose);
    VERBOSE.store(cli.verbose, std::sync::atomic::Ordering::Relaxed);
    let result = match cli.command {
        Command::Run(args) => run::run(args, separated),
        Command::Map(args) => map::map(args),
        Command::Serve(args) => serve::serve(args),
        Command::Worker(args) => worker::worker(args),
        Command::Completions(args) => flags::completions(args),
        Command::Replay(args) => replay::replay(args),
        Command::Compile(args) => inspect::compile(args),
        Command::Inspect(args) => inspect::inspect(args),
        Command::Cache(args) => cache::cache(args),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        // The reader of our output went away (`| head`): stop quietly, as
        // command-line tools do.
        Err(error) if is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            say!("wasmproc: error: {}", error_text(&error));
            if let Some(backtrace) = failed_run(&error).and_then(report::backtrace_to_show) {
                say!("{backtrace}");
            }
            ExitCode::from(exit_status_of(&error).code())
        }
    }
}

/// The outcome of the run (an initializer's) whose failure `error` is.
pub(crate) fn failed_run(error: &anyhow::Error) -> Option<&wasmproc::Outcome> {
    wasmproc::FailedRun::of(error.downcast_ref::<wasmproc::Error>()?)
}

/// How many `-v` the command line gave: messages add detail (a limit's
/// backtrace) from 1.
static VERBOSE: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// Whether `-v` was given.
pub(crate) fn verbose() -> bool {
    VERBOSE.load(std::sync::atomic::Ordering::Relaxed) > 0
}

/// Sends the library's `tracing` events to stderr (never stdout, which
/// holds results): `RUST_LOG` if set, else as many `-v` as given.
fn log_to_stderr(verbose: u8) {
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.is_empty() => tracing_subscriber::EnvFilter::new(spec),
        _ => tracing_subscriber::EnvFilter::new(match verbose {
            0 => "warn",
            1 => "wasmproc=info,wasmproc_cluster=info",
            _ => "wasmproc=debug,wasmproc_cluster=debug",
        }),
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(true)
        .without_time()
        .try_init();
}

/// `error` and its causes, each said once: a cause whose words the message
/// already quotes ("JetStream is not enabled (jetstream unavailable)") is
/// not repeated after it.
pub(crate) fn error_text(error: &anyhow::Error) -> String {
    let mut text = error.to_string();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

/// Whether `error` is a write to a closed pipe.
pub(crate) fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// An error of the binary's own making: a flag value the library never
/// sees, with the fix in its message (exit status 128).
pub(crate) fn usage(message: impl Into<String>) -> anyhow::Error {
    wasmproc::Error::new(ErrorKind::BadInvocation, message).into()
}

/// The table's status for an error that stopped a command before any task
/// ran: the library's own for its errors, 126 for anything else (an I/O
/// failure of the binary itself).
pub(crate) fn exit_status_of(error: &anyhow::Error) -> ExitStatus {
    match error.downcast_ref::<wasmproc::Error>() {
        Some(error) => error.exit_status(),
        None => ExitStatus::CannotRun,
    }
}

#[cfg(test)]
mod error_text_tests {
    use super::error_text;

    #[test]
    fn a_cause_already_quoted_is_said_once() {
        let quoted = anyhow::anyhow!("jetstream unavailable")
            .context("JetStream is not enabled (jetstream unavailable); start it with `-js`");
        assert_eq!(
            error_text(&quoted),
            "JetStream is not enabled (jetstream unavailable); start it with `-js`"
        );
        let new = anyhow::anyhow!("permission denied").context("cannot open `m.wasm`");
        assert_eq!(error_text(&new), "cannot open `m.wasm`: permission denied");
    }
}
