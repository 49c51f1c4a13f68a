//! Bounded memory on every relay, and signals that always work: a reader
//! that does not read stops the guest, never the host's memory, and the
//! first SIGTERM ends a run within a bound whatever its output is doing
//! (issue 21). Linux only: resident memory is read from `/proc`.
#![cfg(target_os = "linux")]

use std::io::Read;
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use wasmproc_tests::unix::{kill, peak_resident_bytes};
use wasmproc_tests::{code, guests};

use crate::serve::Serving;
use crate::wasmproc;

/// A flood no test waits for the end of: 4 GB (a count the 32-bit guest
/// can hold).
const FLOOD: &str = "4000000000";

/// What the host may hold while its guests flood readers that do not read:
/// the program, the compiled module and the relays' windows, with room to
/// spare.
const BOUND: u64 = 128 << 20;

/// How much the host may grow once the relays' windows are full (after the
/// first second): nothing but noise. An unbounded relay grows by tens of
/// megabytes a second even on a slow machine (160 MB/s on a fast one).
const GROWTH: u64 = 16 << 20;

/// Lets `pid` settle for a second and a half, then samples its memory for
/// four seconds: fails unless it stays within [`BOUND`] and grows by less
/// than [`GROWTH`].
fn assert_flat(pid: u32, what: &str) {
    std::thread::sleep(Duration::from_millis(1500));
    let settled = wasmproc_tests::unix::resident_bytes(pid).unwrap_or(0);
    let peak = peak_resident_bytes(pid, Duration::from_secs(4));
    assert!(
        peak < BOUND && peak.saturating_sub(settled) < GROWTH,
        "{what}: grew from {} MiB to {} MiB",
        settled >> 20,
        peak >> 20
    );
}

#[test]
fn clients_that_never_read_stop_their_handlers_not_the_server() {
    for isolation in ["thread", "process"] {
        let mut server = Serving::start(&[
            "--isolation",
            isolation,
            "--max-connections",
            "4",
            "--idle-timeout",
            "8s",
            guests::WASI_CMD,
            "--",
            "flood",
            FLOOD,
        ]);
        // Four clients that connect and never read.
        let stuck: Vec<TcpStream> = (0..4)
            .map(|_| TcpStream::connect(&server.addr).unwrap())
            .collect();
        assert_flat(
            server.child.id(),
            &format!("{isolation}: the server, with four clients that do not read"),
        );
        // Their idle timeout ends them; a client that reads is served.
        for _ in 0..4 {
            let record = server.record();
            assert_eq!(record["status"], "timed_out", "{isolation}: {record}");
        }
        drop(stuck);
        let mut reader = TcpStream::connect(&server.addr).unwrap();
        reader
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut first = vec![0u8; 1 << 20];
        reader.read_exact(&mut first).unwrap();
        assert!(first.iter().all(|b| *b == b'y'), "{isolation}");
        drop(reader);
        let (code, rest) = server.terminate();
        assert_eq!(code, Some(0), "{isolation}: {rest}");
    }
}

