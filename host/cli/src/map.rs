//! `wasmproc map`: one task per input line, in parallel, NDJSON out.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{Map, Value};
use wasmproc::{
    Capabilities, Entry, ExitStatus, Isolation, Module, Outcome, Pool, ProcessOptions, Runtime,
    Task,
};

use crate::args::{IsolationArg, MapArgs};
use crate::report::outcome_json;
use crate::usage;

/// Where `map`'s workers run unless `--isolation` says otherwise, chosen
/// from the benchmark (README): at 2 workers a thread pool runs trivial
/// tasks 2–3 times faster than a process pool (no pipe round trip), while
/// threads in one process stop scaling at about 4 workers (the kernel's
/// memory-map work serializes per process; DESIGN.md's 16-core
/// measurement). So: threads up to 4 workers, processes beyond.
fn default_isolation(workers: usize) -> IsolationArg {
    if workers <= 4 {
        IsolationArg::Thread
    } else {
        IsolationArg::Process
    }
}

/// The exit status of a `map` in which some task did not exit 0.
const SOME_TASKS_FAILED: u8 = 123;

/// How often buffered output lines are flushed when stdout is not a
/// terminal: often enough to stream, rarely enough to batch.
const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// What each input line becomes.
enum Shape {
    /// The line is the typed task's JSON argument.
    Typed(String),
    /// The line is a JSON array of argv strings for `_start`.
    Command,
}

pub(crate) fn map(args: MapArgs) -> anyhow::Result<u8> {
    let limits = args.limits.to_limits()?;
    let caps = args.caps.to_capabilities()?;
    let workers = match args.jobs {
        Some(0) => return Err(usage("-j must be at least 1")),
        Some(n) => n,
        None => std::thread::available_parallelism().map_or(1, usize::from),
    };
    if args.chunksize == 0 {
        return Err(usage("--chunksize must be at least 1"));
    }
    let instances = u32::try_from(workers).unwrap_or(u32::MAX);
    let runtime = Runtime::builder().max_instances(instances).build()?;
    let module = runtime.load(&args.module)?;
    let shape = shape_of(&module, args.task.as_deref())?;
    let (input, total) = open_input(args.input.as_deref())?;

    let isolation = match args
        .caps
        .isolation
        .unwrap_or_else(|| default_isolation(workers))
    {
        IsolationArg::Thread => Isolation::Thread,
        IsolationArg::Process => Isolation::Process(ProcessOptions::default()),
    };
    let pool = Arc::new(
        Pool::builder(&module)
            .workers(workers)
            .limits(limits)
            .isolation(isolation)
            .build()?,
    );
    let interrupted = Arc::new(AtomicBool::new(false));
    {
        let pool = Arc::clone(&pool);
        let interrupted = Arc::clone(&interrupted);
        let installed = ctrlc::set_handler(move || {
            if interrupted.swap(true, Ordering::SeqCst) {
                std::process::exit(i32::from(ExitStatus::Cancelled.code()));
            }
            pool.cancel_all();
        });
        if let Err(error) = installed {
            eprintln!("wasmproc: warning: Ctrl-C will not cancel the tasks: {error}");
        }
    }

    let stop = Arc::clone(&interrupted);
    let tasks = input
        .lines()
        .enumerate()
        .take_while(move |_| !stop.load(Ordering::SeqCst))
        .filter_map(|(number, line)| match line {
            Ok(line) if line.trim().is_empty() => None,
            Ok(line) => Some(task_for(&shape, number + 1, line, &caps)),
            Err(error) => Some(Task::rejected(format!(
                "input line {}: {error}",
                number + 1
            ))),
        });

    let progress = progress_bar(total);
    let mut out = Output::new();
    let mut summary = Summary::new();
    let mut emit = |index: usize, outcome: Outcome| -> anyhow::Result<()> {
        progress.inc(1);
        summary.count(&outcome);
        out.write(index, &outcome)
    };
    if args.unordered {
        for (index, outcome) in pool.map_tasks_unordered(tasks).chunksize(args.chunksize) {
            emit(index, outcome)?;
        }
    } else {
        for (index, outcome) in pool.map_tasks(tasks).chunksize(args.chunksize).enumerate() {
            emit(index, outcome)?;
        }
    }
    out.finish()?;
    // The Ctrl-C handler keeps a reference to the pool, so it is never
    // dropped: shut it down here, which also ends its worker processes
    // rather than leaving them to notice the closed pipe.
    pool.shutdown(wasmproc::Shutdown::Drain);
    progress.finish_and_clear();
    eprintln!("{}", summary.line());

    Ok(if interrupted.load(Ordering::SeqCst) {
        ExitStatus::Cancelled.code()
    } else if summary.failed() > 0 {
        SOME_TASKS_FAILED
    } else {
        0
    })
}

