//! Outcomes as the binary prints them: one JSON object, or a line for people;
//! and where a single task's guest output goes (`run`, `replay`).

use std::borrow::Cow;
use std::io::Write;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use wasmproc::{ExitStatus, Outcome, Output};

/// The `--json` object of one outcome, and one line of `map`'s output (which
/// adds the input line's `index` first). Borrowed from the outcome and
/// written straight out: `map` renders one per task, on its workers.
#[derive(Serialize)]
pub(crate) struct OutcomeJson<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    index: Option<usize>,
    status: &'static str,
    exit_code: u8,
    result: Option<ResultJson<'a>>,
    message: Option<&'a str>,
    panicked: bool,
    trap: Option<&'static str>,
    backtrace: Option<&'a str>,
    stdout: Cow<'a, str>,
    stdout_truncated: bool,
    stderr: Cow<'a, str>,
    stderr_truncated: bool,
    fuel_used: Option<u64>,
    peak_memory_bytes: u64,
    memory_asked_bytes: Option<u64>,
    duration_ms: f64,
}

impl<'a> OutcomeJson<'a> {
    /// The object for `outcome`; with `index`, a line of `map`'s output.
    pub(crate) fn new(outcome: &'a Outcome, index: Option<usize>) -> Self {
        OutcomeJson {
            index,
            status: outcome.status.name(),
            exit_code: outcome.status.code(),
            result: outcome.result.as_deref().map(ResultJson::of),
            message: outcome.message.as_deref(),
            panicked: outcome.panicked,
            trap: match &outcome.status {
                ExitStatus::Trapped(kind) => Some(kind.name()),
                _ => None,
            },
            backtrace: outcome.backtrace.as_deref(),
            stdout: outcome.stdout.text(),
            stdout_truncated: outcome.stdout.truncated,
            stderr: outcome.stderr.text(),
            stderr_truncated: outcome.stderr.truncated,
            fuel_used: outcome.fuel_used,
            peak_memory_bytes: outcome.peak_memory_bytes,
            memory_asked_bytes: outcome.memory_asked_bytes,
            duration_ms: crate::words::millis(outcome.duration),
        }
    }

    /// Appends the object and a newline to `line`.
    pub(crate) fn write_line(&self, line: &mut Vec<u8>) {
        // Writing a struct of plain fields to memory cannot fail.
        let _ = serde_json::to_writer(&mut *line, self);
        line.push(b'\n');
    }
}

impl std::fmt::Display for OutcomeJson<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut line = Vec::new();
        let _ = serde_json::to_writer(&mut line, self);
        f.write_str(&String::from_utf8_lossy(&line))
    }
}

