//! The argv rewriter: `run`'s host options may follow MODULE.

use std::ffi::OsString;

use clap::CommandFactory;

use super::Cli;

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

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use super::*;
    use crate::flags::testing::{parse, run_args};

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
}
