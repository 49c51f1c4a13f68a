//! `map`'s output: each task's rendered bytes, written as soon as its turn
//! comes and flushed promptly (a line never waits in a buffer for the next
//! result), with a progress bar and a closing summary on stderr.

use std::io::{BufWriter, IsTerminal, Write};
use std::sync::{Arc, Condvar, Mutex};

use crate::poison::lock;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use wasmproc::ExitStatus;

/// How long a written line may wait in the buffer: long enough to batch
/// many lines into one write, short enough to stream.
const FLUSH_WITHIN: Duration = Duration::from_millis(50);

/// Rendered outcomes on stdout. A flusher thread, woken by the first line after
/// a flush, flushes within [`FLUSH_WITHIN`].
pub(crate) struct StdoutWriter {
    shared: Arc<Shared>,
}

struct Shared {
    out: Mutex<Buffered>,
    written: Condvar,
}

struct Buffered {
    out: BufWriter<std::io::Stdout>,
    dirty: bool,
    done: bool,
    /// The first error of a flush made by the flusher.
    failed: Option<std::io::Error>,
}

impl StdoutWriter {
    pub(crate) fn new() -> Self {
        let shared = Arc::new(Shared {
            out: Mutex::new(Buffered {
                out: BufWriter::with_capacity(1 << 16, std::io::stdout()),
                dirty: false,
                done: false,
                failed: None,
            }),
            written: Condvar::new(),
        });
        let flusher = Arc::clone(&shared);
        // Without the thread, lines are flushed when the buffer fills and at
        // the end: correct, only less prompt.
        let _ = std::thread::Builder::new()
            .name("wasmproc-map-flush".into())
            .spawn(move || flush_when_written(&flusher));
        StdoutWriter { shared }
    }

    /// Writes one outcome's rendered bytes.
    pub(crate) fn write(&self, bytes: &[u8]) -> std::io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        let mut out = lock(&self.shared.out);
        if let Some(error) = out.failed.take() {
            return Err(error);
        }
        out.out.write_all(bytes)?;
        if !out.dirty {
            out.dirty = true;
            self.shared.written.notify_one();
        }
        Ok(())
    }

    /// Flushes what is left and stops the flusher.
    pub(crate) fn finish(&self) -> std::io::Result<()> {
        let mut out = lock(&self.shared.out);
        out.done = true;
        self.shared.written.notify_one();
        if let Some(error) = out.failed.take() {
            return Err(error);
        }
        out.out.flush()
    }
}

fn flush_when_written(shared: &Shared) {
    let mut out = lock(&shared.out);
    loop {
        while !out.dirty && !out.done {
            out = crate::poison::wait(&shared.written, out);
        }
        if out.done {
            return;
        }
        // Let more lines join this flush.
        drop(out);
        std::thread::sleep(FLUSH_WITHIN);
        out = lock(&shared.out);
        out.dirty = false;
        if let Err(error) = out.out.flush() {
            out.failed.get_or_insert(error);
        }
    }
}

/// The progress bar on a terminal's stderr; hidden elsewhere.
pub(crate) fn progress_bar(total: Option<u64>) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = match total {
        Some(total) => ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr())
            .with_style(
                ProgressStyle::with_template(
                    "{bar:40} {pos}/{len} tasks  {rate}  eta {eta}  {msg}",
                )
                .map(with_rate)
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            ),
        None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()).with_style(
            ProgressStyle::with_template("{spinner} {pos} tasks  {rate}  {elapsed}  {msg}")
                .map(with_rate)
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        ),
    };
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

/// The bar's `{rate}`: whole tasks per second with thousands separators
/// (`3,974/s`, not indicatif's `3973.7641/s`).
fn with_rate(style: ProgressStyle) -> ProgressStyle {
    style.with_key(
        "rate",
        |state: &indicatif::ProgressState, out: &mut dyn std::fmt::Write| {
            let _ = write!(out, "{}/s", thousands(state.per_sec().round() as u64));
        },
    )
}

pub(crate) use crate::words::thousands;
use crate::words::{count, rate};

/// Counts outcomes by status for the closing line.
pub(crate) struct Summary {
    started: Instant,
    total: usize,
    succeeded: usize,
    /// Each failing status and its count; a few at most, so a list.
    failures: Vec<(ExitStatus, usize)>,
}

impl Summary {
    pub(crate) fn new() -> Self {
        Summary {
            started: Instant::now(),
            total: 0,
            succeeded: 0,
            failures: Vec::new(),
        }
    }

    pub(crate) fn count(&mut self, status: ExitStatus) {
        self.total += 1;
        if status == ExitStatus::Exited(0) {
            self.succeeded += 1;
            return;
        }
        match self.failures.iter_mut().find(|(seen, _)| *seen == status) {
            Some((_, count)) => *count += 1,
            None => self.failures.push((status, 1)),
        }
    }

    pub(crate) fn failed(&self) -> usize {
        self.total - self.succeeded
    }

    pub(crate) fn line(&self) -> String {
        self.line_after(self.started.elapsed())
    }

    /// The closing line, for a map that took `elapsed`.
    fn line_after(&self, elapsed: std::time::Duration) -> String {
        let mut line = format!(
            "wasmproc map: {} in {:.2}s ({}): {} succeeded",
            count(self.total as u64, "task", "tasks"),
            elapsed.as_secs_f64(),
            rate(self.total as u64, elapsed, "task", "tasks"),
            thousands(self.succeeded as u64)
        );
        if self.failed() > 0 {
            let mut keyed: Vec<(String, usize)> = self
                .failures
                .iter()
                .map(|(status, n)| (status_key(status), *n))
                .collect();
            keyed.sort();
            let failures: Vec<String> = keyed
                .iter()
                .map(|(key, n)| format!("{} {key}", thousands(*n as u64)))
                .collect();
            line.push_str(&format!(
                ", {} failed ({})",
                thousands(self.failed() as u64),
                failures.join(", ")
            ));
        }
        line
    }
}

/// How the summary names a failing status.
fn status_key(status: &ExitStatus) -> String {
    match status {
        ExitStatus::Exited(code) => format!("exited {code}"),
        ExitStatus::Trapped(kind) => format!("trapped ({kind})"),
        other => other.name().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::Summary;
    use wasmproc::{ExitStatus, TrapKind};

    /// Every form of `map`'s closing line: one task and many, none failed
    /// and several kinds of failure, counts past a thousand.
    #[test]
    fn the_summary_line_in_every_form() {
        let second = Duration::from_secs(1);
        let mut one = Summary::new();
        one.count(ExitStatus::Exited(0));
        assert_eq!(
            one.line_after(second),
            "wasmproc map: 1 task in 1.00s (1 task/s): 1 succeeded"
        );
        let mut many = Summary::new();
        for i in 0..100_000 {
            many.count(match i % 7 {
                0 => ExitStatus::BadInvocation,
                1 if i % 2 == 0 => ExitStatus::Trapped(TrapKind::Unreachable),
                _ => ExitStatus::Exited(0),
            });
        }
        assert_eq!(
            many.line_after(second * 2),
            "wasmproc map: 100,000 tasks in 2.00s (50,000 tasks/s): 78,571 succeeded, 21,429 \
             failed (14,286 bad_invocation, 7,143 trapped (unreachable))"
        );
        assert_eq!(
            Summary::new().line_after(second),
            "wasmproc map: 0 tasks in 1.00s (0 tasks/s): 0 succeeded"
        );
    }
}
