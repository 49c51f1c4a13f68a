//! Outcomes as the binary prints them: one JSON object, or a line for people.

use serde_json::{Value, json};
use wasmproc::{ExitStatus, Outcome};

/// The `--json` object of one outcome (also one line of `map`'s output).
pub(crate) fn outcome_json(outcome: &Outcome) -> Value {
    let result = outcome.result.as_deref().map(|bytes| {
        serde_json::from_slice::<Value>(bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
    });
    let trap = match &outcome.status {
        ExitStatus::Trapped(kind) => Value::from(kind.name()),
        _ => Value::Null,
    };
    json!({
        "status": outcome.status.name(),
        "exit_code": outcome.status.code(),
        "result": result,
        "message": outcome.message,
        "panicked": outcome.panicked,
        "trap": trap,
        "backtrace": outcome.backtrace,
        "stdout": outcome.stdout.text(),
        "stdout_truncated": outcome.stdout.truncated,
        "stderr": outcome.stderr.text(),
        "stderr_truncated": outcome.stderr.truncated,
        "fuel_used": outcome.fuel_used,
        "peak_memory_bytes": outcome.peak_memory_bytes,
        "duration_ms": outcome.duration.as_secs_f64() * 1000.0,
    })
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
        "duration_ms": 0.0,
    })
}

/// What a person reads on stderr when a run did not succeed; `None` for a
/// command that simply exited with its own code, as programs do.
pub(crate) fn failure_line(module: &str, outcome: &Outcome) -> Option<String> {
    let message = outcome.message.as_deref().filter(|m| !m.is_empty());
    let line = match (&outcome.status, message) {
        (ExitStatus::Exited(0), _) | (ExitStatus::Exited(_), None) => return None,
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
    Some(match &outcome.backtrace {
        Some(backtrace) => format!("{line}\n{}", backtrace.trim_end()),
        None => line,
    })
}
