//! `wasmproc run`: one task, run like a program.

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use crossbeam_channel::{Receiver, select};
use wasmproc::{
    CancelToken, Entry, ErrorKind, Executor, ExitStatus, Initializer, Isolation, Module, Outcome,
    Pool, ProcessOptions, Stdin, Task,
};

use crate::bundle::{BundleWriter, Inputs, TeeReader};
use crate::flags::{IsolationArg, RunArgs, misspelt_host_option};
use crate::report::{OutcomeJson, guest_output, print_outcome, setup_failure_json};
use crate::usage;
use crate::waiting::HostWatch;

pub(crate) fn run(args: RunArgs, separated: bool) -> anyhow::Result<u8> {
    let interrupt = on_ctrl_c();
    if args.nats.nats.is_some() {
        let refused = [
            (args.caps.isolation.is_some(), "--isolation"),
            (args.init.init.is_some(), "--init"),
        ];
        if let Some((_, flag)) = refused.iter().find(|(given, _)| *given) {
            return Err(usage(format!(
                "{flag} is not for a run on a cluster (--nats): the worker host sets how it \
                 runs tasks; drop {flag}"
            )));
        }
    }
    match prepare(&args, separated, &interrupt) {
        Ok((module, mut task)) => {
            let replay = match &args.replay_dir {
                Some(dir) => Some(RunBundle::start(dir, &args, &module, &mut task)?),
                None => None,
            };
            // The one place that knows where the task runs; it runs through
            // the library's `Executor`, the same for every back end.
            let mut outcome = match args.nats.options() {
                Some(nats) => {
                    let (path, _) = args.module_and_argv();
                    let url = nats.url().to_owned();
                    let cluster = wasmproc_cluster::Cluster::connect(nats)?;
                    let remote = cluster.upload_file(&path)?;
                    let _watch = HostWatch::start(Arc::new(cluster.clone()), url);
                    cluster
                        .executor(&remote)
                        .run(task.clone(), &interrupt.token)
                }
                None => {
                    let isolation = match args.caps.isolation {
                        Some(IsolationArg::Process) => {
                            Isolation::Process(ProcessOptions::default())
                        }
                        _ => Isolation::Thread,
                    };
                    // One task: one worker, started with the pool.
                    Pool::builder(&module)
                        .workers(1)
                        .isolation(isolation)
                        .build()?
                        .run(task.clone(), &interrupt.token)
                }
            };
            if let Entry::Task(name) = module.resolve(task.entry())? {
                let signature = module.signature(&name);
                let given = crate::argument_errors::Given::Flag(args.args.as_deref());
                crate::argument_errors::explain(&name, signature, given, &mut outcome);
            }
            if matches!(task.entry(), Entry::Export(_)) && !args.json {
                // An invoked function's results are on its stdout already.
                outcome.result = None;
            }
            report(&args, &module, &outcome);
            if let Some(replay) = replay {
                replay.finish(&task, &outcome);
            }
            Ok(outcome.status.code())
        }
        Err(error) if args.json => {
            // A caller that asked for JSON gets JSON, also when nothing ran.
            let status = crate::exit_status_of(&error);
            let text = crate::error_text(&error);
            // An initializer's failure is a run's: its whole outcome (trap
            // kind, backtrace, output), with the error's words.
            let json = match crate::failed_run(&error) {
                Some(failed) => {
                    let mut outcome = failed.clone();
                    outcome.message = Some(text);
                    serde_json::to_value(OutcomeJson::new(&outcome, None))?
                }
                None => setup_failure_json(&status, &text),
            };
            // A closed stdout loses the line, not the status.
            let _ = writeln!(std::io::stdout(), "{json}");
            Ok(status.code())
        }
        Err(error) => Err(error),
    }
}

/// A run's replay bundle in the making: its writer, and the stdin the
/// guest reads (kept as it goes).
struct RunBundle {
    writer: BundleWriter,
    argument: Vec<u8>,
    stdin: Option<std::sync::Arc<std::sync::Mutex<Vec<u8>>>>,
}

impl RunBundle {
    fn start(
        dir: &std::path::Path,
        args: &RunArgs,
        module: &Module,
        task: &mut Task,
    ) -> anyhow::Result<Self> {
        let (path, _) = args.module_and_argv();
        let writer =
            BundleWriter::new(dir, &path, module.initialized_by(), args.load.stub_imports)?;
        let limits = task.get_limits().cloned().unwrap_or_default();
        let stdin = match task.get_stdin() {
            Stdin::Inherit => {
                let (reader, kept) = TeeReader::new(std::io::stdin(), limits.max_args);
                *task = task.clone().stdin(Stdin::reader(reader));
                Some(kept)
            }
            _ => None,
        };
        Ok(RunBundle {
            writer,
            argument: task.input().to_vec(),
            stdin,
        })
    }