/// A typed task's result: its JSON as the guest wrote it, or, when it is not
/// JSON on one line, the bytes as a string.
#[derive(Serialize)]
#[serde(untagged)]
pub(crate) enum ResultJson<'a> {
    Json(&'a RawValue),
    /// JSON over several lines, written again on one.
    Compacted(Box<RawValue>),
    Text(Cow<'a, str>),
}

impl<'a> ResultJson<'a> {
    pub(crate) fn of(bytes: &'a [u8]) -> Self {
        // A newline inside the JSON would split an NDJSON line.
        let one_line = !bytes.iter().any(|b| matches!(b, b'\n' | b'\r'));
        match serde_json::from_slice::<&RawValue>(bytes) {
            Ok(raw) if one_line => ResultJson::Json(raw),
            Ok(_) => serde_json::from_slice::<Value>(bytes)
                .and_then(|value| RawValue::from_string(value.to_string()))
                .map_or_else(
                    |_| ResultJson::Text(String::from_utf8_lossy(bytes)),
                    ResultJson::Compacted,
                ),
            Err(_) => ResultJson::Text(String::from_utf8_lossy(bytes)),
        }
    }
}

/// The `--json` object for a run that could not start (bad flag, missing
/// or invalid module): the same fields, with the status and why.
pub(crate) fn setup_failure_json(status: &ExitStatus, message: &str) -> Value {
    json!({
        "status": status.name(),
        "exit_code": status.code(),
        "result": null,
        "message": message,
        "panicked": false,
        "trap": null,
        "backtrace": null,
        "stdout": "",
        "stdout_truncated": false,
        "stderr": "",
        "stderr_truncated": false,
        "fuel_used": null,
        "peak_memory_bytes": 0,
        "memory_asked_bytes": null,
        "duration_ms": 0.0,
    })
}

/// What a person reads on stderr when a run did not succeed; `None` for a
/// command that simply exited with its own code, as programs do.
pub(crate) fn failure_line(module: &str, outcome: &Outcome, stderr_shown: bool) -> Option<String> {
    let message = outcome.message.as_deref().filter(|m| !m.is_empty());
    let line = match (&outcome.status, message) {
        (ExitStatus::Exited(0), _) | (ExitStatus::Exited(_), None) => return None,
        // The SDK's panic hook has written the message on the guest's
        // stderr, which was shown: once is enough.
        (ExitStatus::Exited(code), Some(_)) if outcome.panicked && stderr_shown => {
            format!("wasmproc: {module}: the task panicked (exit code {code})")
        }
        (ExitStatus::Exited(code), Some(message)) if outcome.panicked => {
            format!("wasmproc: {module}: the task panicked (exit code {code}): {message}")
        }
        (ExitStatus::Exited(code), Some(message)) => {
            format!("wasmproc: {module}: the task failed with exit code {code}: {message}")
        }
        (status, message) => {
            let what = match status {
                ExitStatus::Trapped(kind) => format!("the guest trapped ({kind})"),
                ExitStatus::TimedOut => "timed out".into(),
                ExitStatus::MemoryExceeded => "memory limit exceeded".into(),
                ExitStatus::FuelExhausted => "fuel exhausted".into(),
                ExitStatus::Cancelled => "cancelled".into(),
                ExitStatus::CannotRun => "cannot run".into(),
                ExitStatus::BadInvocation => "bad invocation".into(),
                other => other.name().replace('_', " "),
            };
            match message {
                Some(message) => format!("wasmproc: {module}: {what}: {message}"),
                None => format!("wasmproc: {module}: {what}"),
            }
        }
    };
    Some(match backtrace_to_show(outcome) {
        Some(backtrace) => format!("{line}\n{backtrace}"),
        None => line,
    })
}

/// The backtrace a person is shown with a failed run's line. A limit's
/// message is one line: where the guest was when the limit struck is for
/// those who ask (`-v`, `--json`). A trap's backtrace is the bug's
/// location, shown always.
pub(crate) fn backtrace_to_show(outcome: &Outcome) -> Option<&str> {
    let limit = matches!(
        outcome.status,
        ExitStatus::TimedOut
            | ExitStatus::FuelExhausted
            | ExitStatus::MemoryExceeded
            | ExitStatus::Cancelled
    );
    let backtrace = outcome.backtrace.as_deref()?;
    (!limit || crate::verbose()).then(|| backtrace.trim_end())
}

/// Where a single task's guest output goes (`run`, `replay`): captured for
/// `--json`; otherwise passed through, except that a typed task's stdout
/// goes to stderr, so that stdout holds its result alone (`| jq` works).
pub(crate) fn guest_output(json: bool, typed: bool) -> (Output, Output) {
    if json {
        (Output::Capture, Output::Capture)
    } else if typed {
        let stderr: Arc<Mutex<dyn Write + Send>> = Arc::new(Mutex::new(std::io::stderr()));
        (Output::Writer(stderr), Output::Inherit)
    } else {
        (Output::Inherit, Output::Inherit)
    }
}

/// Prints a single task's outcome, as `run` and `replay` do: the `--json`
/// object, or else the result on stdout and, when it failed, a line on
/// stderr (the guest's own stderr was passed through, or written out).
///
/// Best effort: a closed stdout (`| head`) must neither panic nor replace
/// the task's exit status.
pub(crate) fn print_outcome(module: &str, outcome: &Outcome, json: bool) {
    let mut out = std::io::stdout().lock();
    if json {
        let _ = writeln!(out, "{}", OutcomeJson::new(outcome, None));
    } else {
        if let Some(result) = &outcome.result {
            let _ = out.write_all(result).and_then(|()| writeln!(out));
        }
        if let Some(line) = failure_line(module, outcome, true) {
            let _ = writeln!(std::io::stderr(), "{line}");
        }
    }
    let _ = out.flush();
}
