//! `wasmproc run`: one task, run like a program.

use std::io::{Read, Write};

use anyhow::Context;
use wasmproc::{CancelToken, Entry, Output, Runtime, Stdin, Task};

use super::Usage;
use super::args::RunArgs;
use super::report::{failure_line, outcome_json};

pub(crate) fn run(args: RunArgs) -> anyhow::Result<u8> {
    // Ctrl-C cancels the task (exit status 130) rather than killing the
    // host mid-write; the guest is torn down within a millisecond.
    // Installed first, so that a Ctrl-C during loading also ends in 130.
    let token = CancelToken::new();
    let on_interrupt = token.clone();
    if let Err(error) = ctrlc::set_handler(move || on_interrupt.cancel()) {
        eprintln!("wasmproc: warning: Ctrl-C will not cancel the task: {error}");
    }
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
        return Err(Usage(format!(
            "--args is the argument of an SDK task, and `{}` runs its `_start`: pass a command's \
             arguments after MODULE, or name a task with --task",
            module.name()
        ))
        .into());
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

    let outcome = module.run_with(&task, &token);

    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer(&mut out, &outcome_json(&outcome))?;
        writeln!(out)?;
    } else {
        if let Some(result) = &outcome.result {
            out.write_all(result)?;
            writeln!(out)?;
        }
        if let Some(line) = failure_line(module.name(), &outcome) {
            eprintln!("{line}");
        }
    }
    out.flush()?;
    Ok(outcome.status.code())
}