    fn finish(self, task: &Task, outcome: &Outcome) {
        let stdin = self.stdin.map(|kept| crate::poison::lock(&kept).clone());
        let inputs = Inputs {
            entry: task.entry(),
            argument: &self.argument,
            argv: task.get_args(),
            caps: task.get_capabilities(),
            limits: &task.get_limits().cloned().unwrap_or_default(),
            stdin,
        };
        if let Some(path) = self.writer.record("run", inputs, outcome) {
            say!(
                "wasmproc: replay it with: wasmproc replay {}",
                path.display()
            );
        }
    }
}

/// Ctrl-C, as the run sees it: a token that cancels the task, and a
/// channel that wakes a wait before the task starts (compiling).
struct Interrupt {
    token: CancelToken,
    pressed: Receiver<()>,
}

/// The first Ctrl-C (or SIGTERM) cancels the task (exit status 130) rather
/// than killing the host mid-write; the guest is torn down within a
/// millisecond. Should the run still not end within
/// [`STOP_WITHIN`](crate::signals::STOP_WITHIN) (its output blocked on a
/// reader that does not read), or at a second signal, the process exits
/// with 130. Installed first of all.
fn on_ctrl_c() -> Interrupt {
    let token = CancelToken::new();
    let on_interrupt = token.clone();
    let (press, pressed) = crossbeam_channel::bounded(1);
    crate::signals::on_interrupt(
        move || {
            on_interrupt.cancel();
            let _ = press.try_send(());
        },
        Some(crate::signals::STOP_WITHIN),
        "cancel the task",
    );
    Interrupt { token, pressed }
}

/// Loads the module (and, with --init, initializes it) and builds the task
/// from the flags.
fn prepare(
    args: &RunArgs,
    separated: bool,
    interrupt: &Interrupt,
) -> anyhow::Result<(Module, Task)> {
    let (path, argv) = args.module_and_argv();
    let limits = args.limits.to_limits()?;
    let caps = args.caps.to_capabilities()?;
    let init = args.init.to_initializer(&caps, &limits)?;
    let module = load(args, &path, limits.timeout, interrupt)?;
    let module = match init {
        Some(init) => initialize(module, init, interrupt)?,
        None => module,
    };

    let entry = match (&args.task, &args.invoke.invoke) {
        (Some(name), _) => Entry::Task(name.clone()),
        (None, Some(export)) => Entry::Export(export.clone()),
        (None, None) => Entry::Auto,
    };
    if args.invoke.invoke.is_some() && args.args.is_some() {
        return Err(usage(
            "--args is the argument of an SDK task; a function called with --invoke takes its \
             arguments after MODULE, one word each",
        ));
    }
    let resolved = module.resolve(&entry)?;
    if let Entry::Task(name) = &resolved
        && module.signature(name).is_some_and(|s| s.is_handler())
    {
        return Err(handler_refused(name, &module));
    }
    let typed = matches!(resolved, Entry::Task(_));
    if args.args.is_some() && !typed {
        return Err(usage(format!(
            "--args is the argument of an SDK task, and `{}` runs its `_start`: pass a command's \
             arguments after MODULE, or name a task with --task",
            module.name()
        )));
    }
    check_guest_argv(&argv, typed, separated)?;
    if let Some(json) = args.args.as_deref().filter(|json| *json != "-") {
        crate::argument_errors::check_json(json)?;
    }
    let (input, stdin) = match args.args.as_deref() {
        Some("-") => (read_argument(limits.max_args)?, Stdin::Empty),
        Some(json) => (json.as_bytes().to_vec(), Stdin::Inherit),
        None => (b"null".to_vec(), Stdin::Inherit),
    };
    let (stdout, stderr) = guest_output(args.json, typed);
    let task = Task::new(entry, input)
        .args(argv)
        .capabilities(caps)
        .limits(limits)
        .stdin(stdin)
        .stdout(stdout)
        .stderr(stderr);
    Ok((module, task))
}

/// The refusal of `run --task HANDLER`: a handler's argument is a
/// connection, which `serve` gives it.
pub(crate) fn handler_refused(name: &str, module: &Module) -> anyhow::Error {
    usage(format!(
        "`{name}` is a connection handler: it reads and writes a connection, which `run` does \
         not have; serve it with `wasmproc serve {} --listen 127.0.0.1:8080 --task {name}`",
        module.name()
    ))
}

