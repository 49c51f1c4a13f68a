//! `wasmproc map`: one task per input line, in parallel, NDJSON out.
//!
//! - `input`: lines read on a thread of their own, each sent to the pool as
//!   it arrives.
//! - `render`: each outcome made into its output bytes, on the worker that
//!   ran the task.
//! - `output`: the bytes written in turn, flushed promptly; the progress
//!   bar and the summary.
//!
//! The thread in between (here) only orders finished buffers, counts them
//! and writes them: nothing per task that a worker could do.

pub(crate) mod input;
mod output;
mod render;

use std::cell::RefCell;
use std::fs::File;
use std::io::{BufRead, BufReader, IsTerminal};
use std::sync::atomic::{AtomicBool, Ordering};

use std::sync::Arc;

use wasmproc::{
    Capabilities, Entry, ErrorKind, Executor, ExitStatus, Isolation, Limits, MapOptions, Module,
    Outcome, Pool, ProcessOptions,
};
use wasmproc_cluster::Cluster;

use crate::bundle::BundleWriter;
use crate::flags::{IsolationArg, MapArgs};
use crate::signals::STOP_WITHIN;
use crate::usage;
use crate::waiting::HostWatch;
use input::{Fed, LineNumbers, Remembered, Shape};
use output::{Summary, progress_bar};
use render::{MapBundles, Output, Rendered, Renderer};

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

/// The most tasks `map` runs at once: each costs an instance's address
/// space and a thread or a process.
const MAX_JOBS: usize = 1024;

pub(crate) fn map(args: MapArgs) -> anyhow::Result<u8> {
    let cluster = args.nats.options();
    if cluster.is_some() {
        refuse_local_only_flags(&args)?;
    }
    let limits = args.limits.to_limits()?;
    let caps = args.caps.to_capabilities()?;
    let init = args.init.to_initializer(&caps, &limits)?;
    let workers = match args.jobs {
        Some(0) => return Err(usage("-j must be at least 1")),
        Some(n) if n > MAX_JOBS => {
            return Err(usage(format!(
                "-j {n} is more than wasmproc runs at once ({MAX_JOBS}): give -j {MAX_JOBS} or less"
            )));
        }
        Some(n) => n,
        None => std::thread::available_parallelism().map_or(1, usize::from),
    };
    if args.chunksize == 0 {
        return Err(usage("--chunksize must be at least 1"));
    }
    if args.chunksize > wasmproc::MAX_CHUNKSIZE {
        return Err(usage(format!(
            "--chunksize {} is more tasks than one instance runs in a row ({}): give \
             --chunksize {} or less",
            args.chunksize,
            wasmproc::MAX_CHUNKSIZE,
            wasmproc::MAX_CHUNKSIZE
        )));
    }
    let instances = u32::try_from(workers).unwrap_or(u32::MAX);
    let runtime = args.load.runtime(instances).build()?;
    let module = runtime.load(&args.module)?;
    // A failing initializer stops the map before any task runs, with its
    // status.
    let module = match &init {
        Some(init) => module.initialize_with(init).map_err(could_not_start)?,
        None => module,
    };
    let shape = shape_of(&module, args.task.as_deref(), args.invoke.invoke.as_deref())?;
    // A module that cannot be linked would fail every line: refuse it once.
    module.check_imports()?;
    let (input, total) = open_input(args.input.as_deref())?;

    let isolation = match args
        .caps
        .isolation
        .unwrap_or_else(|| default_isolation(workers))
    {
        IsolationArg::Thread => Isolation::Thread,
        IsolationArg::Process => Isolation::Process(ProcessOptions::default()),
    };
    let map = Map {
        args: &args,
        module: &module,
        shape,
        input,
        total,
        caps,
        limits: limits.clone(),
    };
    // The one place that knows where tasks run; the rest goes through the
    // library's `Executor`, the same for every back end.
    match cluster {
        Some(options) => {
            let url = options.url().to_owned();
            let cluster = Cluster::connect(options)?;
            let remote = cluster.upload_file(&args.module)?.limits(limits);
            let watch = HostWatch::start(Arc::new(cluster.clone()), url);
            map.run(Arc::new(cluster.executor(&remote)), Some(watch))
        }
        None => {
            let pool = Arc::new(
                Pool::builder(&module)
                    .workers(workers)
                    .limits(limits)
                    .isolation(isolation)
                    .build()?,
            );
            let code = map.run(Arc::clone(&pool), None);
            // The Ctrl-C handler keeps a reference to the pool, so it is
            // never dropped: shut it down here, which also ends its worker
            // processes rather than leaving them to notice the closed pipe.
            pool.shutdown(wasmproc::Shutdown::Cancel);
            code
        }
    }
}