/// `wasmproc run ARGS` with a stdout pipe that this test holds and never
/// reads.
fn run_unread(isolation: &str) -> Child {
    wasmproc()
        .args([
            "run",
            "--isolation",
            isolation,
            guests::WASI_CMD,
            "flood",
            FLOOD,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts")
}

/// Waits up to `limit` for `child` to exit; its exit code and how long it
/// took, or `None` (the child is then killed).
fn exit_within(child: &mut Child, limit: Duration) -> Option<(Option<i32>, Duration)> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if let Some(status) = child.try_wait().unwrap() {
            return Some((status.code(), started.elapsed()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

#[test]
fn a_run_whose_output_nobody_reads_stays_small_and_ends_at_sigterm() {
    for isolation in ["thread", "process"] {
        let mut child = run_unread(isolation);
        assert_flat(
            child.id(),
            &format!("{isolation}: the run, writing to a pipe nobody reads"),
        );
        kill(child.id(), "-TERM");
        // Two seconds after the signal at most, with room for a busy machine.
        let ended = exit_within(&mut child, Duration::from_secs(10));
        let (status, took) = ended.unwrap_or_else(|| panic!("{isolation}: SIGTERM was ignored"));
        assert_eq!(status, Some(130), "{isolation}");
        assert!(
            took < Duration::from_secs(5),
            "{isolation}: SIGTERM took {took:?} to end the run"
        );
    }
}

#[test]
fn a_run_cancelled_whose_reader_then_goes_away_exits_cancelled() {
    for isolation in ["thread", "process"] {
        let mut child = run_unread(isolation);
        // The guest is blocked writing: the pipe is full.
        std::thread::sleep(Duration::from_millis(1000));
        kill(child.id(), "-TERM");
        std::thread::sleep(Duration::from_millis(200));
        drop(child.stdout.take());
        let ended = exit_within(&mut child, Duration::from_secs(10));
        let (status, _) = ended.unwrap_or_else(|| panic!("{isolation}: the run never ended"));
        assert_eq!(status, Some(130), "{isolation}");
    }
}

/// `map` over `lines` sleeping commands, interrupted once they run.
fn interrupted_map(isolation: &str, results_only: bool, lines: usize) -> std::process::Output {
    let input = crate::input_file(&"[\"sleep\", \"60000\"]\n".repeat(lines));
    let mut command = wasmproc();
    command.args(["map", "-j", "2", "--isolation", isolation, guests::WASI_CMD]);
    if results_only {
        command.arg("--results-only");
    }
    let child = command
        .arg(input.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    kill(child.id(), "-INT");
    child.wait_with_output().unwrap()
}

#[test]
fn ctrl_c_gives_every_input_line_read_exactly_one_line_out() {
    let lines = 40;
    for isolation in ["thread", "process"] {
        let output = interrupted_map(isolation, false, lines);
        let stderr = wasmproc_tests::stderr(&output);
        assert_eq!(code(&output), 130, "{isolation}: {stderr}");
        let mut indexes: Vec<u64> = crate::lines(&output)
            .iter()
            .map(|line| {
                assert_eq!(line["status"], "cancelled", "{isolation}: {line}");
                line["index"].as_u64().unwrap()
            })
            .collect();
        indexes.sort_unstable();
        assert_eq!(
            indexes,
            (0..lines as u64).collect::<Vec<_>>(),
            "{isolation}"
        );
        assert!(
            stderr.contains(&format!(
                "{lines} input lines read ({lines} cancelled), 0 never read; the first line not \
                 done is line 1"
            )),
            "{isolation}: {stderr}"
        );

        let output = interrupted_map(isolation, true, lines);
        let stderr = wasmproc_tests::stderr(&output);
        assert_eq!(code(&output), 130, "{isolation}: {stderr}");
        for line in 1..=lines {
            let note = format!("wasmproc map: input line {line}: cancelled ");
            assert_eq!(
                stderr.lines().filter(|l| l.starts_with(&note)).count(),
                1,
                "{isolation}: line {line} in {stderr}"
            );
        }
    }
}

#[test]
fn a_chunksize_past_the_cap_is_refused_not_allocated() {
    for size in ["4294967296", "9223372036854775807"] {
        let output = crate::wasmproc_run(&[
            "map",
            guests::SDK_TASKS,
            "--task",
            "square",
            "--chunksize",
            size,
        ]);
        let stderr = wasmproc_tests::stderr(&output);
        assert_eq!(code(&output), 128, "{size}: {stderr}");
        assert!(
            stderr.contains(&format!("--chunksize {size} is more tasks")),
            "{stderr}"
        );
    }
}

/// The module cache keeps to `WASMPROC_CACHE_MAX`: the least recently used
/// entries go; `cache list` shows what is left and `cache clear` empties it.
#[test]
fn the_cache_keeps_to_its_budget_and_lists_and_clears() {
    let dir = tempfile::tempdir().unwrap();
    let cache = |args: &[&str]| {
        wasmproc()
            .env("WASMPROC_CACHE_DIR", dir.path().join("cache"))
            .env("WASMPROC_CACHE_KEY_FILE", dir.path().join("key"))
            .env("WASMPROC_CACHE_MAX", "1MiB")
            .args(args)
            .output()
            .unwrap()
    };
    for module in [guests::SDK_TASKS, guests::WASI_CMD, guests::SHARE_TASKS] {
        let output = cache(&["compile", module]);
        assert_eq!(code(&output), 0, "{}", wasmproc_tests::stderr(&output));
    }
    let listed = cache(&["cache", "list", "--json"]);
    let entries = crate::lines(&listed);
    let total: u64 = entries.iter().map(|e| e["bytes"].as_u64().unwrap()).sum();
    assert!(!entries.is_empty());
    assert!(total <= 1 << 20, "{total} bytes in {entries:?}");
    // Another module's entries were there and went: six compiled ones were
    // written (each module's, plain and fuel-metered), and their functions.
    assert!(entries.len() < 6, "{entries:?}");

    let cleared = cache(&["cache", "clear"]);
    assert_eq!(code(&cleared), 0);
    assert!(
        wasmproc_tests::stderr(&cleared).contains(&format!("removed {} entr", entries.len())),
        "{}",
        wasmproc_tests::stderr(&cleared)
    );
    assert!(crate::lines(&cache(&["cache", "list", "--json"])).is_empty());
}

/// An entry that fails its check (damaged, or forged) is made again, and
/// `-v` says so rather than rebuilding it silently.
#[test]
fn a_cache_entry_that_fails_its_check_is_named_at_v() {
    let dir = tempfile::tempdir().unwrap();
    let compile = |args: &[&str]| {
        wasmproc()
            .env("WASMPROC_CACHE_DIR", dir.path().join("cache"))
            .env("WASMPROC_CACHE_KEY_FILE", dir.path().join("key"))
            .args(args)
            .args(["compile", guests::SDK_TASKS])
            .output()
            .unwrap()
    };
    assert_eq!(code(&compile(&[])), 0);
    let mut damaged = Vec::new();
    for entry in std::fs::read_dir(dir.path().join("cache")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "cwasm") {
            let mut bytes = std::fs::read(&path).unwrap();
            bytes[100] ^= 0xff;
            std::fs::write(&path, bytes).unwrap();
            damaged.push(path);
        }
    }
    let output = compile(&["-v"]);
    let said = wasmproc_tests::stderr(&output);
    assert_eq!(code(&output), 0, "{said}");
    let printed = wasmproc_tests::stdout(&output);
    assert!(printed.contains("recompiled"), "{printed}");
    for path in damaged {
        assert!(
            said.contains(&format!("{} failed its check", path.display())),
            "{said}"
        );
    }
}
