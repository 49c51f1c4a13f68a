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
//! rounds per CPU-bound command, default 250, about 75 ms natively).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use wasmproc_tests::{bench_option, guests, python_peer, release_build, tasks_argument};

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

    let wasmproc = release_build(&["-p", "wasmproc-cli"], "release/wasmproc");
    let native = native_wasi_cmd();
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

    let mut rows = Vec::new();
    let mut coordinator = Vec::new();
    for isolation in ["thread", "process"] {
        let mut cells = Vec::new();
        let mut nanos = Vec::new();
        for &j in &jobs {
            let run = map(j, isolation, Some("square"), guests::SDK_TASKS, &typed);
            cells.push(Cell::Rate(typed_tasks as f64 / run.wall.as_secs_f64()));
            nanos.push(run.coordinator.map_or(Cell::Missing, |cpu| {
                Cell::Nanos(cpu.as_nanos() as f64 / typed_tasks as f64)
            }));
        }
        rows.push(Row {
            name: format!(
                "{typed_tasks} typed tasks (`square`), {}",
                plural(isolation)
            ),
            cells,
        });
        coordinator.push(Row {
            name: format!("coordinator CPU per typed task, {}", plural(isolation)),
            cells: nanos,
        });
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
}

/// Runs `command` to its end, output discarded, and times it.
fn timed(mut command: Command) -> Run {
    command.stdout(Stdio::null()).stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = command.spawn().expect("the command starts");
    let schedstat = format!("/proc/{0}/task/{0}/schedstat", child.id());
    let mut coordinator = None;
    let status = loop {
        if let Some(status) = child.try_wait().expect("the command is waited for") {
            break status;
        }
        // The first field is the thread's time on a CPU, in nanoseconds;
        // the last reading before the exit misses at most one interval.
        if let Some(ns) = std::fs::read_to_string(&schedstat)
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        {
            coordinator = Some(Duration::from_nanos(ns));
        }
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
    Run { wall, coordinator }
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
