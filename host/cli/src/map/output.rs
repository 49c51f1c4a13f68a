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

/// `n` with a comma between each group of three digits.
pub(crate) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    grouped
}

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
        let seconds = self.started.elapsed().as_secs_f64();
        let rate = if seconds > 0.0 {
            self.total as f64 / seconds
        } else {
            0.0
        };
        let mut line = format!(
            "wasmproc map: {} task{} in {seconds:.2}s ({} tasks/s): {} succeeded",
            thousands(self.total as u64),
            if self.total == 1 { "" } else { "s" },
            thousands(rate.round() as u64),
            thousands(self.succeeded as u64)
        );
        if self.failed() > 0 {
            let mut keyed: Vec<(String, usize)> = self
                .failures
                .iter()
                .map(|(status, n)| (status_key(status), *n))
                .collect();
            keyed.sort();
            let failures: Vec<String> = keyed.iter().map(|(key, n)| format!("{n} {key}")).collect();
            line.push_str(&format!(
                ", {} failed ({})",
                self.failed(),
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
    use super::thousands;

    #[test]
    fn numbers_are_grouped_by_thousands() {
        let cases = [
            (0, "0"),
            (999, "999"),
            (1_000, "1,000"),
            (3_974, "3,974"),
            (1_234_567, "1,234,567"),
        ];
        for (n, text) in cases {
            assert_eq!(thousands(n), text);
        }
    }
}
