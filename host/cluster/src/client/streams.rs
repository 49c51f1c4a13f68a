//! A submitted task's streams, from afar: a stdin to be read as it goes is
//! read here first and travels as bytes; output to be passed through comes
//! back captured and is written out here when the outcome arrives.

use std::io::{IsTerminal, Read, Write};

use wasmproc::{Limits, Outcome, Output, Stdin, Task};

/// Where a task's passed-through output goes once its outcome is in.
pub(crate) struct PassedThrough {
    stdout: Output,
    stderr: Output,
}

/// The task as it can travel, and where its output goes when it is back.
pub(crate) fn for_the_wire(task: Task) -> (Task, PassedThrough) {
    let passed = PassedThrough {
        stdout: task.get_stdout().clone(),
        stderr: task.get_stderr().clone(),
    };
    let max = task.get_limits().cloned().unwrap_or_default().max_args;
    let stdin = match task.get_stdin() {
        // Nobody types into a task that runs elsewhere.
        Stdin::Inherit if std::io::stdin().is_terminal() => Ok(Stdin::Empty),
        Stdin::Inherit => read_capped(std::io::stdin(), max),
        Stdin::Reader(reader) => {
            let mut reader = crate::poison::lock(reader);
            read_capped(&mut *reader, max)
        }
        other => Ok(other.clone()),
    };
    let task = match stdin {
        Ok(stdin) => task
            .stdin(stdin)
            .stdout(Output::Capture)
            .stderr(Output::Capture),
        Err(why) => Task::rejected(why),
    };
    (task, passed)
}

/// Everything `reader` gives, refused past `max` bytes.
fn read_capped(reader: impl Read, max: usize) -> Result<Stdin, String> {
    let mut bytes = Vec::new();
    reader
        .take(max as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|error| format!("cannot read the task's stdin: {error}"))?;
    if bytes.len() > max {
        return Err(format!(
            "the task's stdin is over the limit of {max} bytes on a task's input \
             (Limits::max_args, {} by default)",
            Limits::default().max_args
        ));
    }
    Ok(Stdin::Bytes(bytes.into()))
}

impl PassedThrough {
    /// Writes the captured output where the task wanted it passed through
    /// (it is then no longer in the outcome, as with a local run).
    pub(crate) fn write_out(&self, outcome: &mut Outcome) {
        pass(&self.stdout, &mut outcome.stdout.bytes, Stream::Stdout);
        pass(&self.stderr, &mut outcome.stderr.bytes, Stream::Stderr);
    }
}

#[derive(Clone, Copy)]
enum Stream {
    Stdout,
    Stderr,
}

fn pass(output: &Output, bytes: &mut Vec<u8>, stream: Stream) {
    // Best effort, as a local guest's writes to a closed stream are.
    match output {
        Output::Inherit => {
            let _ = match stream {
                Stream::Stdout => {
                    let mut out = std::io::stdout().lock();
                    out.write_all(bytes).and_then(|()| out.flush())
                }
                Stream::Stderr => std::io::stderr().write_all(bytes),
            };
        }
        Output::Writer(writer) => {
            let mut writer = crate::poison::lock(writer);
            let _ = writer.write_all(bytes).and_then(|()| writer.flush());
        }
        Output::Capture | Output::Discard => return,
    }
    bytes.clear();
}
