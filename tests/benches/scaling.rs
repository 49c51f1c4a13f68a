//! The scaling benchmark: `wasmproc map` at -j 1, 2, 4, … up to the core
//! count, in both isolations, beside the same CPU-bound program built
//! natively (`xargs -P J`) and Python's `multiprocessing.Pool`, all in one
//! run. It prints a Markdown table (the README's), and, on Linux, the CPU
//! time of `map`'s coordinating thread per task, read from
//! `/proc/PID/task/PID/schedstat` while it runs.
//!
//! Run: `cargo bench -p wasmproc-tests --bench scaling` (options:
//! `--tasks N` typed tasks per cell, default 200000; commands are a fifth of
//! that; `--cpu-tasks N` CPU-bound commands, default 64; `--rounds R` SHA-256
//! rounds per CPU-bound command, default 250, about 75 ms natively;
//! `--wasmproc PATH` runs that binary instead of building a release one;
//! `--only typed` runs the typed rows alone).
//!
//! The typed rows also read, on Linux, the CPU time of every thread of the
//! `map` process and of its worker processes, and print the CPU per task on
//! the coordinator, on the workers, on the input reader and on the other
//! threads (the epoch ticker, relays), and the throughput the first three
//! imply for 16 workers: the model of a 16-core machine when none is at
//! hand.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use std::collections::HashMap;

use wasmproc_tests::{
    bench_option, bench_section_wanted, guests, python_peer, release_build, tasks_argument,
};

/// One row of the table: a cell per -j.
struct Row {
    name: String,
    cells: Vec<Cell>,
}

enum Cell {
    Rate(f64),
    Seconds(f64),
    Nanos(f64),
    Missing,
}

impl Cell {
    fn text(&self) -> String {
        match self {
            Cell::Rate(per_s) => format!("{}k/s", (per_s / 1000.0).round()),
            Cell::Seconds(s) => format!("{s:.2} s"),
            Cell::Nanos(ns) => format!("{ns:.0} ns"),
            Cell::Missing => "–".into(),
        }
    }

    /// How much faster than `first` (rates up, times down).
    fn speedup(&self, first: &Cell) -> Option<f64> {
        match (first, self) {
            (Cell::Rate(a), Cell::Rate(b)) => Some(b / a),
            (Cell::Seconds(a), Cell::Seconds(b)) => Some(a / b),
            _ => None,
        }
    }
}

