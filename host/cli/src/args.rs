//! The command line: one definition per flag, with its help text.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, CommandFactory, Parser, Subcommand};
use wasmproc::{Capabilities, DirGrant, Initializer, Limits};

use crate::usage;

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

/// How a module is loaded.
#[derive(Debug, Args)]
pub(crate) struct LoadArgs {
    /// Refuse modules that define more than N functions (default 100000),
    /// before compiling: compilation runs outside every other limit.
    #[arg(long, value_name = "N")]
    pub(crate) max_functions: Option<u32>,
}

impl LoadArgs {
    /// A runtime builder with these settings and room for `instances` at
    /// once.
    pub(crate) fn runtime(&self, instances: u32) -> wasmproc::RuntimeBuilder {
        let builder = wasmproc::Runtime::builder().max_instances(instances);
        match self.max_functions {
            Some(count) => builder.max_module_functions(count),
            None => builder,
        }
    }
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

impl InitArgs {
    /// The initializer the flags name, with the tasks' capabilities and
    /// limits, or `None` without --init.
    pub(crate) fn to_initializer(
        &self,
        caps: &Capabilities,
        limits: &Limits,
    ) -> anyhow::Result<Option<Initializer>> {
        let Some(name) = &self.init else {
            if self.init_args.is_some() {
                return Err(usage(
                    "--init-args is the argument of an initializer, and no --init names one: \
                     add --init NAME (`wasmproc inspect MODULE` lists the initializers)",
                ));
            }
            return Ok(None);
        };
        let json = self.init_args.as_deref().unwrap_or("null");
        Ok(Some(initializer(name, json, caps, limits)))
    }
}

/// The initializer `name` with argument `json`, run with the tasks' own
/// capabilities and limits: the command line has one set of each, for the
/// initializer and the tasks alike.
pub(crate) fn initializer(
    name: &str,
    json: &str,
    caps: &Capabilities,
    limits: &Limits,
) -> Initializer {
    Initializer::call_json(name, json.as_bytes())
        .capabilities(caps.clone())
        .limits(limits.clone())
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

impl NatsArgs {
    /// The connection options, when --nats is given.
    pub(crate) fn options(&self) -> Option<wasmproc_cluster::NatsOptions> {
        let url = self.nats.as_ref()?;
        let mut options = wasmproc_cluster::NatsOptions::new(url);
        if let Some(path) = &self.nats_creds {
            options = options.credentials_file(path);
        }
        if let Some(path) = &self.nats_ca {
            options = options.root_certificates(path);
        }
        Some(options)
    }
}

#[derive(Debug, Args)]
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

#[derive(Debug, Args)]
pub(crate) struct MapArgs {
    /// Run the SDK task NAME (by default: `_start`, else the module's only
    /// task).
    #[arg(long, value_name = "NAME")]
    pub(crate) task: Option<String>,

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

/// The values of `--isolation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum IsolationArg {
    /// Threads of this process.
    Thread,
    /// Supervised child processes.
    Process,
}

#[derive(Debug, Args)]
pub(crate) struct ReplayArgs {
    /// Print one JSON object instead of passing the guest's output through.
    #[arg(long)]
    pub(crate) json: bool,

    /// Grant the directories the bundle names without asking (a bundle is
    /// a file anyone may have edited: by default they are granted only
    /// when the same --dir flags are given here).
    #[arg(long)]
    pub(crate) yes: bool,

    /// Grant HOST at GUEST, as the bundle does: the --dir flags here must
    /// name exactly the bundle's directories (or pass --yes). Repeatable.
    #[arg(long = "dir", value_name = "HOST[::GUEST]")]
    pub(crate) dirs: Vec<String>,

    /// The bundle (`*.replay.json`).
    #[arg(value_name = "BUNDLE")]
    pub(crate) bundle: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct CacheArgs {
    #[command(subcommand)]
    pub(crate) action: CacheAction,
}

/// What `wasmproc cache` does.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum CacheAction {
    /// One line per entry, least recently used first: its size, when it was
    /// last used, whether it is a snapshot, its file; then the total.
    List {
        /// One JSON object per entry instead.
        #[arg(long)]
        json: bool,
    },
    /// Remove every entry: each module is compiled again at its next load.
    Clear,
}

#[derive(Debug, Args)]
pub(crate) struct CompileArgs {
    #[command(flatten)]
    pub(crate) init: InitArgs,

    #[command(flatten)]
    pub(crate) limits: LimitArgs,

    #[command(flatten)]
    pub(crate) load: LoadArgs,

    #[command(flatten)]
    pub(crate) grants: GrantArgs,

    /// The module file.
    #[arg(value_name = "MODULE")]
    pub(crate) module: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct InspectArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    pub(crate) json: bool,

    #[command(flatten)]
    pub(crate) load: LoadArgs,

    /// The module file.
    #[arg(value_name = "MODULE")]
    pub(crate) module: PathBuf,
}

impl RunArgs {
    /// The module and the guest's argv, split from the trailing arguments.
    pub(crate) fn module_and_argv(&self) -> (PathBuf, Vec<String>) {
        let mut rest = self.command.iter();
        let module = PathBuf::from(rest.next().map(String::as_str).unwrap_or_default());
        (module, rest.cloned().collect())
    }
}

/// Puts `run`'s host options written after MODULE before it, and ends them
/// with `--`, so that clap sees: options, `--`, MODULE, guest argv.
///
/// Both `wasmproc run --timeout 5s m.wasm -- a` and
/// `wasmproc run m.wasm --timeout 5s -- a` then mean the same. After MODULE,
/// host options are taken until the first argument that is not one (or a
/// `--`); from there on everything is the guest's, so
/// `wasmproc run m.wasm a --timeout 5s` gives the guest `a --timeout 5s`.
///
/// Also says whether the user wrote a `--` before the guest's argv (then
/// nothing in it can be a misplaced host option).
pub(crate) fn hoist_run_options(raw: Vec<OsString>) -> (Vec<OsString>, bool) {
    // `run` comes first, after the global options if any (`-v`).
    let Some(run_at) = raw
        .iter()
        .skip(1)
        .position(|a| !a.to_str().is_some_and(|a| a.starts_with('-')))
        .map(|at| at + 1)
    else {
        return (raw, false);
    };
    if raw[run_at] != "run" {
        return (raw, false);
    }
    let command = Cli::command();
    let Some(run) = command.find_subcommand("run") else {
        return (raw, false);
    };
    // Each long option of `run`, and whether it takes a value.
    let options: Vec<(String, bool)> = run
        .get_arguments()
        .filter_map(|arg| {
            Some((
                format!("--{}", arg.get_long()?),
                arg.get_action().takes_values(),
            ))
        })
        .collect();
    let option_len = |token: &OsString| -> Option<usize> {
        let token = token.to_str()?;
        let (name, inline_value) = match token.split_once('=') {
            Some((name, _)) => (name, true),
            None => (token, false),
        };
        let (_, takes_value) = options.iter().find(|(long, _)| long == name)?;
        Some(if *takes_value && !inline_value { 2 } else { 1 })
    };

    // Find MODULE: the first argument after `run` that is not an option.
    let mut i = run_at + 1;
    while i < raw.len() {
        if raw[i] == "--" {
            return (raw, true);
        }
        match option_len(&raw[i]) {
            Some(len) => i += len,
            None if raw[i]
                .to_str()
                .is_some_and(|t| t.starts_with('-') && t.len() > 1) =>
            {
                i += 1
            }
            None => break,
        }
    }
    if i >= raw.len() {
        return (raw, false);
    }
    let module_at = i;
    let mut j = module_at + 1;
    while j < raw.len() {
        match option_len(&raw[j]) {
            // An option that wants a value and is the last word (`--args`
            // forgotten): left last, without MODULE after it, so that clap
            // says a value is required rather than take MODULE or `--`.
            Some(len) if j + len > raw.len() => {
                let mut out: Vec<OsString> = raw[..module_at].to_vec();
                out.extend_from_slice(&raw[module_at + 1..]);
                return (out, false);
            }
            Some(len) => j += len,
            None => break,
        }
    }
    let mut guest_at = j;
    let separated = raw.get(guest_at).is_some_and(|a| a == "--");
    if separated {
        guest_at += 1;
    }
    let mut out: Vec<OsString> = raw[..module_at].to_vec();
    out.extend_from_slice(&raw[module_at + 1..j]);
    out.push("--".into());
    out.push(raw[module_at].clone());
    out.extend_from_slice(&raw[guest_at..]);
    (out, separated)
}

/// The host option of `run` that `word` (from the guest's argv) most
/// likely meant, if it looks like a misspelt one: `--timout` is
/// `--timeout`.
pub(crate) fn misspelt_host_option(word: &str) -> Option<String> {
    let name = word.strip_prefix("--")?.split('=').next()?;
    let command = Cli::command();
    let run = command.find_subcommand("run")?;
    run.get_arguments()
        .filter_map(|arg| arg.get_long())
        .map(|long| (strsim::damerau_levenshtein(name, long), long))
        .filter(|(distance, long)| *distance <= 2 && *distance < long.len() / 2 + 1)
        .min()
        .map(|(_, long)| format!("--{long}"))
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

    pub(crate) fn to_limits(&self) -> anyhow::Result<Limits> {
        let mut limits = Limits::default();
        if let Some(timeout) = self.timeout {
            limits = limits.timeout(timeout);
        }
        if let Some(fuel) = self.fuel {
            limits = limits.fuel(fuel);
        }
        if let Some(bytes) = self.max_memory {
            limits = limits.max_memory(bytes);
        }
        if let Some(bytes) = self.max_output {
            limits = limits.max_output(usize::try_from(bytes).unwrap_or(usize::MAX));
        }
        if let Some(bytes) = self.max_args {
            limits = limits.max_args(usize::try_from(bytes).unwrap_or(usize::MAX));
        }
        if let Some(bytes) = self.max_result {
            limits = limits.max_result(usize::try_from(bytes).unwrap_or(usize::MAX));
        }
        limits.validate()?;
        Ok(limits)
    }
}

impl CapabilityArgs {
    pub(crate) fn to_capabilities(&self) -> anyhow::Result<Capabilities> {
        self.grants.to_capabilities()
    }
}

impl GrantArgs {
    /// Whether nothing is granted.
    pub(crate) fn is_empty(&self) -> bool {
        self.dirs.is_empty() && self.env.is_empty()
    }

    pub(crate) fn to_capabilities(&self) -> anyhow::Result<Capabilities> {
        let mut caps = Capabilities::default();
        for spec in &self.dirs {
            caps = caps.dir(DirGrant::parse(spec)?);
        }
        for spec in &self.env {
            let (key, value) = match spec.split_once('=') {
                Some((key, value)) => (key.to_owned(), value.to_owned()),
                None => match std::env::var(spec) {
                    Ok(value) => (spec.clone(), value),
                    Err(std::env::VarError::NotPresent) => {
                        return Err(usage(format!(
                            "--env {spec}: `{spec}` is not set on the host; pass a value with --env {spec}=VALUE"
                        )));
                    }
                    Err(std::env::VarError::NotUnicode(_)) => {
                        return Err(usage(format!(
                            "--env {spec}: the host's value of `{spec}` is not UTF-8, which WASI \
                             cannot pass; pass a value with --env {spec}=VALUE"
                        )));
                    }
                },
            };
            if key.is_empty() {
                return Err(usage(format!(
                    "--env `{spec}`: the variable needs a name, as in KEY=VALUE"
                )));
            }
            caps = caps.env(key, value);
        }
        Ok(caps)
    }
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text)
        .map_err(|error| format!("{error}; write a duration such as 500ms, 5s or 2m"))
}

fn parse_size(text: &str) -> Result<u64, String> {
    text.parse::<bytesize::ByteSize>()
        .map(|size| size.as_u64())
        .map_err(|error| format!("{error}; write a size such as 64MiB or 1GiB"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &[&str]) -> Result<Cli, clap::Error> {
        let raw = std::iter::once("wasmproc")
            .chain(line.iter().copied())
            .map(OsString::from)
            .collect();
        Cli::try_parse_from(hoist_run_options(raw).0)
    }

    fn run_args(line: &[&str]) -> RunArgs {
        match parse(line).expect("parses").command {
            Command::Run(args) => args,
            other => panic!("not run: {other:?}"),
        }
    }

    #[test]
    fn guest_argv_starts_at_the_first_non_option_after_module() {
        let args = run_args(&["run", "m.wasm", "--json", "-x", "--timeout", "1s"]);
        assert!(args.json);
        assert_eq!(args.limits.timeout, None);
        let (module, argv) = args.module_and_argv();
        assert_eq!(module, PathBuf::from("m.wasm"));
        assert_eq!(argv, ["-x", "--timeout", "1s"]);
    }

    #[test]
    fn host_options_may_follow_module() {
        let args = run_args(&[
            "run",
            "m.wasm",
            "--task",
            "square",
            "--args",
            "-7",
            "--timeout=2s",
        ]);
        assert_eq!(args.task.as_deref(), Some("square"));
        assert_eq!(args.args.as_deref(), Some("-7"));
        assert_eq!(args.limits.timeout, Some(Duration::from_secs(2)));
        assert!(args.module_and_argv().1.is_empty());
    }

    #[test]
    fn double_dash_passes_option_lookalikes_to_the_guest() {
        let (_, argv) =
            run_args(&["run", "--json", "m.wasm", "--", "--json", "--"]).module_and_argv();
        assert_eq!(argv, ["--json", "--"]);
    }

    #[test]
    fn misspelt_host_options_are_recognized() {
        assert_eq!(
            misspelt_host_option("--timout").as_deref(),
            Some("--timeout")
        );
        assert_eq!(
            misspelt_host_option("--max-memroy=1").as_deref(),
            Some("--max-memory")
        );
        assert_eq!(misspelt_host_option("--verbose"), None);
        assert_eq!(misspelt_host_option("timeout"), None);
    }

    #[test]
    fn an_explicit_separator_is_noticed() {
        let raw = |line: &[&str]| line.iter().map(OsString::from).collect::<Vec<_>>();
        assert!(hoist_run_options(raw(&["wasmproc", "run", "m.wasm", "--", "-x"])).1);
        assert!(!hoist_run_options(raw(&["wasmproc", "run", "m.wasm", "-x"])).1);
    }

    #[test]
    fn unknown_flag_before_module_is_an_error() {
        assert!(parse(&["run", "--bogus", "m.wasm"]).is_err());
    }

    #[test]
    fn double_dash_after_module_is_optional() {
        let (_, with) = run_args(&["run", "m.wasm", "--", "a", "b"]).module_and_argv();
        let (_, without) = run_args(&["run", "m.wasm", "a", "b"]).module_and_argv();
        assert_eq!(with, ["a", "b"]);
        assert_eq!(with, without);
    }

    #[test]
    fn limits_parse_human_units() {
        let args = run_args(&[
            "run",
            "--timeout",
            "500ms",
            "--max-memory",
            "64MiB",
            "--fuel",
            "9",
            "m.wasm",
        ]);
        let limits = args.limits.to_limits().unwrap();
        assert_eq!(limits.get_timeout(), Some(Duration::from_millis(500)));
        assert_eq!(limits.get_max_memory(), 64 << 20);
        assert_eq!(limits.get_fuel(), Some(9));
    }

    #[test]
    fn bad_limit_values_are_rejected() {
        assert!(parse(&["run", "--timeout", "soon", "m.wasm"]).is_err());
        assert!(parse(&["run", "--max-memory", "lots", "m.wasm"]).is_err());
        assert!(parse(&["run", "--fuel", "-3", "m.wasm"]).is_err());
        let zero = run_args(&["run", "--timeout", "0s", "m.wasm"]);
        assert!(zero.limits.to_limits().is_err());
    }

    #[test]
    fn the_initializer_gets_the_tasks_grants_and_limits() {
        let args = run_args(&[
            "run",
            "m.wasm",
            "--init",
            "table",
            "--env",
            "A=1",
            "--timeout",
            "2s",
        ]);
        let caps = args.caps.to_capabilities().unwrap();
        let limits = args.limits.to_limits().unwrap();
        let init = args.init.to_initializer(&caps, &limits).unwrap().unwrap();
        assert_eq!(init.name(), "table");
        assert_eq!(init.get_input(), b"null", "the default argument");
        assert_eq!(init.get_capabilities(), &caps);
        assert_eq!(init.get_limits(), Some(&limits));

        let with_args = run_args(&["run", "--init", "t", "--init-args", "-3", "m.wasm"]);
        let init = with_args.init.to_initializer(&caps, &limits).unwrap();
        assert_eq!(init.unwrap().get_input(), b"-3");
        let alone = run_args(&["run", "--init-args", "3", "m.wasm"]);
        assert!(alone.init.to_initializer(&caps, &limits).is_err());
        let neither = run_args(&["run", "m.wasm"]);
        assert!(
            neither
                .init
                .to_initializer(&caps, &limits)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn dir_and_env_grants_parse() {
        let args = run_args(&[
            "run", "--dir", "data::/d", "--dir", "/tmp", "--env", "A=1", "--env", "B==2", "m.wasm",
        ]);
        let caps = args.caps.to_capabilities().unwrap();
        assert_eq!(
            caps.dirs,
            [DirGrant::new("data", "/d"), DirGrant::new("/tmp", "/tmp")]
        );
        assert_eq!(
            caps.env,
            [("A".into(), "1".into()), ("B".into(), "=2".into())]
        );
        let unset = run_args(&["run", "--env", "WASMPROC_SURELY_UNSET_VAR", "m.wasm"]);
        assert!(unset.caps.to_capabilities().is_err());
    }
}
