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
/// spare. An unbounded relay passes it in well under a second (it grew by
/// 160 MB/s).
const BOUND: u64 = 128 << 20;

#[test]
fn clients_that_never_read_stop_their_handlers_not_the_server() {
    for isolation in ["thread", "process"] {
        let mut server = Serving::start(&[
            "--isolation",
            isolation,
            "--max-connections",
            "4",
            "--idle-timeout",
            "3s",
            guests::WASI_CMD,
            "--",
            "flood",
            FLOOD,
        ]);
        // Four clients that connect and never read.
        let stuck: Vec<TcpStream> = (0..4)
            .map(|_| TcpStream::connect(&server.addr).unwrap())
            .collect();
        let peak = peak_resident_bytes(server.child.id(), Duration::from_millis(2500));
        assert!(
            peak < BOUND,
            "{isolation}: the server grew to {} MiB with four clients that do not read",
            peak >> 20
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
        let peak = peak_resident_bytes(child.id(), Duration::from_millis(2000));
        assert!(
            peak < BOUND,
            "{isolation}: the run grew to {} MiB writing to a pipe nobody reads",
            peak >> 20
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
