//! The command line, laid out by role (as ripgrep's `crates/core/flags/`):
//!
//! - this file: the top level (`Cli`, `Command`, each command's help) and
//!   [`parse`], which turns `argv` into them;
//! - `common`: flag groups that several commands flatten in (limits,
//!   loading, initializer, capabilities, NATS, `--isolation`);
//! - `run`, `map`, `serve`, `worker`, `replay`, `inspect` (with `compile`),
//!   `cache`: each command's own flags;
//! - `values`: the text forms of durations and sizes;
//! - `convert`: flags turned into library objects (`Limits`,
//!   `Capabilities`, `Initializer`, a `RuntimeBuilder`, `NatsOptions`);
//! - `argv`: the rewriter that lets `run`'s host options follow MODULE;
//! - `typo`: the host option a misspelt word in the guest's argv meant;
//! - `complete`: `wasmproc completions SHELL`.

mod argv;
mod cache;
mod common;
mod complete;
mod convert;
mod inspect;
mod map;
mod replay;
mod run;
mod serve;
mod typo;
mod values;
mod worker;

use std::ffi::OsString;

use clap::{Parser, Subcommand};

pub(crate) use cache::{CacheAction, CacheArgs};
pub(crate) use common::{InitArgs, IsolationArg, LimitArgs};
pub(crate) use complete::{CompletionsArgs, completions};
pub(crate) use convert::initializer;
pub(crate) use inspect::{CompileArgs, InspectArgs};
pub(crate) use map::MapArgs;
pub(crate) use replay::ReplayArgs;
pub(crate) use run::RunArgs;
pub(crate) use serve::ServeArgs;
pub(crate) use typo::misspelt_host_option;
pub(crate) use worker::WorkerArgs;

/// Parses a whole command line (`raw[0]` is the program), after moving
/// `run`'s host options written after MODULE before it (`argv`). Also says
/// whether the user wrote a `--` before the guest's argv.
pub(crate) fn parse(raw: Vec<OsString>) -> Result<(Cli, bool), clap::Error> {
    let (raw, separated) = argv::hoist_run_options(raw);
    Ok((Cli::try_parse_from(raw)?, separated))
}