/// A map that could not start exits 126–128, as the exit-status table says
/// of `map`: an initializer's failure, whatever its own status (a trap's
/// 134, a timeout's 142), is the map's 126, its status named in the
/// message; a bad argument stays 128, Ctrl-C 130.
fn could_not_start(error: wasmproc::Error) -> wasmproc::Error {
    match error.exit_status() {
        ExitStatus::CannotRun
        | ExitStatus::NotFound
        | ExitStatus::BadInvocation
        | ExitStatus::Cancelled => error,
        status => wasmproc::Error::new(
            ErrorKind::CannotRun,
            format!(
                "{} (the initializer ended {}, exit status {}): the map could not start",
                error.message(),
                status.name(),
                status.code()
            ),
        )
        .caused_by(error),
    }
}

/// A map, prepared: what it runs and over which input.
struct Map<'a> {
    args: &'a MapArgs,
    module: &'a Module,
    shape: Shape,
    input: input::Input,
    total: Option<u64>,
    caps: Capabilities,
    limits: Limits,
}

impl Map<'_> {
    /// Runs the map on `executor`: lines in, one line out per task, the
    /// summary; its exit status.
    fn run<E: Executor + 'static>(
        self,
        executor: Arc<E>,
        watch: Option<HostWatch>,
    ) -> anyhow::Result<u8> {
        let Map {
            args,
            module,
            shape,
            input,
            total,
            caps,
            limits,
        } = self;
        let max_input = limits.max_args;
        let interrupted = Arc::new(AtomicBool::new(false));
        {
            let executor = Arc::clone(&executor);
            let interrupted = Arc::clone(&interrupted);
            crate::signals::on_interrupt(
                move || {
                    interrupted.store(true, Ordering::SeqCst);
                    // Ends what runs and the map's intake; the reader stops too.
                    executor.cancel_all();
                },
                Some(STOP_WITHIN),
                "cancel the tasks",
            );
        }

        let lines = LineNumbers::default();
        let replay = match &args.replay_dir {
            Some(dir) => Some(Arc::new(MapBundles {
                writer: BundleWriter::new(
                    dir,
                    &args.module,
                    module.initialized_by(),
                    args.load.stub_imports,
                )?,
                remembered: Remembered::default(),
                shape: shape.clone(),
                caps: caps.clone(),
                limits: limits.clone(),
            })),
            None => None,
        };
        let remembered = replay.as_ref().map(|replay| replay.remembered.clone());
        let renderer = Arc::new(Renderer {
            output: if args.results_only {
                Output::ResultsOnly
            } else {
                Output::Objects
            },
            lines: lines.clone(),
            replay,
            task: match &shape {
                Shape::Typed(name) => Some((name.clone(), module.signature(name).cloned())),
                Shape::Command | Shape::Invoke(_) => None,
            },
        });
        let sweeper = Arc::clone(&renderer);
        let render = move |index: usize, outcome| renderer.render(index, outcome);
        let mut bundles = 0usize;
        let progress = progress_bar(total);
        // Each `inc` reads the clock: not worth it per task for a bar nobody sees.
        let shown = !progress.is_hidden();
        let out = output::StdoutWriter::new();
        let mut summary = Summary::new();
        let done = RefCell::new(Done::default());
        let mut emit = |rendered: Rendered| -> std::io::Result<()> {
            done.borrow_mut().mark(rendered.index, &rendered.status);
            if shown {
                progress.inc(1);
                if rendered.status != ExitStatus::Exited(0) {
                    progress.set_message(format!("{} failed", summary.failed() + 1));
                }
            }
            bundles += usize::from(rendered.bundled);
            if let Some(note) = &rendered.note {
                progress.suspend(|| say!("{note}"));
            }
            summary.count(rendered.status);
            if let Some(watch) = &watch {
                watch.outcome();
            }
            out.write(&rendered.bytes)
        };
        // The reader runs on a thread of its own, which is not waited for: it
        // may stay blocked on its input after the results end (Ctrl-C, a
        // closed stdout).
        let fed = Arc::new(Fed::default());
        let feed = |tasks: wasmproc::TaskSender| {
            let (lines, stop) = (lines.clone(), Arc::clone(&interrupted));
            let read = Arc::clone(&fed);
            let making = input::Making {
                shape,
                caps: caps.clone(),
                max: max_input,
            };
            std::thread::Builder::new()
                .name("wasmproc-map-input".into())
                .spawn(move || {
                    let remembered = remembered.as_ref();
                    input::feed(input, &making, &tasks, &lines, remembered, &stop, &read)
                })
        };
        let written = (|| {
            let options = MapOptions::new()
                .unordered(args.unordered)
                .chunksize(args.chunksize);
            let (tasks, outcomes) = executor.map_stream_with(options, Box::new(render));
            feed(tasks)?;
            for (_, rendered) in outcomes {
                emit(rendered)?;
            }
            if interrupted.load(Ordering::SeqCst) {
                // Every line read ends in exactly one line out: the tasks that
                // never started (still in the intake when Ctrl-C came) too.
                let missing = done.borrow().missing(fed.get().tasks);
                for index in missing {
                    let outcome = Outcome::not_run(
                        ExitStatus::Cancelled,
                        "cancelled (Ctrl-C) before it started",
                    );
                    emit(sweeper.render(index, outcome))?;
                }
            }
            out.finish()
        })();
        progress.finish_and_clear();
        let quiet = match written {
            Ok(()) => false,
            // The reader of our output went away (`| head`): stop quietly.
            Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => true,
            Err(error) => return Err(anyhow::Error::new(error).context("cannot write to stdout")),
        };
        if !quiet {
            say!("{}", summary.line());
            if interrupted.load(Ordering::SeqCst) {
                let read = fed.get().lines;
                let done = done.borrow();
                let first_cancelled = done.first_cancelled.map(|index| lines.line_of(index));
                say!(
                    "{}",
                    interrupted_note(args.input.as_deref(), read, done.cancelled, first_cancelled)
                );
            }
            if let Some(dir) = &args.replay_dir
                && bundles > 0
            {
                say!(
                    "wasmproc map: {} in {} (wasmproc replay BUNDLE)",
                    crate::words::count(bundles as u64, "replay bundle", "replay bundles"),
                    dir.display()
                );
            }
        }
        Ok(if interrupted.load(Ordering::SeqCst) {
            ExitStatus::Cancelled.code()
        } else if summary.failed() > 0 {
            SOME_TASKS_FAILED
        } else {
            0
        })
    }
}