/// Loads the module within the task's time limit: compiling a large module
/// counts against it (exit status 142), and Ctrl-C ends the wait (130).
fn load(
    args: &RunArgs,
    path: &std::path::Path,
    timeout: Option<Duration>,
    interrupt: &Interrupt,
) -> anyhow::Result<Module> {
    // One task needs one instance: a small pool starts faster.
    let runtime = args.load.runtime(1).build()?;
    let deadline = timeout.map(|limit| {
        let late = format!(
            "compiling `{}` took longer than the task's time limit of {}",
            path.display(),
            humantime::format_duration(limit)
        );
        (limit, late)
    });
    let path = path.to_owned();
    off_thread(
        "wasmproc-load",
        move || runtime.load(&path),
        deadline,
        interrupt,
        "cancelled while the module was loading",
    )
}

/// Runs the initializer over `module` and gives the snapshot the task runs
/// on. The initializer's own limits end it (with the status a task would
/// get); Ctrl-C ends the wait (130).
fn initialize(module: Module, init: Initializer, interrupt: &Interrupt) -> anyhow::Result<Module> {
    let cancelled = format!(
        "cancelled while the initializer `{}` was running",
        init.name()
    );
    // The token ends the initializer itself, not only the wait for it.
    let token = interrupt.token.clone();
    off_thread(
        "wasmproc-init",
        move || module.initialize_with_cancel(&init, &token),
        None,
        interrupt,
        &cancelled,
    )
}

/// Does `work` on a thread of its own, so that the wait for it can end
/// early: with exit status 142 and the deadline's message once its time
/// passes, with 130 and `cancelled` on Ctrl-C. A thread left behind then
/// ends with the process.
fn off_thread<T: Send + 'static>(
    name: &str,
    work: impl FnOnce() -> Result<T, wasmproc::Error> + Send + 'static,
    deadline: Option<(Duration, String)>,
    interrupt: &Interrupt,
    cancelled: &str,
) -> anyhow::Result<T> {
    let (done, finished) = crossbeam_channel::bounded(1);
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let _ = done.send(work());
        })
        .with_context(|| format!("cannot start the thread {name}"))?;
    let (timer, late) = match deadline {
        Some((limit, late)) => (crossbeam_channel::after(limit), late),
        None => (crossbeam_channel::never(), String::new()),
    };
    select! {
        recv(finished) -> result => Ok(result.with_context(|| format!("the thread {name} ended early"))??),
        recv(timer) -> _ => Err(wasmproc::Error::new(
            ErrorKind::TaskFailed(ExitStatus::TimedOut),
            late,
        )
        .into()),
        recv(interrupt.pressed) -> _ => Err(wasmproc::Error::new(ErrorKind::Cancelled, cancelled).into()),
    }
}

/// The guest's argv, after MODULE: an SDK task takes its argument from
/// `--args`, never from argv, so a word there is a mistake (often a
/// misspelt host option, whose limit would silently not apply). For a
/// command, argv is the guest's own; a word that looks like a misspelt
/// host option only earns a warning, and none after an explicit `--`.
fn check_guest_argv(argv: &[String], typed: bool, separated: bool) -> anyhow::Result<()> {
    let Some(first) = argv.first() else {
        return Ok(());
    };
    let suggestion = misspelt_host_option(first);
    if typed {
        let hint = match &suggestion {
            Some(option) => format!("did you mean {option}? "),
            None => String::new(),
        };
        return Err(usage(format!(
            "`{first}` after the module is not a host option, and an SDK task takes no arguments \
             there: {hint}(host options go before or right after MODULE; the task's argument \
             goes in --args JSON)"
        )));
    }
    if separated {
        return Ok(());
    }
    // Any word may be one: `M.wasm input.txt --timout 1s`.
    for word in argv {
        if let Some(option) = misspelt_host_option(word) {
            say!(
                "wasmproc: warning: `{word}` goes to the guest, not to wasmproc; did you mean \
                 {option}? (host options go before or right after MODULE; write `--` before \
                 the guest's arguments to silence this)"
            );
        }
    }
    Ok(())
}

/// Reads the task's argument from stdin, up to `max` bytes: a stream that
/// does not end (`/dev/zero`) fails at the limit, not out of memory.
fn read_argument(max: usize) -> anyhow::Result<Vec<u8>> {
    crate::stdin::read_capped(max)
        .map_err(|error| {
            usage(format!(
                "cannot read the task's argument from stdin ({error}): give the JSON on stdin, \
                 or with --args"
            ))
        })?
        .ok_or_else(|| {
            usage(format!(
                "the argument on stdin is over the limit of {} bytes: raise it with --max-args",
                max
            ))
        })
}

/// Prints the outcome, best effort (see [`print_outcome`]).
fn report(args: &RunArgs, module: &Module, outcome: &Outcome) {
    print_outcome(module.name(), outcome, args.json);
}