/// Run WebAssembly modules as sandboxed workers: threads of this process by
/// default, or supervised worker processes (--isolation process).
///
/// Exit statuses: 0–125 the guest's own code; 126 cannot run; 127 module not
/// found; 128 bad invocation; 130 cancelled; 134 trapped; 137 memory limit
/// exceeded; 139 worker lost; 142 timed out; 152 fuel exhausted.
#[derive(Debug, Parser)]
#[command(name = "wasmproc", version, max_term_width = 100)]
pub(crate) struct Cli {
    /// Say what wasmproc does, on stderr: -v cache misses with compile
    /// times, retries and their reasons; -vv also cache hits and worker
    /// starts. `RUST_LOG` (e.g. `RUST_LOG=wasmproc=debug`) overrides it.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,

    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run one task: a WASI command (`_start`) or an SDK task.
    ///
    /// Host options come before MODULE; everything after MODULE is the
    /// guest's argv (a `--` right after MODULE is optional). A command
    /// module's stdin, stdout and stderr are the host's, as for any program.
    #[command(after_help = "Examples:\n  \
        wasmproc run --dir ./data::/data --env LANG=C grep.wasm -- -c needle /data/input.txt\n  \
        wasmproc run stats.wasm --task top_words --args '{\"text\": \"a b a\", \"top\": 1}'\n  \
        echo '\"some text\"' | wasmproc run --json stats.wasm --task stats --args -")]
    Run(RunArgs),
    /// Run a task over many inputs in parallel: one JSON value per input
    /// line (for a command module, a JSON array of argv strings), one JSON
    /// object per output line.
    ///
    /// Each output line holds the input's index and what `run --json`
    /// prints. A malformed input line fails alone, with status
    /// `bad_invocation`. Exit status: 0 when every task exited 0, 123 when
    /// any did not, 126–128 when the run could not start, 130 on Ctrl-C
    /// (the summary then says how much input was never read).
    #[command(after_help = "Examples:\n  \
        wasmproc map stats.wasm --task stats docs.ndjson > stats.ndjson\n  \
        printf '[\"exit\", \"0\"]\\n[\"exit\", \"3\"]\\n' | wasmproc map -j 2 cmd.wasm -")]
    Map(MapArgs),
    /// Serve connections: each accepted connection gets a fresh sandboxed
    /// worker whose stdin and stdout are the connection (inetd style), or,
    /// for an SDK module, its `#[wasmproc_guest::handler]`.
    ///
    /// One NDJSON line per connection goes to stderr (or --log FILE): time,
    /// peer, status, exit_code, bytes_in, bytes_out, duration_ms, message.
    /// Ctrl-C or SIGTERM stops accepting and lets connections in flight
    /// finish for --grace, then ends them; a second Ctrl-C ends them at once.
    /// Exit status 0 after a stop.
    #[command(after_help = "Examples:\n  \
        wasmproc serve echo.wasm --listen 127.0.0.1:7000\n  \
        wasmproc serve http.wasm --listen 0.0.0.0:8080 --max-connections 256 --timeout 30s --log access.ndjson\n  \
        wasmproc serve handler.wasm --listen ./handler.sock --isolation process --max-memory 64MiB")]
    Serve(ServeArgs),
    /// Join a cluster: pull tasks from a NATS JetStream server while this
    /// host has free workers, run them sandboxed (threads or worker
    /// processes, the same limits and statuses as `map`), store their
    /// outcomes, and acknowledge. Hosts are stateless: start as many as you
    /// like; a host that dies leaves its tasks to the others.
    ///
    /// Remote tasks get only what this host allows: --allow-dir,
    /// --allow-env; --timeout, --fuel and --max-memory cap theirs. Ctrl-C or
    /// SIGTERM stops pulling and lets running tasks finish.
    #[command(after_help = "Examples:\n  \
        nats-server -js -sd /var/lib/nats &\n  \
        wasmproc worker --nats nats://127.0.0.1:4222 -j 8\n  \
        wasmproc worker --nats tls://nats.example:4222 --nats-creds worker.creds --allow-dir /srv/data --timeout 10m")]
    Worker(WorkerArgs),
    /// Run again a task that failed, from the bundle that `run` or `map`
    /// wrote with --replay-dir: the same module (checked by hash), entry,
    /// argument, argv, env, directories, limits and stdin.
    #[command(after_help = "Example:\n  \
        wasmproc map --replay-dir failures m.wasm --task t inputs.ndjson\n  \
        wasmproc replay failures/m-line-17.replay.json")]
    Replay(ReplayArgs),
    /// Compile a module into the cache, so that later runs start at once;
    /// with --init, also run the initializer and cache its snapshot, so
    /// that later runs with the same --init, --init-args, --dir and --env
    /// start from it at once.
    #[command(after_help = "Examples:\n  \
        wasmproc compile stats.wasm\n  \
        wasmproc compile lookup.wasm --init table --init-args '{\"len\": 1000000}' --timeout 1m")]
    Compile(CompileArgs),
    /// List a module's tasks, initializers, exports and imports.
    Inspect(InspectArgs),
    /// Look into the module cache (compiled modules and initializer
    /// snapshots), or empty it.
    ///
    /// The cache keeps to a budget, $WASMPROC_CACHE_MAX (default 4GiB):
    /// after each write the least recently used entries go. Its directory
    /// is $WASMPROC_CACHE_DIR, else the platform's cache directory.
    #[command(after_help = "Examples:\n  \
        wasmproc cache list\n  \
        WASMPROC_CACHE_MAX=1GiB wasmproc compile big.wasm\n  \
        wasmproc cache clear")]
    Cache(CacheArgs),
    /// Print a completion script for SHELL (bash, zsh, fish, elvish,
    /// powershell) on stdout.
    #[command(after_help = "Examples:\n  \
        wasmproc completions bash > ~/.local/share/bash-completion/completions/wasmproc\n  \
        wasmproc completions zsh > ~/.zfunc/_wasmproc    # with fpath+=~/.zfunc before compinit\n  \
        wasmproc completions fish > ~/.config/fish/completions/wasmproc.fish")]
    Completions(CompletionsArgs),
}

#[cfg(test)]
mod testing {
    //! Command lines parsed as `main` parses them, for the tests of each
    //! role.

    use std::ffi::OsString;

    use super::{Cli, Command, RunArgs};

    /// `wasmproc LINE…`, parsed.
    pub(super) fn parse(line: &[&str]) -> Result<Cli, clap::Error> {
        let raw = std::iter::once("wasmproc")
            .chain(line.iter().copied())
            .map(OsString::from)
            .collect();
        super::parse(raw).map(|(cli, _)| cli)
    }

    /// The flags of `wasmproc run LINE…`, which must parse.
    pub(super) fn run_args(line: &[&str]) -> RunArgs {
        match parse(line).expect("parses").command {
            Command::Run(args) => args,
            other => panic!("not run: {other:?}"),
        }
    }
}