fn shape_of(module: &Module, task: Option<&str>) -> anyhow::Result<Shape> {
    let entry = match task {
        Some(name) => Entry::Task(name.to_owned()),
        None => Entry::Auto,
    };
    Ok(match module.resolve(&entry)? {
        Entry::Task(name) => Shape::Typed(name),
        _ => Shape::Command,
    })
}

/// The input lines and, for a file, how many non-blank lines it has (for
/// the progress bar).
fn open_input(path: Option<&std::path::Path>) -> anyhow::Result<(Box<dyn BufRead>, Option<u64>)> {
    match path {
        None => Ok((Box::new(std::io::stdin().lock()), None)),
        Some(path) if path.as_os_str() == "-" => Ok((Box::new(std::io::stdin().lock()), None)),
        Some(path) => {
            let open = || {
                File::open(path).map_err(|error| {
                    usage(format!(
                        "cannot open the input `{}`: {error}; give an NDJSON file, or `-` for stdin",
                        path.display()
                    ))
                })
            };
            let total = if std::io::stderr().is_terminal() {
                let lines = BufReader::new(open()?).lines();
                Some(
                    lines
                        .map_while(Result::ok)
                        .filter(|l| !l.trim().is_empty())
                        .count() as u64,
                )
            } else {
                None
            };
            Ok((Box::new(BufReader::new(open()?)), total))
        }
    }
}

fn task_for(shape: &Shape, line_number: usize, line: String, caps: &Capabilities) -> Task {
    match shape {
        Shape::Typed(name) => Task::call_json(name, line.into_bytes()).capabilities(caps.clone()),
        Shape::Command => match serde_json::from_str::<Vec<String>>(&line) {
            Ok(argv) => Task::command().args(argv).capabilities(caps.clone()),
            Err(error) => Task::rejected(format!(
                "input line {line_number}: a command's input is a JSON array of argv strings \
                 (e.g. [\"-c\", \"needle\"]): {error}"
            )),
        },
    }
}

fn progress_bar(total: Option<u64>) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = match total {
        Some(total) => ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr())
            .with_style(
                ProgressStyle::with_template("{bar:40} {pos}/{len} tasks  {per_sec}  eta {eta}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            ),
        None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()).with_style(
            ProgressStyle::with_template("{spinner} {pos} tasks  {per_sec}  {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        ),
    };
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

/// NDJSON lines on stdout, flushed as they come when stdout is a terminal,
/// else in batches at least every [`FLUSH_EVERY`].
struct Output {
    out: BufWriter<std::io::Stdout>,
    terminal: bool,
    flushed: Instant,
}

impl Output {
    fn new() -> Self {
        Output {
            out: BufWriter::new(std::io::stdout()),
            terminal: std::io::stdout().is_terminal(),
            flushed: Instant::now(),
        }
    }

    fn write(&mut self, index: usize, outcome: &Outcome) -> anyhow::Result<()> {
        let mut line = Map::new();
        line.insert("index".into(), Value::from(index));
        if let Value::Object(fields) = outcome_json(outcome) {
            line.extend(fields);
        }
        serde_json::to_writer(&mut self.out, &line)?;
        self.out
            .write_all(b"\n")
            .context("cannot write to stdout")?;
        if self.terminal || self.flushed.elapsed() >= FLUSH_EVERY {
            self.out.flush().context("cannot write to stdout")?;
            self.flushed = Instant::now();
        }
        Ok(())
    }

    fn finish(&mut self) -> anyhow::Result<()> {
        self.out.flush().context("cannot write to stdout")
    }
}

/// Counts outcomes by status for the closing line.
struct Summary {
    started: Instant,
    total: usize,
    by_status: BTreeMap<String, usize>,
}

impl Summary {
    fn new() -> Self {
        Summary {
            started: Instant::now(),
            total: 0,
            by_status: BTreeMap::new(),
        }
    }

    fn count(&mut self, outcome: &Outcome) {
        self.total += 1;
        let key = match &outcome.status {
            ExitStatus::Exited(code) => format!("exited {code}"),
            ExitStatus::Trapped(kind) => format!("trapped ({kind})"),
            other => other.name().to_owned(),
        };
        *self.by_status.entry(key).or_default() += 1;
    }

    fn failed(&self) -> usize {
        self.total - self.by_status.get("exited 0").copied().unwrap_or(0)
    }

    fn line(&self) -> String {
        let seconds = self.started.elapsed().as_secs_f64();
        let rate = if seconds > 0.0 {
            self.total as f64 / seconds
        } else {
            0.0
        };
        let mut line = format!(
            "wasmproc map: {} tasks in {seconds:.2}s ({rate:.0} tasks/s): {} succeeded",
            self.total,
            self.total - self.failed()
        );
        if self.failed() > 0 {
            let failures: Vec<String> = self
                .by_status
                .iter()
                .filter(|(status, _)| status.as_str() != "exited 0")
                .map(|(status, n)| format!("{n} {status}"))
                .collect();
            line.push_str(&format!(
                ", {} failed ({})",
                self.failed(),
                failures.join(", ")
            ));
        }
        line
    }
}