/// Flags that choose how this machine runs tasks, which the worker hosts
/// of a cluster decide for themselves.
fn refuse_local_only_flags(args: &MapArgs) -> anyhow::Result<()> {
    let refused = [
        (args.jobs.is_some(), "-j"),
        (args.caps.isolation.is_some(), "--isolation"),
        (args.chunksize != 1, "--chunksize"),
        (args.init.init.is_some(), "--init"),
    ];
    match refused.iter().find(|(given, _)| *given) {
        Some((_, flag)) => Err(usage(format!(
            "{flag} is not for a map on a cluster (--nats): each worker host sets how it runs \
             tasks (`wasmproc worker -j N --isolation …`); drop {flag}"
        ))),
        None => Ok(()),
    }
}

/// Which of a map's tasks have their line out, and which of those were
/// cancelled.
#[derive(Default)]
struct Done {
    /// One bit per task index.
    bits: Vec<u64>,
    cancelled: usize,
    /// The first task (by index) that ended cancelled.
    first_cancelled: Option<usize>,
}

impl Done {
    fn mark(&mut self, index: usize, status: &ExitStatus) {
        let (word, bit) = (index / 64, index % 64);
        if self.bits.len() <= word {
            self.bits.resize(word + 1, 0);
        }
        self.bits[word] |= 1 << bit;
        if *status == ExitStatus::Cancelled {
            self.cancelled += 1;
            self.first_cancelled = Some(self.first_cancelled.map_or(index, |i| i.min(index)));
        }
    }

    fn has(&self, index: usize) -> bool {
        self.bits
            .get(index / 64)
            .is_some_and(|word| word & (1 << (index % 64)) != 0)
    }

