//! Each task's output, made on the pool thread that ran the task (the map's
//! transform), so that `map`'s one coordinating thread only orders finished
//! byte buffers and writes them: rendering runs on every worker at once.

use std::sync::Arc;

use wasmproc::{Capabilities, Entry, ExitStatus, Limits, Outcome, TaskSignature};

use super::input::{LineNumbers, Remembered, Shape};
use crate::bundle::{BundleWriter, Inputs};
use crate::report::{OutcomeJson, ResultJson};

/// What `map` writes for each task.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Output {
    /// One JSON object per task: its input line and what `run --json`
    /// prints.
    Objects,
    /// Only the answers, in input order: a typed task's result as one JSON
    /// line, a command's stdout as it wrote it. A task that fails writes
    /// nothing there; its status and message go to stderr.
    ResultsOnly,
}

/// One task's outcome as `map` writes it.
pub(crate) struct Rendered {
    /// The task's index among the map's tasks.
    pub(crate) index: usize,
    /// For stdout.
    pub(crate) bytes: Vec<u8>,
    pub(crate) status: ExitStatus,
    /// A line for stderr: a failure, when only results go to stdout.
    pub(crate) note: Option<String>,
    /// Whether a replay bundle was written for it.
    pub(crate) bundled: bool,
}

/// The replay bundles of failed tasks (`--replay-dir`).
pub(crate) struct MapBundles {
    pub(crate) writer: BundleWriter,
    pub(crate) remembered: Remembered,
    pub(crate) shape: Shape,
    pub(crate) caps: Capabilities,
    pub(crate) limits: Limits,
}

/// Turns outcomes into output; shared by every worker.
pub(crate) struct Renderer {
    pub(crate) output: Output,
    pub(crate) lines: LineNumbers,
    pub(crate) replay: Option<Arc<MapBundles>>,
    /// A typed task's name and recorded signature: an argument of the
    /// wrong shape is explained with them.
    pub(crate) task: Option<(String, Option<TaskSignature>)>,
}

impl Renderer {
    /// Renders the outcome of task `index`.
    pub(crate) fn render(&self, index: usize, mut outcome: Outcome) -> Rendered {
        let line = self.lines.line_of(index);
        if let Some((name, signature)) = &self.task {
            let given = crate::argument_errors::Given::Line;
            crate::argument_errors::explain(name, signature.as_ref(), given, &mut outcome);
        }
        // A task that failed before it ran (invalid JSON, say) does not know
        // where it came from: its message names its line.
        if outcome.status == ExitStatus::BadInvocation
            && let Some(message) = &outcome.message
            && !message.starts_with("input line ")
        {
            outcome.message = Some(format!("input line {}: {message}", line + 1));
        }
        let bundled = self
            .replay
            .as_deref()
            .is_some_and(|replay| replay.record(index, line, &outcome));
        let mut bytes = Vec::new();
        let mut note = None;
        match self.output {
            Output::Objects => OutcomeJson::new(&outcome, Some(line)).write_line(&mut bytes),
            Output::ResultsOnly if outcome.success() => match &outcome.result {
                Some(result) => {
                    // Written as the JSON object line would hold it.
                    let _ = serde_json::to_writer(&mut bytes, &ResultJson::of(result));
                    bytes.push(b'\n');
                }
                None => bytes.extend_from_slice(&outcome.stdout.bytes),
            },
            Output::ResultsOnly => note = Some(failure_note(line, &outcome)),
        }
        Rendered {
            index,
            bytes,
            status: outcome.status,
            note,
            bundled,
        }
    }
}

/// The stderr line of a failed task when only results go to stdout.
fn failure_note(line: usize, outcome: &Outcome) -> String {
    let mut note = format!("wasmproc map: input line {}: {}", line + 1, outcome.status);
    if let Some(message) = outcome.message.as_deref().filter(|m| !m.is_empty()) {
        note.push_str(": ");
        note.push_str(
            message
                .strip_prefix(&format!("input line {}: ", line + 1))
                .unwrap_or(message),
        );
    }
    note
}

impl MapBundles {
    /// Writes the bundle of a failed task of input line `line` (from 0);
    /// whether one was written.
    fn record(&self, index: usize, line: usize, outcome: &Outcome) -> bool {
        let Some(text) = self.remembered.take(index) else {
            return false;
        };
        let (entry, argument, argv) = match &self.shape {
            Shape::Typed(name) => (Entry::Task(name.clone()), &text[..], Vec::new()),
            Shape::Command => (
                Entry::Command,
                &b"null"[..],
                serde_json::from_slice::<Vec<String>>(&text).unwrap_or_default(),
            ),
            Shape::Invoke(export) => (
                Entry::Export(export.clone()),
                &b"null"[..],
                serde_json::from_slice::<Vec<String>>(&text).unwrap_or_default(),
            ),
        };
        let inputs = Inputs {
            entry: &entry,
            argument,
            argv: &argv,
            caps: &self.caps,
            limits: &self.limits,
            stdin: None,
        };
        self.writer
            .record(&format!("line-{}", line + 1), inputs, outcome)
            .is_some()
    }
}