fn main() {
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    let typed_tasks = tasks_argument(200_000);
    let command_tasks = (typed_tasks / 5).max(1);
    let cpu_tasks = bench_option("--cpu-tasks", 64);
    let rounds = bench_option("--rounds", 250);
    let jobs = job_counts(cpus);
    println!(
        "wasmproc scaling benchmark: {cpus} CPUs; {typed_tasks} typed tasks, {command_tasks} \
         command tasks, {cpu_tasks} CPU-bound commands of {rounds} SHA-256 rounds per cell"
    );

    let wasmproc = std::env::args()
        .skip_while(|a| a != "--wasmproc")
        .nth(1)
        .map_or_else(
            || release_build(&["-p", "wasmproc-cli"], "release/wasmproc"),
            PathBuf::from,
        );
    let typed_only = !bench_section_wanted("all");
    let native = if typed_only {
        PathBuf::new()
    } else {
        native_wasi_cmd()
    };
    let inputs = tempfile::tempdir().expect("a temporary directory");
    let typed = write_input(
        inputs.path(),
        "typed",
        (0..typed_tasks).map(|n| n.to_string()),
    );
    let commands = write_input(
        inputs.path(),
        "commands",
        (0..command_tasks).map(|_| r#"["exit", "0"]"#.to_string()),
    );
    let cpu = write_input(
        inputs.path(),
        "cpu",
        (0..cpu_tasks).map(|_| format!(r#"["kernel", "{rounds}"]"#)),
    );
    let native_args = write_input(
        inputs.path(),
        "native",
        (0..cpu_tasks).map(|_| format!("kernel {rounds}")),
    );
    let map = |j: usize, isolation: &str, task: Option<&str>, module: &str, input: &Path| {
        let mut command = Command::new(&wasmproc);
        command.args(["map", "-j", &j.to_string(), "--isolation", isolation]);
        if let Some(task) = task {
            command.args(["--task", task]);
        }
        command.arg(module).arg(input);
        timed(command)
    };

    // One run first, so that no row pays for compiling the module.
    let warm = write_input(inputs.path(), "warm", (0..100).map(|n| n.to_string()));
    map(1, "thread", Some("square"), guests::SDK_TASKS, &warm);
    let mut rows = Vec::new();
    let mut coordinator = Vec::new();
    let mut models = Vec::new();
    for isolation in ["thread", "process"] {
        let mut cells = Vec::new();
        let mut cpu_rows: [Vec<Cell>; 4] = Default::default();
        let mut model = Vec::new();
        for &j in &jobs {
            let run = map(j, isolation, Some("square"), guests::SDK_TASKS, &typed);
            cells.push(Cell::Rate(typed_tasks as f64 / run.wall.as_secs_f64()));
            let per_task = |cpu: Option<Duration>| {
                cpu.map_or(Cell::Missing, |cpu| {
                    Cell::Nanos(cpu.as_nanos() as f64 / typed_tasks as f64)
                })
            };
            cpu_rows[0].push(per_task(run.coordinator));
            cpu_rows[1].push(per_task(run.workers));
            cpu_rows[2].push(per_task(run.input));
            cpu_rows[3].push(per_task(run.others));
            model.push(Bound::of(&run, typed_tasks, MODEL_WORKERS));
        }
        rows.push(Row {
            name: format!(
                "{typed_tasks} typed tasks (`square`), {}",
                plural(isolation)
            ),
            cells,
        });
        let [coordinator_cells, worker_cells, input_cells, other_cells] = cpu_rows;
        let who = plural(isolation);
        coordinator.push(Row {
            name: format!("coordinator CPU per typed task, {who}"),
            cells: coordinator_cells,
        });
        coordinator.push(Row {
            name: format!("workers' CPU per typed task, {who}"),
            cells: worker_cells,
        });
        coordinator.push(Row {
            name: format!("input thread's CPU per typed task, {who}"),
            cells: input_cells,
        });
        coordinator.push(Row {
            name: format!("other threads' CPU per typed task (ticker, relays), {who}"),
            cells: other_cells,
        });
        models.push((who, model));
    }
    if typed_only {
        rows.extend(coordinator);
        print_table(&jobs, &rows);
        print_model(&jobs, &models);
        return;
    }
    for isolation in ["thread", "process"] {
        let cells = jobs
            .iter()
            .map(|&j| {
                let run = map(j, isolation, None, guests::WASI_CMD, &commands);
                Cell::Rate(command_tasks as f64 / run.wall.as_secs_f64())
            })
            .collect();
        rows.push(Row {
            name: format!(
                "{command_tasks} WASI command tasks (exit 0), {}",
                plural(isolation)
            ),
            cells,
        });
    }
    for isolation in ["thread", "process"] {
        let cells = jobs
            .iter()
            .map(|&j| {
                Cell::Seconds(
                    map(j, isolation, None, guests::WASI_CMD, &cpu)
                        .wall
                        .as_secs_f64(),
                )
            })
            .collect();
        rows.push(Row {
            name: format!("{cpu_tasks} CPU-bound commands, {}", plural(isolation)),
            cells,
        });
    }
    rows.push(Row {
        name: "same program built natively, `xargs -P J`".into(),
        cells: jobs
            .iter()
            .map(|&j| {
                let mut xargs = Command::new("xargs");
                xargs
                    .args(["-P", &j.to_string(), "-L", "1"])
                    .arg(&native)
                    .stdin(std::fs::File::open(&native_args).expect("the native input"));
                Cell::Seconds(timed(xargs).wall.as_secs_f64())
            })
            .collect(),
    });
    rows.push(Row {
        name: "Python `Pool(J).map(square, chunksize=1)`".into(),
        cells: jobs
            .iter()
            .map(|&j| {
                let args = [typed_tasks.to_string(), j.to_string(), "pool-only".into()];
                python_peer("peer.py", &args)
                    .first()
                    .and_then(|row| row["tasks_per_s"].as_f64())
                    .map_or(Cell::Missing, Cell::Rate)
            })
            .collect(),
    });
    rows.extend(coordinator);
    print_table(&jobs, &rows);
    print_model(&jobs, &models);
}

/// The workers of the modelled machine (issue 24: a 16-core machine).
const MODEL_WORKERS: usize = 16;

/// What one measured run implies for [`MODEL_WORKERS`] workers, each on a
/// core of its own: the coordinator and the input thread are one thread
/// each whatever the workers, and the workers' CPU per task divides among
/// them (no contention assumed: an upper bound).
struct Bound {
    /// Tasks/s the coordinator's CPU per task allows.
    coordinator: Option<f64>,
    /// Tasks/s the workers' CPU per task allows, spread over the workers.
    workers: Option<f64>,
    /// Tasks/s the input reader allows.
    input: Option<f64>,
}

impl Bound {
    fn of(run: &Run, tasks: usize, workers: usize) -> Bound {
        let rate = |cpu: Option<Duration>, threads: usize| {
            cpu.filter(|cpu| !cpu.is_zero())
                .map(|cpu| threads as f64 * tasks as f64 / cpu.as_secs_f64())
        };
        Bound {
            coordinator: rate(run.coordinator, 1),
            workers: rate(run.workers, workers),
            input: rate(run.input, 1),
        }
    }

    fn text(&self) -> String {
        let k = |rate: Option<f64>| {
            rate.map_or("–".into(), |r| format!("{}k/s", (r / 1000.0).round()))
        };
        let limit = [
            ("coordinator", self.coordinator),
            ("workers", self.workers),
            ("input", self.input),
        ]
        .into_iter()
        .filter_map(|(who, rate)| Some((who, rate?)))
        .min_by(|a, b| a.1.total_cmp(&b.1));
        format!(
            "coordinator {}, workers {}, input {}: {}",
            k(self.coordinator),
            k(self.workers),
            k(self.input),
            limit.map_or("–".into(), |(who, rate)| format!(
                "at most {}k/s, {who}-bound",
                (rate / 1000.0).round()
            ))
        )
    }
}

/// The 16-worker model: for each measured -j, the throughput its CPU per
/// task allows at 16 workers, by who bounds it.
fn print_model(jobs: &[usize], models: &[(&str, Vec<Bound>)]) {
    println!(
        "\n{MODEL_WORKERS}-worker model (typed tasks, from the CPU per task measured at each -j; \
         each thread on a core of its own, no contention: an upper bound)"
    );
    for (who, bounds) in models {
        for (j, bound) in jobs.iter().zip(bounds) {
            println!("  {who}, measured at -j {j}: {}", bound.text());
        }
    }
}

fn plural(isolation: &str) -> &'static str {
    if isolation == "thread" {
        "threads"
    } else {
        "processes"
    }
}

/// 1, 2, 4, … and the core count itself.
fn job_counts(cpus: usize) -> Vec<usize> {
    let mut jobs: Vec<usize> = std::iter::successors(Some(1usize), |j| Some(j * 2))
        .take_while(|&j| j <= cpus)
        .collect();
    if jobs.last() != Some(&cpus) {
        jobs.push(cpus);
    }
    jobs
}

fn print_table(jobs: &[usize], rows: &[Row]) {
    let last = jobs.last().copied().unwrap_or(1);
    let mut header = String::from("\n| work |");
    let mut rule = String::from("| --- |");
    for j in jobs {
        header.push_str(&format!(" -j {j} |"));
        rule.push_str(" --- |");
    }
    header.push_str(&format!(" {last} ÷ 1 |"));
    rule.push_str(" --- |");
    println!("{header}\n{rule}");
    for row in rows {
        let mut line = format!("| {} |", row.name);
        for cell in &row.cells {
            line.push_str(&format!(" {} |", cell.text()));
        }
        let speedup = match (row.cells.first(), row.cells.last()) {
            (Some(first), Some(last)) => last.speedup(first),
            _ => None,
        };
        line.push_str(&speedup.map_or(" |".into(), |x| format!(" {x:.1}× |")));
        println!("{line}");
    }
}

/// What one whole run of a command cost.
struct Run {
    wall: Duration,
    /// The CPU time of the process's main thread (`map`'s coordinator), on
    /// Linux.
    coordinator: Option<Duration>,
    /// The CPU time of the pool's worker threads (`wasmproc-worker-N`) and
    /// of every thread of its worker processes, on Linux.
    workers: Option<Duration>,
    /// The CPU time of `map`'s input reader, on Linux.
    input: Option<Duration>,
    /// The CPU time of the process's other threads (the epoch ticker, a
    /// worker process's relays, the output flusher), on Linux: not per task
    /// (the ticker's is per second), so not in the model's bound.
    others: Option<Duration>,
}

/// The CPU time of each thread seen in a process tree so far (the last
/// reading of each, which misses at most one polling interval), by
/// (process, thread), with whose it is.
#[derive(Default)]
struct TreeCpu(HashMap<(u32, u32), (Whose, u64)>);

#[derive(Clone, Copy, PartialEq)]
enum Whose {
    Coordinator,
    Worker,
    /// `map`'s input reader (`wasmproc-map-input`).
    Input,
    Other,
}

impl TreeCpu {
    /// Reads every thread of `pid` and of its child processes (Linux:
    /// `/proc`; nothing elsewhere).
    fn read(&mut self, pid: u32) {
        let root = format!("/proc/{pid}/task");
        let Ok(threads) = std::fs::read_dir(&root) else {
            return;
        };
        for thread in threads.flatten() {
            let Some(tid) = thread
                .file_name()
                .to_str()
                .and_then(|t| t.parse::<u32>().ok())
            else {
                continue;
            };
            let read = |file: &str| std::fs::read_to_string(thread.path().join(file)).ok();
            let whose = if tid == pid {
                Whose::Coordinator
            } else if read("comm").is_some_and(|c| c.starts_with("wasmproc-worker")) {
                Whose::Worker
            } else if read("comm").is_some_and(|c| c.starts_with("wasmproc-map-in")) {
                Whose::Input
            } else {
                Whose::Other
            };
            self.record(pid, tid, whose, read("schedstat"));
            // Worker processes: all their threads are the workers' cost.
            for child in read("children").unwrap_or_default().split_whitespace() {
                let Ok(child) = child.parse::<u32>() else {
                    continue;
                };
                let Ok(threads) = std::fs::read_dir(format!("/proc/{child}/task")) else {
                    continue;
                };
                for thread in threads.flatten() {
                    let Some(tid) = thread.file_name().to_str().and_then(|t| t.parse().ok()) else {
                        continue;
                    };
                    let stat = std::fs::read_to_string(thread.path().join("schedstat")).ok();
                    self.record(child, tid, Whose::Worker, stat);
                }
            }
        }
    }

    fn record(&mut self, pid: u32, tid: u32, whose: Whose, schedstat: Option<String>) {
        // The first field is the thread's time on a CPU, in nanoseconds.
        if let Some(ns) = schedstat.and_then(|s| s.split_whitespace().next()?.parse().ok()) {
            self.0.insert((pid, tid), (whose, ns));
        }
    }

    fn total(&self, whose: Whose) -> Option<Duration> {
        let mut seen = false;
        let ns = self
            .0
            .values()
            .filter(|(w, _)| *w == whose)
            .inspect(|_| seen = true)
            .map(|(_, ns)| ns)
            .sum();
        seen.then(|| Duration::from_nanos(ns))
    }
}

/// Runs `command` to its end, output discarded, and times it.
fn timed(mut command: Command) -> Run {
    command.stdout(Stdio::null()).stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = command.spawn().expect("the command starts");
    let mut cpu = TreeCpu::default();
    let status = loop {
        if let Some(status) = child.try_wait().expect("the command is waited for") {
            break status;
        }
        // The last reading before the exit misses at most one interval.
        cpu.read(child.id());
        std::thread::sleep(Duration::from_millis(2));
    };
    let wall = started.elapsed();
    if !status.success() {
        let mut errors = String::new();
        if let Some(mut stderr) = child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut stderr, &mut errors);
        }
        panic!("{command:?} failed ({status}): {errors}");
    }
    Run {
        wall,
        coordinator: cpu.total(Whose::Coordinator),
        workers: cpu.total(Whose::Worker),
        input: cpu.total(Whose::Input),
        others: cpu.total(Whose::Other),
    }
}

fn write_input(dir: &Path, name: &str, lines: impl Iterator<Item = String>) -> PathBuf {
    let path = dir.join(name);
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path).expect("an input file"));
    for line in lines {
        writeln!(file, "{line}").expect("the input is written");
    }
    file.flush().expect("the input is written");
    path
}

/// The CPU-bound command's program (the `wasi-cmd` test guest) built for
/// this machine.
fn native_wasi_cmd() -> PathBuf {
    let guests = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("guests");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "--quiet",
            "--release",
            "-p",
            "wasi-cmd",
            "--manifest-path",
        ])
        .arg(guests.join("Cargo.toml"))
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building wasi-cmd natively failed");
    guests
        .join("target/release/wasi-cmd")
        .with_extension(std::env::consts::EXE_EXTENSION)
}
