//! `wasmproc run`: one task, run like a program.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use wasmproc::{
    CancelToken, Entry, ExitStatus, Isolation, Module, Outcome, Output, Pool, ProcessOptions,
    Runtime, Stdin, Task,
};

use crate::args::{IsolationArg, RunArgs};
use crate::report::{failure_line, outcome_json, setup_failure_json};
use crate::usage;

pub(crate) fn run(args: RunArgs) -> anyhow::Result<u8> {
    let token = cancel_on_ctrl_c();
    match prepare(&args) {
        Ok((module, task)) => {
            let outcome = match args.caps.isolation {
                Some(IsolationArg::Process) => run_in_process(&module, task, &token)?,
                _ => module.run_with(&task, &token),
            };
            report(&args, &module, &outcome);
            Ok(outcome.status.code())
        }
        Err(error) if args.json => {
            // A caller that asked for JSON gets JSON, also when nothing ran.
            let status = crate::exit_status_of(&error);
            println!("{}", setup_failure_json(&status, &format!("{error:#}")));
            Ok(status.code())
        }
        Err(error) => Err(error),
    }
}

/// Runs the task in a worker process (this binary, started as one) and
/// replays its captured output on the host's streams.
fn run_in_process(module: &Module, task: Task, token: &CancelToken) -> anyhow::Result<Outcome> {
    let pool = Pool::builder(module)
        .workers(1)
        .isolation(Isolation::Process(ProcessOptions::default()))
        .cancel_on(token)
        .build()?;
    let task = task
        .stdin(Stdin::Empty)
        .stdout(Output::Capture)
        .stderr(Output::Capture);
    let outcome = pool.submit(task)?.into_outcome();
    let _ = std::io::stdout().write_all(&outcome.stdout.bytes);
    let _ = std::io::stderr().write_all(&outcome.stderr.bytes);
    Ok(outcome)
}

/// The first Ctrl-C cancels the task (exit status 130) rather than killing
/// the host mid-write; the guest is torn down within a millisecond. A second
/// one, for when the host is busy elsewhere (reading `--args -`, compiling a
/// large module), exits at once with 130. Installed first of all.
fn cancel_on_ctrl_c() -> CancelToken {
    let token = CancelToken::new();
    let on_interrupt = token.clone();
    let pressed = AtomicBool::new(false);
    let installed = ctrlc::set_handler(move || {
        if pressed.swap(true, Ordering::SeqCst) {
            std::process::exit(i32::from(ExitStatus::Cancelled.code()));
        }
        on_interrupt.cancel();
    });
    if let Err(error) = installed {
        eprintln!("wasmproc: warning: Ctrl-C will not cancel the task: {error}");
    }
    token
}

/// Loads the module and builds the task from the flags.
fn prepare(args: &RunArgs) -> anyhow::Result<(Module, Task)> {
    let (path, argv) = args.module_and_argv();
    let limits = args.limits.to_limits()?;
    let caps = args.caps.to_capabilities()?;
    // One task needs one instance: a small pool starts faster.
    let runtime = Runtime::builder().max_instances(1).build()?;
    let module = runtime.load(&path)?;

    let entry = match &args.task {
        Some(name) => Entry::Task(name.clone()),
        None => Entry::Auto,
    };
    if args.args.is_some() && args.task.is_none() && module.is_command() {
        return Err(usage(format!(
            "--args is the argument of an SDK task, and `{}` runs its `_start`: pass a command's \
             arguments after MODULE, or name a task with --task",
            module.name()
        )));
    }
    let (input, stdin) = match args.args.as_deref() {
        Some("-") => {
            let mut json = Vec::new();
            std::io::stdin()
                .read_to_end(&mut json)
                .context("cannot read the task's argument from stdin")?;
            (json, Stdin::Empty)
        }
        Some(json) => (json.as_bytes().to_vec(), Stdin::Inherit),
        None => (b"null".to_vec(), Stdin::Inherit),
    };
    let (stdout, stderr) = if args.json {
        (Output::Capture, Output::Capture)
    } else {
        (Output::Inherit, Output::Inherit)
    };
    let task = Task::new(entry, input)
        .args(argv)
        .capabilities(caps)
        .limits(limits)
        .stdin(stdin)
        .stdout(stdout)
        .stderr(stderr);
    Ok((module, task))
}

/// Prints the outcome. Printing is best effort: a closed stdout (`| head`)
/// must not replace the task's exit status.
fn report(args: &RunArgs, module: &Module, outcome: &Outcome) {
    let mut out = std::io::stdout().lock();
    if args.json {
        let _ = writeln!(out, "{}", outcome_json(outcome));
    } else {
        if let Some(result) = &outcome.result {
            let _ = out.write_all(result).and_then(|()| writeln!(out));
        }
        if let Some(line) = failure_line(module.name(), outcome) {
            eprintln!("{line}");
        }
    }
    let _ = out.flush();
}
