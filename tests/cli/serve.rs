//! `wasmproc serve`: a real server process on 127.0.0.1, real clients; the
//! per-connection log lines; a clean stop on SIGTERM; flags refused with
//! their statuses.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::process::{Child, ChildStderr, Stdio};
use std::time::Duration;

use wasmproc_tests::guests;

use crate::{wasmproc, wasmproc_run};

/// A `wasmproc serve` process and where it listens.
pub(crate) struct Serving {
    pub(crate) child: Child,
    pub(crate) addr: String,
    stderr: BufReader<ChildStderr>,
}

impl Serving {
    /// Starts `wasmproc serve ARGS --listen 127.0.0.1:0` and reads the
    /// address it got from its first line.
    pub(crate) fn start(args: &[&str]) -> Serving {
        let mut child = wasmproc()
            .arg("serve")
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary starts");
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut first = String::new();
        stderr.read_line(&mut first).unwrap();
        let addr = first
            .split_whitespace()
            .find(|word| word.starts_with("127.0.0.1:"))
            .unwrap_or_else(|| panic!("no address in the first line: {first}"))
            .to_owned();
        Serving {
            child,
            addr,
            stderr,
        }
    }

    /// Sends `payload`, closes the sending side, and reads the reply.
    pub(crate) fn exchange(&self, payload: &[u8]) -> Vec<u8> {
        let mut stream = TcpStream::connect(&self.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        stream.write_all(payload).unwrap();
        stream.shutdown(Shutdown::Write).unwrap();
        let mut reply = Vec::new();
        stream.read_to_end(&mut reply).unwrap();
        reply
    }

    /// The next log line, as JSON.
    pub(crate) fn record(&mut self) -> serde_json::Value {
        let mut line = String::new();
        self.stderr.read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"))
    }

    /// Stops the server as a service manager does, and returns its exit
    /// code and the rest of its stderr.
    pub(crate) fn terminate(mut self) -> (Option<i32>, String) {
        sigterm(&mut self.child);
        let mut rest = String::new();
        self.stderr.read_to_string(&mut rest).unwrap();
        let status = self.child.wait().unwrap();
        (status.code(), rest)
    }
}

impl Drop for Serving {
    /// A test that fails leaves no server behind (holding its output pipes
    /// open, it would keep the test run from ending).
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Asks the server to stop as a service manager does: SIGTERM (where there
/// are no signals, it is killed).
fn sigterm(child: &mut Child) {
    #[cfg(unix)]
    {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
    #[cfg(not(unix))]
    child.kill().unwrap();
}

#[test]
fn serves_a_command_module_with_its_argv_and_logs_each_connection() {
    // `wasi-cmd cat` reads stdin to its end and writes it back: the
    // connection is its stdin and stdout.
    let mut server = Serving::start(&[guests::WASI_CMD, "--", "cat"]);
    let reply = server.exchange(b"through a plain WASI command");
    assert_eq!(reply, b"through a plain WASI command");
    let record = server.record();
    assert_eq!(
        record["peer"].as_str().unwrap().split(':').next(),
        Some("127.0.0.1"),
        "{record}"
    );
    assert_eq!(record["status"], "exited", "{record}");
    assert_eq!(record["exit_code"], 0);
    assert_eq!(record["bytes_in"], 28);
    assert_eq!(record["bytes_out"], 28);
    assert!(record["duration_ms"].as_f64().unwrap() >= 0.0);
    assert!(record["time"].as_str().unwrap().ends_with('Z'), "{record}");
    let (code, _) = server.terminate();
    assert_eq!(code, Some(0));
}

#[test]
fn echoes_through_the_sdk_handler_in_both_isolations() {
    for isolation in ["thread", "process"] {
        let mut server = Serving::start(&[
            "--task",
            "echo",
            "--isolation",
            isolation,
            guests::SERVE_TASKS,
        ]);
        let payload: Vec<u8> = (0..(1 << 20)).map(|i| (i % 253) as u8).collect();
        assert!(server.exchange(&payload) == payload, "{isolation}");
        assert_eq!(server.exchange(b""), b"", "{isolation}");
        for _ in 0..2 {
            let record = server.record();
            assert_eq!(record["status"], "exited", "{isolation}: {record}");
            assert_eq!(record["exit_code"], 0, "{isolation}");
            assert_eq!(record["bytes_in"], record["bytes_out"], "{isolation}");
        }
        let (code, rest) = server.terminate();
        assert_eq!(code, Some(0), "{isolation}: a stop exits 0: {rest}");
        assert!(
            rest.contains("stopped after 2 connections"),
            "{isolation}: {rest}"
        );
    }
}

#[test]
fn a_stop_lets_a_connection_in_flight_finish() {
    let mut server = Serving::start(&["--task", "echo", guests::SERVE_TASKS]);
    let mut stream = TcpStream::connect(&server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    stream.write_all(b"first").unwrap();
    let mut first = [0u8; 5];
    stream.read_exact(&mut first).unwrap();
    sigterm(&mut server.child);
    std::thread::sleep(Duration::from_millis(300));
    stream.write_all(b" second").unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).unwrap();
    assert_eq!(rest, b" second");
    // The record first: the stop's second signal (`terminate`) would end a
    // connection still being recorded.
    let mut said = String::new();
    let record = loop {
        let mut line = String::new();
        assert!(server.stderr.read_line(&mut line).unwrap() > 0, "{said}");
        match serde_json::from_str::<serde_json::Value>(&line) {
            Ok(record) => break record,
            // The server's own words about the stop.
            Err(_) => said.push_str(&line),
        }
    };
    assert_eq!(record["status"], "exited", "{record}");
    let (code, stderr) = server.terminate();
    assert_eq!(code, Some(0), "{stderr}");
}

/// A second interrupt ends the connections in flight at once, and both
/// their log lines and the summary say so (not "still open 10s later").
#[cfg(unix)]
#[test]
fn a_second_interrupt_ends_connections_and_says_so() {
    let mut server = Serving::start(&["--task", "echo", guests::SERVE_TASKS]);
    let mut stream = TcpStream::connect(&server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    stream.write_all(b"first").unwrap();
    let mut first = [0u8; 5];
    stream.read_exact(&mut first).unwrap();
    let interrupt = |child: &Child| {
        let sent = std::process::Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
    };
    interrupt(&server.child);
    // The first interrupt's words, then the second interrupt.
    let mut line = String::new();
    server.stderr.read_line(&mut line).unwrap();
    assert!(line.contains("stopping"), "{line}");
    interrupt(&server.child);
    let record = server.record();
    assert!(
        record["message"]
            .as_str()
            .is_some_and(|m| m.contains("ended by a second interrupt")),
        "{record}"
    );
    // The user's cancel, as the status table has it.
    assert_eq!(record["status"], "cancelled", "{record}");
    assert_eq!(record["exit_code"], 130, "{record}");
    let mut rest = String::new();
    server.stderr.read_to_string(&mut rest).unwrap();
    let status = server.child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{rest}");
    assert!(
        rest.contains("wasmproc: stopped after 1 connection (1 ended by a second interrupt)"),
        "{rest}"
    );
}

#[test]
fn log_lines_go_to_a_file_with_the_statuses_of_misbehaving_guests() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.ndjson");
    let server = Serving::start(&[
        "--task",
        "panic",
        "--log",
        log.to_str().unwrap(),
        guests::SERVE_TASKS,
    ]);
    let reply = server.exchange(b"");
    assert_eq!(reply, b"about to panic\n");
    let (code, _) = server.terminate();
    assert_eq!(code, Some(0));
    let text = std::fs::read_to_string(&log).unwrap();
    let record: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(record["exit_code"], 101, "{record}");
    assert!(
        record["message"]
            .as_str()
            .unwrap()
            .contains("told to panic"),
        "{record}"
    );
}

// Ignored, with the reason, where the build found no clang with wasi-libc.
wasmproc_tests::c_guest_tests! {
    the_c_examples_serve_echo_and_http,
}

fn the_c_examples_serve_echo_and_http() {
    let echo = guests::C_ECHO.expect("build.rs built the C guests");
    let http = guests::C_HTTP.expect("build.rs built the C guests");
    let server = Serving::start(&[echo]);
    assert_eq!(server.exchange(b"hello from C"), b"hello from C");
    server.terminate();
    let server = Serving::start(&[http]);
    let reply = String::from_utf8(server.exchange(b"GET /c HTTP/1.1\r\nHost: x\r\n\r\n")).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
    assert!(reply.ends_with("GET /c\n"), "{reply}");
    server.terminate();
}

#[test]
fn sockets_past_the_per_peer_cap_are_refused_and_silent_ones_end_at_the_first_byte_timeout() {
    let mut server = Serving::start(&[
        "--task",
        "echo",
        "--max-per-peer",
        "2",
        "--first-byte-timeout",
        "1s",
        guests::SERVE_TASKS,
    ]);
    // 20 sockets from 127.0.0.1 that send nothing: 2 hold places, the
    // others are closed at once.
    let silent: Vec<TcpStream> = (0..20)
        .map(|_| TcpStream::connect(&server.addr).unwrap())
        .collect();
    for _ in 0..18 {
        let record = server.record();
        assert_eq!(record["status"], "cancelled", "{record}");
        assert_eq!(record["bytes_in"], 0, "{record}");
        let message = record["message"].as_str().unwrap();
        assert!(
            message.contains("refused") && message.contains("127.0.0.1"),
            "{record}"
        );
    }
    // The two that hold places end at the first-byte timeout.
    for _ in 0..2 {
        let record = server.record();
        assert_eq!(record["status"], "timed_out", "{record}");
        assert!(
            record["message"]
                .as_str()
                .unwrap()
                .contains("no byte moved"),
            "{record}"
        );
        assert!(record["duration_ms"].as_f64().unwrap() >= 900.0, "{record}");
    }
    drop(silent);
    // Then 127.0.0.1 is served again.
    assert_eq!(server.exchange(b"a real client"), b"a real client");
    assert_eq!(server.record()["status"], "exited");
    let (code, rest) = server.terminate();
    assert_eq!(code, Some(0), "{rest}");
    assert!(
        rest.contains("stopped after 21 connections (18 refused by --max-per-peer)"),
        "{rest}"
    );
}

/// One connection at a time needs one worker process, whatever
/// --max-connections allows; idle ones stop after --worker-idle-timeout.
#[cfg(unix)]
#[test]
fn process_isolation_keeps_as_many_worker_processes_as_the_load_needs() {
    use wasmproc_tests::unix::children_of;
    let mut server = Serving::start(&[
        "--task",
        "echo",
        "--isolation",
        "process",
        "--max-connections",
        "16",
        "--worker-idle-timeout",
        "1s",
        guests::SERVE_TASKS,
    ]);
    let pid = server.child.id();
    for i in 0..10 {
        let payload = format!("connection {i}");
        assert_eq!(server.exchange(payload.as_bytes()), payload.as_bytes());
        assert_eq!(server.record()["status"], "exited");
        let workers = children_of(pid);
        assert!(
            !workers.is_empty() && workers.len() <= 2,
            "after connection {i}: worker processes {workers:?}"
        );
    }
    // A quiet second later, only --min-workers (1) is left.
    wasmproc_tests::unix::wait_for("one worker process", || children_of(pid).len() == 1);
    let (code, rest) = server.terminate();
    assert_eq!(code, Some(0), "{rest}");
}

#[test]
fn bad_flags_and_modules_are_refused_with_their_statuses() {
    let cases: [(&[&str], u8, &str); 5] = [
        (
            &["serve", "--listen", "nowhere:port", guests::SERVE_TASKS],
            128,
            "HOST:PORT",
        ),
        (
            &[
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--max-connections",
                "0",
                guests::SERVE_TASKS,
            ],
            128,
            "--max-connections",
        ),
        (
            &["serve", "--listen", "127.0.0.1:0", "missing.wasm"],
            127,
            "missing.wasm",
        ),
        // Several handlers and no --task: which one is ambiguous.
        (
            &["serve", "--listen", "127.0.0.1:0", guests::SERVE_TASKS],
            126,
            "--task",
        ),
        (
            &[
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--task",
                "nope",
                guests::SERVE_TASKS,
            ],
            126,
            "nope",
        ),
    ];
    for (args, code, says) in cases {
        let output = wasmproc_run(args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            output.status.code(),
            Some(i32::from(code)),
            "{args:?}: {stderr}"
        );
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}

/// The threads of process `pid` (Linux: its `/proc` entry).
#[cfg(target_os = "linux")]
fn threads_of(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("the server's /proc entry")
        .count()
}

/// In process isolation the accepted socket itself goes to the worker
/// process (Unix): the client sees the same bytes as in a thread worker,
/// and the server starts no thread per connection to relay them.
#[cfg(target_os = "linux")]
#[test]
fn a_worker_process_reads_its_connection_itself_with_no_relay_thread_in_the_server() {
    use wasmproc_tests::unix::{children_of, wait_for};
    let mut server = Serving::start(&[
        "--task",
        "echo",
        "--isolation",
        "process",
        "--max-connections",
        "4",
        "--min-workers",
        "4",
        guests::SERVE_TASKS,
    ]);
    let pid = server.child.id();
    wait_for("four worker processes", || children_of(pid).len() == 4);
    // One connection served first: whatever a first connection starts
    // once (the timer's work, the pool's own) is there from then on.
    assert_eq!(server.exchange(b"warm"), b"warm");
    assert_eq!(server.record()["status"], "exited");
    let before = threads_of(pid);
    let mut clients: Vec<TcpStream> = (0..4)
        .map(|i| {
            let mut stream = TcpStream::connect(&server.addr).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(60)))
                .unwrap();
            let line = format!("connection {i}\n");
            stream.write_all(line.as_bytes()).unwrap();
            let mut echoed = vec![0; line.len()];
            stream.read_exact(&mut echoed).unwrap();
            assert_eq!(echoed, line.as_bytes());
            stream
        })
        .collect();
    // Four connections open, each echoing through its worker process.
    let during = threads_of(pid);
    assert!(
        during <= before,
        "the server has {during} threads with four connections open, {before} before: \
         something per connection"
    );
    for (i, stream) in clients.iter_mut().enumerate() {
        stream.shutdown(Shutdown::Write).unwrap();
        let mut rest = Vec::new();
        stream.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty(), "connection {i}: {rest:?}");
    }
    for _ in 0..4 {
        let record = server.record();
        assert_eq!(record["status"], "exited", "{record}");
        assert_eq!(record["bytes_in"], record["bytes_out"], "{record}");
        assert_eq!(record["bytes_in"], "connection 0\n".len(), "{record}");
    }
    let (code, rest) = server.terminate();
    assert_eq!(code, Some(0), "{rest}");
}

/// Connections whose tasks time out while their guests wait for bytes
/// leave no thread stuck in the worker processes (the wait was the
/// socket's readiness): the same workers serve on, rather than retiring.
/// (Before, a worker retired whenever the task's cancellation reached it
/// before the hang-up did: a few in a hundred.)
#[cfg(unix)]
#[test]
fn timed_out_connections_do_not_cost_worker_processes() {
    use wasmproc_tests::unix::children_of;
    let mut server = Serving::start(&[
        "--task",
        "echo",
        "--isolation",
        "process",
        "--max-connections",
        "4",
        "--timeout",
        "50ms",
        guests::SERVE_TASKS,
    ]);
    let pid = server.child.id();
    let mut workers = Vec::new();
    for round in 0..25 {
        // Four silent clients at once: every worker waits on one.
        let silent: Vec<TcpStream> = (0..4)
            .map(|_| TcpStream::connect(&server.addr).unwrap())
            .collect();
        for _ in 0..4 {
            let record = server.record();
            assert_eq!(record["status"], "timed_out", "{record}");
        }
        drop(silent);
        let mut now = children_of(pid);
        now.sort_unstable();
        if round == 0 {
            workers = now;
        } else {
            assert_eq!(now, workers, "round {round}: a worker process was replaced");
        }
    }
    assert_eq!(server.exchange(b"next"), b"next");
    assert_eq!(server.record()["status"], "exited");
    let (code, rest) = server.terminate();
    assert_eq!(code, Some(0), "{rest}");
}

/// A worker process killed under its connection: the client is hung up
/// (the worker's descriptor died with it and the server closes its own),
/// the connection is recorded once, and the next connection is served.
#[cfg(unix)]
#[test]
fn killing_the_worker_process_hangs_up_its_client() {
    use wasmproc_tests::unix::{children_of, wait_for};
    let mut server = Serving::start(&[
        "--task",
        "echo",
        "--isolation",
        "process",
        "--max-connections",
        "1",
        guests::SERVE_TASKS,
    ]);
    let pid = server.child.id();
    wait_for("a worker process", || children_of(pid).len() == 1);
    let worker = children_of(pid)[0];
    let mut client = TcpStream::connect(&server.addr).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    client.write_all(b"ping").unwrap();
    let mut echoed = [0; 4];
    client.read_exact(&mut echoed).unwrap();
    assert_eq!(&echoed, b"ping");
    let status = std::process::Command::new("kill")
        .args(["-KILL", &worker.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // Hung up: end of file (or a reset), not a wait.
    let mut rest = Vec::new();
    let _ = client.read_to_end(&mut rest);
    assert!(rest.is_empty(), "{rest:?}");
    // The pool's warning about the death comes first.
    let record = loop {
        let mut line = String::new();
        server.stderr.read_line(&mut line).unwrap();
        assert!(!line.is_empty(), "the server's stderr ended");
        if line.starts_with('{') {
            break serde_json::from_str::<serde_json::Value>(&line).unwrap();
        }
        assert!(line.contains("died under the task"), "{line}");
    };
    assert_eq!(record["status"], "worker_lost", "{record}");
    // The read is counted before the guest answers it; the write is
    // counted just after it reaches the client, so a kill in that moment
    // may leave it out.
    assert_eq!(record["bytes_in"], 4, "{record}");
    assert!(record["bytes_out"].as_u64() <= Some(4), "{record}");
    // A new worker serves the next connection.
    assert_eq!(server.exchange(b"again"), b"again");
    assert_eq!(server.record()["status"], "exited");
    let (code, rest) = server.terminate();
    assert_eq!(code, Some(0), "{rest}");
}

/// A typed task that takes arguments cannot serve (a connection gives it
/// none): refused at start with the fix, not failed at every connection.
#[test]
fn a_task_that_takes_arguments_is_refused_at_start() {
    let output = wasmproc_run(&[
        "serve",
        guests::SDK_TASKS,
        "--task",
        "square",
        "--listen",
        "127.0.0.1:0",
    ]);
    assert_eq!(output.status.code(), Some(128));
    let message = wasmproc_tests::stderr(&output);
    assert!(message.contains("takes arguments"), "{message}");
    assert!(message.contains("#[handler]"), "{message}");
}
