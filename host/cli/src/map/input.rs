//! `map`'s input: NDJSON lines read on a thread of their own and sent to
//! the pool as they arrive, so that a slow producer (`tail -f`, a person
//! typing) never holds up the results of the lines before.
//!
//! An outcome's index is its line's number counted from 0. Blank lines are
//! skipped but counted, so their numbers are not used; `LineNumbers` maps
//! the pool's task indexes back to line numbers, keeping one entry per run
//! of blank lines only.

use std::io::{BufRead, BufReader, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use wasmproc::{Capabilities, Task, TaskSender};

/// What each input line becomes.
#[derive(Clone)]
pub(crate) enum Shape {
    /// The line is the typed task's JSON argument.
    Typed(String),
    /// The line is a JSON array of argv strings for `_start`.
    Command,
    /// The line is a JSON array of argv strings: the arguments of the
    /// exported function named (`--invoke`).
    Invoke(String),
}

/// Task index → line index: where blank lines shifted the count. Read by
/// every worker (rendering), written only at a blank line.
#[derive(Clone, Default)]
pub(crate) struct LineNumbers(Arc<RwLock<Vec<(usize, usize)>>>);

impl LineNumbers {
    /// The 0-based line of task `index`.
    pub(crate) fn line_of(&self, index: usize) -> usize {
        let shifts = crate::poison::read(&self.0);
        // The last shift at or before `index` applies.
        let at = shifts.partition_point(|(task, _)| *task <= index);
        index + at.checked_sub(1).map_or(0, |i| shifts[i].1)
    }

    fn record(&self, task: usize, skipped_so_far: usize) {
        let mut shifts = crate::poison::write(&self.0);
        shifts.push((task, skipped_so_far));
    }
}

/// The text of each line in flight, by task index, while bundles for
/// `--replay-dir` may still be needed (the window bounds how many).
#[derive(Clone, Default)]
pub(crate) struct Remembered(Arc<Mutex<std::collections::HashMap<usize, Vec<u8>>>>);

impl Remembered {
    fn keep(&self, index: usize, line: &[u8]) {
        let mut lines = crate::poison::lock(&self.0);
        lines.insert(index, line.to_vec());
    }

    /// The line of task `index`, forgotten as it is taken.
    pub(crate) fn take(&self, index: usize) -> Option<Vec<u8>> {
        let mut lines = crate::poison::lock(&self.0);
        lines.remove(&index)
    }
}

/// How lines become tasks: the task's shape, the capabilities granted, and
/// the most bytes a line may have.
pub(crate) struct Making {
    pub(crate) shape: Shape,
    pub(crate) caps: Capabilities,
    pub(crate) max: usize,
}

/// How far the reader got: the lines it took from the input (blank ones
/// too) and the tasks it made of them, counted together so that one look
/// sees both at the same line.
#[derive(Default)]
pub(crate) struct Fed(Mutex<FedCount>);

/// A look at [`Fed`].
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct FedCount {
    pub(crate) lines: usize,
    pub(crate) tasks: usize,
}

impl Fed {
    pub(crate) fn get(&self) -> FedCount {
        *crate::poison::lock(&self.0)
    }

    fn set(&self, lines: usize, tasks: usize) {
        *crate::poison::lock(&self.0) = FedCount { lines, tasks };
    }
}

/// Reads `input` line by line until it ends or `stop` is set, sending one
/// task per non-blank line. A line over `max` bytes is not kept: it becomes
/// a task that fails alone (`bad_invocation`), and reading goes on after
/// it. A line whose read ends after `stop` is set is not counted: it is
/// left for a later run. Returns how many lines were read.
pub(crate) fn feed(
    input: Input,
    making: &Making,
    tasks: &TaskSender,
    lines: &LineNumbers,
    remembered: Option<&Remembered>,
    stop: &AtomicBool,
    fed: &Fed,
) -> usize {
    let (mut line_index, mut sent, mut skipped) = (0usize, 0usize, 0usize);
    // The shift from task to line index last recorded.
    let mut recorded = 0;
    let Making { shape, caps, max } = making;
    let max = *max;
    let mut buffer = Vec::new();
    let mut reader = LineReader {
        input,
        max,
        skipping: false,
    };
    // Tasks made from lines already read in, handed over together.
    let mut ready: Vec<Task> = Vec::new();
    let mut stop_after = false;
    while !stop_after && !stop.load(Ordering::SeqCst) {
        // Hand over what is ready before a read that may wait (a slow
        // producer), and in bounded batches.
        if !ready.is_empty()
            && (reader.input.buffer().is_empty() || ready.len() >= HAND_OVER)
            && tasks.send_all(std::mem::take(&mut ready)).is_err()
        {
            return line_index;
        }
        let number = line_index + 1;
        let read = reader.read(&mut buffer);
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let task = match read {
            Ok(Line::End) => break,
            Ok(Line::Text) if buffer.trim_ascii().is_empty() => {
                line_index += 1;
                skipped += 1;
                fed.set(line_index, sent);
                continue;
            }
            Ok(Line::Text) => {
                if let Some(remembered) = remembered {
                    remembered.keep(sent, &buffer);
                }
                task_for(shape, number, std::mem::take(&mut buffer), caps)
            }
            Ok(Line::TooLong) => Task::rejected(format!(
                "input line {number} is over the limit of {max} bytes on a task's input; \
                 raise it with --max-args"
            )),
            Err(error) => {
                // A failed read fails again (stdin a directory, a broken
                // device): one line says so, and the input ends there.
                stop_after = true;
                Task::rejected(format!(
                    "input line {number} could not be read, so the input ends here: {error}"
                ))
            }
        };
        if skipped != recorded {
            lines.record(sent, skipped);
            recorded = skipped;
        }
        ready.push(task);
        sent += 1;
        line_index += 1;
        fed.set(line_index, sent);
    }
    let _ = tasks.send_all(ready);
    line_index
}

/// Where `map`'s tasks go: a local pool or a cluster.
/// `map`'s input: lines, buffered (whether a read would wait is seen from
/// the buffer).
pub(crate) type Input = BufReader<Box<dyn Read + Send>>;

/// The most tasks handed to the pool at once.
const HAND_OVER: usize = 256;

enum Line {
    Text,
    /// Over the limit: reported at once, the rest of it skipped when the
    /// next line is read.
    TooLong,
    End,
}

/// Lines of at most `max` bytes from a reader: a longer line is reported
/// as soon as it passes the limit (a line that never ends, as from
/// `/dev/zero`, is still reported) and is never held.
struct LineReader {
    input: Input,
    max: usize,
    /// Inside an over-long line: skip to its end first.
    skipping: bool,
}

impl LineReader {
    /// Reads the next line into `buffer`, without its newline.
    fn read(&mut self, buffer: &mut Vec<u8>) -> std::io::Result<Line> {
        buffer.clear();
        let mut any = false;
        loop {
            let available = match self.input.fill_buf() {
                Ok(bytes) => bytes,
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(error),
            };
            if available.is_empty() {
                self.skipping = false;
                return Ok(if any { Line::Text } else { Line::End });
            }
            let newline = available.iter().position(|b| *b == b'\n');
            let chunk = &available[..newline.unwrap_or(available.len())];
            let used = newline.map_or(available.len(), |at| at + 1);
            if self.skipping {
                self.input.consume(used);
                self.skipping = newline.is_none();
                continue;
            }
            any = true;
            if buffer.len() + chunk.len() > self.max {
                self.input.consume(used);
                self.skipping = newline.is_none();
                buffer.clear();
                return Ok(Line::TooLong);
            }
            buffer.extend_from_slice(chunk);
            self.input.consume(used);
            if newline.is_some() {
                if buffer.last() == Some(&b'\r') {
                    buffer.pop();
                }
                return Ok(Line::Text);
            }
        }
    }
}

/// Reads every line of `bytes` into a task of `shape`, checked as a worker
/// would check it (for fuzzing).
pub(crate) fn fuzz_lines(bytes: &[u8], shape: &Shape) {
    let mut reader = LineReader {
        input: BufReader::new(Box::new(std::io::Cursor::new(bytes.to_vec()))),
        max: 1 << 10,
        skipping: false,
    };
    let mut buffer = Vec::new();
    let mut number = 0;
    while let Ok(Line::Text | Line::TooLong) = reader.read(&mut buffer) {
        number += 1;
        let task = task_for(
            shape,
            number,
            std::mem::take(&mut buffer),
            &Capabilities::default(),
        );
        let _ = task.get_args();
    }
}

fn task_for(shape: &Shape, number: usize, line: Vec<u8>, caps: &Capabilities) -> Task {
    match shape {
        Shape::Typed(name) => Task::call_json(name, line).capabilities(caps.clone()),
        Shape::Command => match serde_json::from_slice::<Vec<String>>(&line) {
            Ok(argv) => Task::command().args(argv).capabilities(caps.clone()),
            Err(error) => Task::rejected(format!(
                "input line {number}: a command's input is a JSON array of argv strings \
                 (e.g. [\"-c\", \"needle\"]): {error}"
            )),
        },
        Shape::Invoke(export) => match serde_json::from_slice::<Vec<String>>(&line) {
            Ok(argv) => Task::invoke(export).args(argv).capabilities(caps.clone()),
            Err(error) => Task::rejected(format!(
                "input line {number}: the input of `--invoke {export}` is a JSON array of its \
                 arguments as strings (e.g. [\"2\", \"0.5\"]): {error}"
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_read_with_a_cap() {
        let input: &'static [u8] = b"short\nfar too long a line\r\nok\r\nlast";
        let mut reader = LineReader {
            input: BufReader::new(Box::new(input)),
            max: 8,
            skipping: false,
        };
        let mut buffer = Vec::new();
        let mut next = || match reader.read(&mut buffer).unwrap() {
            Line::Text => String::from_utf8(buffer.clone()).unwrap(),
            Line::TooLong => "<too long>".into(),
            Line::End => "<end>".into(),
        };
        assert_eq!(next(), "short");
        assert_eq!(next(), "<too long>");
        assert_eq!(next(), "ok");
        assert_eq!(next(), "last");
        assert_eq!(next(), "<end>");
    }

    #[test]
    fn task_indexes_map_back_to_line_numbers() {
        let lines = LineNumbers::default();
        // Lines: 0 task, 1 blank, 2 blank, 3 task, 4 task, 5 blank, 6 task.
        lines.record(1, 2);
        lines.record(3, 3);
        assert_eq!(
            (0..4).map(|i| lines.line_of(i)).collect::<Vec<_>>(),
            [0, 3, 4, 6]
        );
    }
}