    /// The tasks below `made` without a line out.
    fn missing(&self, made: usize) -> Vec<usize> {
        (0..made).filter(|&index| !self.has(index)).collect()
    }
}

/// What Ctrl-C left undone, for the summary: how many lines were read and
/// cancelled, how many were never read, and the first line not done (a
/// cancelled one, or else the first unread), where a later run resumes.
fn interrupted_note(
    input: Option<&std::path::Path>,
    read: usize,
    cancelled: usize,
    first_cancelled: Option<usize>,
) -> String {
    let unread = input
        .filter(|path| path.as_os_str() != "-" && path.is_file())
        .and_then(|path| File::open(path).ok())
        .map(|file| {
            BufReader::new(file)
                .lines()
                .skip(read)
                .map_while(Result::ok)
                .filter(|line| !line.trim().is_empty())
                .count()
        });
    let first_not_done = first_cancelled.map_or(read, |line| line.min(read)) + 1;
    let read_part = format!(
        "{} read ({} cancelled)",
        crate::words::count(read as u64, "input line", "input lines"),
        crate::words::thousands(cancelled as u64)
    );
    match unread {
        Some(0) if cancelled == 0 => format!(
            "wasmproc map: interrupted after every input line was done ({})",
            crate::words::count(read as u64, "line", "lines")
        ),
        Some(unread) => format!(
            "wasmproc map: interrupted: {read_part}, {} never read; the first line not done \
             is line {first_not_done}",
            crate::words::thousands(unread as u64)
        ),
        None => format!(
            "wasmproc map: interrupted: {read_part}, the rest of the input never read; the \
             first line not done is line {first_not_done}"
        ),
    }
}

fn shape_of(module: &Module, task: Option<&str>, invoke: Option<&str>) -> anyhow::Result<Shape> {
    let entry = match (task, invoke) {
        (Some(name), _) => Entry::Task(name.to_owned()),
        (None, Some(export)) => Entry::Export(export.to_owned()),
        (None, None) => Entry::Auto,
    };
    Ok(match module.resolve(&entry)? {
        Entry::Task(name) if module.signature(&name).is_some_and(|s| s.is_handler()) => {
            return Err(crate::run::handler_refused(&name, module));
        }
        Entry::Task(name) => Shape::Typed(name),
        Entry::Export(export) => Shape::Invoke(export),
        _ => Shape::Command,
    })
}

/// The input lines and, for a file, how many non-blank lines it has (for
/// the progress bar).
fn open_input(path: Option<&std::path::Path>) -> anyhow::Result<(input::Input, Option<u64>)> {
    let stdin = || -> input::Input { BufReader::new(Box::new(std::io::stdin())) };
    match path {
        None => Ok((stdin(), None)),
        Some(path) if path.as_os_str() == "-" => Ok((stdin(), None)),
        Some(path) => {
            let open = || {
                File::open(path).map_err(|error| {
                    usage(format!(
                        "cannot open the input `{}`: {error}; give an NDJSON file, or `-` for stdin",
                        path.display()
                    ))
                })
            };
            if std::fs::metadata(path).is_ok_and(|m| m.is_dir()) {
                return Err(usage(format!(
                    "the input `{}` is a directory; give an NDJSON file, or `-` for stdin",
                    path.display()
                )));
            }
            let regular = std::fs::metadata(path).is_ok_and(|m| m.is_file());
            let total = if regular && std::io::stderr().is_terminal() {
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
            Ok((BufReader::new(Box::new(open()?)), total))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::interrupted_note;

    /// Every form of the note `map` ends with after Ctrl-C.
    #[test]
    fn the_interrupted_note_in_every_form() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.ndjson");
        std::fs::write(&input, "1\n".repeat(2_501)).unwrap();
        assert_eq!(
            interrupted_note(Some(&input), 2_501, 0, None),
            "wasmproc map: interrupted after every input line was done (2,501 lines)"
        );
        assert_eq!(
            interrupted_note(Some(&input), 1, 1, Some(0)),
            "wasmproc map: interrupted: 1 input line read (1 cancelled), 2,500 never read; the \
             first line not done is line 1"
        );
        assert_eq!(
            interrupted_note(None, 1_200, 3, None),
            "wasmproc map: interrupted: 1,200 input lines read (3 cancelled), the rest of the \
             input never read; the first line not done is line 1201"
        );
    }
}
