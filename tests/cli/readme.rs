//! The README's shell examples, run as written: every line of every ```` ```sh ````
//! block that has a `wasmproc` command runs in order, through bash, in a
//! directory laid out as a clone after the README's first command (its
//! `target/debug/wasmproc` is the binary under test, its
//! `target/wasm32-wasip1/release/examples` the guests that the build script
//! built with the README's own build command), with the variables the lines
//! before it set.
//!
//! What a line promises is checked: its exit status (0, or the `exits N`
//! its comment names) and what its comment says it `prints`. A line ending
//! in `&` starts a server in the background (ready when it says where it
//! serves); `kill %N` stops it, and it must exit 0. The ports the README
//! names are replaced by free ones, so that a busy port on the machine does
//! not fail the test. The lines that are not run are the build (done by the
//! build script, with the same words), and those in [`SKIPPED`], each with
//! its reason; every skip must still match a line.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use wasmproc_tests::guests::{EXAMPLES, EXAMPLES_BUILD};

/// Lines not run, by a word they contain, and why.
const SKIPPED: &[(&str, &str)] = &[
    (
        "wasm32-wasip2",
        "a component of the reader's own: tests/cli/components.rs and \
         tests/cli/typed_components.rs run these commands' forms with the suite's components \
         (the Python one built with componentize-py)",
    ),
    (
        "cargo test --workspace",
        "the test suite, of which this test is a part",
    ),
    (
        "nats-server",
        "a NATS server for the cluster: tests/cli/cluster.rs starts a real one for its worker hosts",
    ),
    (
        "--nats",
        "a cluster's worker host or submitter: tests/cli/cluster.rs runs both against a real nats-server",
    ),
];

/// The README's build lines: the binary (this test's binary stands in) and
/// the example guests ([`EXAMPLES_BUILD`], run by the build script).
const BUILD: &str = "rustup toolchain install && cargo build -p wasmproc-cli && ";

/// How long one line may take.
const LINE_TIMEOUT: Duration = Duration::from_secs(120);

/// One line of a README `sh` block: the shell text and its comment.
struct Line {
    number: usize,
    shell: String,
    comment: String,
}

/// The text before ` #` outside quotes, and the comment after it.
fn split_comment(line: &str) -> (String, String) {
    let (mut single, mut double) = (false, false);
    for (at, c) in line.char_indices() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            '#' if !single && !double && (at == 0 || line[..at].ends_with(' ')) => {
                return (
                    line[..at].trim().to_owned(),
                    line[at + 1..].trim().to_owned(),
                );
            }
            _ => {}
        }
    }
    (line.trim().to_owned(), String::new())
}

/// Whether a command of `shell` (split at `|`, `&&`, `;`, `&`) starts with
/// the word `wasmproc`.
fn runs_wasmproc(shell: &str) -> bool {
    shell
        .split(['|', ';', '&'])
        .any(|command| command.split_whitespace().next() == Some("wasmproc"))
}

/// The lines of the README's `sh` blocks that have a `wasmproc` command.
fn readme_lines() -> Vec<Line> {
    let readme = include_str!("../../README.md");
    let (mut lines, mut block, mut in_sh) = (Vec::new(), Vec::new(), false);
    for (index, text) in readme.lines().enumerate() {
        if text.starts_with("```") {
            if in_sh && block.iter().any(|line: &Line| runs_wasmproc(&line.shell)) {
                lines.append(&mut block);
            }
            block.clear();
            in_sh = text == "```sh";
            continue;
        }
        if in_sh {
            let (shell, comment) = split_comment(text);
            if !shell.is_empty() {
                block.push(Line {
                    number: index + 1,
                    shell,
                    comment,
                });
            }
        }
    }
    lines
}

/// A clone's layout after the README's first command, in a new directory:
/// the files the README's commands read, the binary, the example guests.
fn clone_layout() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let repository = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    std::fs::copy(repository.join("README.md"), dir.path().join("README.md")).unwrap();
    copy_tree(&repository.join("guest/src"), &dir.path().join("guest/src"));
    let debug = dir.path().join("target/debug");
    std::fs::create_dir_all(&debug).unwrap();
    std::os::unix::fs::symlink(super::binary(), debug.join("wasmproc")).unwrap();
    let examples = dir.path().join("target/wasm32-wasip1/release/examples");
    std::fs::create_dir_all(&examples).unwrap();
    for entry in std::fs::read_dir(EXAMPLES).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|ext| ext == "wasm") {
            std::os::unix::fs::symlink(&path, examples.join(path.file_name().unwrap())).unwrap();
        }
    }
    dir
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A port no one listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `shell` with each `HOST:PORT` of the README given a free port instead
/// (the same README port, the same free one).
fn with_free_ports(shell: &str, ports: &mut Vec<(String, String)>) -> String {
    let mut shell = shell.to_owned();
    for host in ["127.0.0.1:", "0.0.0.0:"] {
        let mut from = 0;
        while let Some(at) = shell[from..].find(host) {
            let start = from + at + host.len();
            let digits: String = shell[start..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            if !digits.is_empty() {
                let free = match ports.iter().find(|(readme, _)| *readme == digits) {
                    Some((_, free)) => free.clone(),
                    None => {
                        let free = free_port().to_string();
                        ports.push((digits.clone(), free.clone()));
                        free
                    }
                };
                shell.replace_range(start..start + digits.len(), &free);
            }
            from = start;
        }
    }
    shell
}

/// A bash running `script` in `dir`, with the suite's module cache.
fn bash(dir: &Path, script: &str) -> Command {
    let mut command = Command::new("bash");
    command
        .args(["-c", script])
        .current_dir(dir)
        .env("WASMPROC_CACHE_DIR", wasmproc_tests::suite_cache_dir())
        .env(
            "WASMPROC_CACHE_KEY_FILE",
            wasmproc_tests::suite_cache_key_file(),
        )
        .stdin(Stdio::null());
    command
}

/// Waits for `child` at most `limit` while reading its output, killing it
/// past that.
fn wait_at_most(child: Child, limit: Duration) -> (Output, bool) {
    let pid = child.id().to_string();
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || sender.send(child.wait_with_output().unwrap()));
    match receiver.recv_timeout(limit) {
        Ok(output) => (output, false),
        Err(_) => {
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
            (receiver.recv().unwrap(), true)
        }
    }
}

/// A server started by a line ending in `&`.
struct Job {
    line: usize,
    child: Child,
    stderr: mpsc::Receiver<String>,
}

impl Drop for Job {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `script` (a `wasmproc serve` line) and waits until it serves.
fn start_job(dir: &Path, script: &str, line: &Line) -> Job {
    let mut child = bash(dir, script)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (sender, stderr) = mpsc::channel();
    let reader = BufReader::new(child.stderr.take().unwrap());
    std::thread::spawn(move || {
        for text in reader.lines().map_while(Result::ok) {
            let _ = sender.send(text);
        }
    });
    let deadline = Instant::now() + LINE_TIMEOUT;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match stderr.recv_timeout(left) {
            Ok(text) if text.contains(": serving ") => break,
            Ok(text) => seen.push(text),
            Err(_) => panic!(
                "README line {} (`{}`) did not start serving; its stderr:\n{}",
                line.number,
                line.shell,
                seen.join("\n")
            ),
        }
    }
    Job {
        line: line.number,
        child,
        stderr,
    }
}

/// Stops a job as `kill` does (SIGTERM) and checks that it exits 0.
fn stop_job(mut job: Job) {
    let pid = job.child.id().to_string();
    let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(sent.success());
    let deadline = Instant::now() + LINE_TIMEOUT;
    let status = loop {
        if let Some(status) = job.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the server of README line {} did not stop",
            job.line
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let stderr: Vec<String> = job.stderr.try_iter().collect();
    assert_eq!(
        status.code(),
        Some(0),
        "the server of README line {} exited {status} after kill; its stderr:\n{}",
        job.line,
        stderr.join("\n")
    );
}

/// What a line's comment promises: its exit status and the parts of its
/// stdout (`prints A ... B`).
fn promises(comment: &str) -> (i32, Vec<String>) {
    let status = comment
        .split("exits ")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|digits| digits.parse().ok())
        .unwrap_or(0);
    let printed = comment
        .split("prints ")
        .nth(1)
        .map(|rest| {
            rest.split(';')
                .next()
                .unwrap_or(rest)
                .split(" ... ")
                .map(|part| part.trim().to_owned())
                .filter(|part| !part.is_empty())
                .collect()
        })
        .unwrap_or_default();
    (status, printed)
}

fn is_assignment(shell: &str) -> bool {
    let first = shell.split_whitespace().next().unwrap_or("");
    first == "export"
        || first
            .split_once('=')
            .is_some_and(|(name, _)| name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
}

#[test]
fn every_wasmproc_command_in_the_readme_runs_as_written() {
    let lines = readme_lines();
    let dir = clone_layout();
    let has_curl = Command::new("bash")
        .args(["-c", "command -v curl"])
        .output()
        .is_ok_and(|output| output.status.success());
    let (mut prelude, mut ports, mut jobs) = (String::new(), Vec::new(), Vec::<Option<Job>>::new());
    let (mut ran, mut builds) = (0, 0);
    let mut skips_used = vec![false; SKIPPED.len()];
    for line in &lines {
        if let Some(at) = SKIPPED
            .iter()
            .position(|(word, _)| line.shell.contains(word))
        {
            skips_used[at] = true;
            continue;
        }
        if line.shell.contains("cargo build") {
            assert_eq!(
                line.shell,
                format!("{BUILD}{EXAMPLES_BUILD}"),
                "README line {}: the build that the README's commands need is the one this \
                 test's build script runs",
                line.number
            );
            builds += 1;
            continue;
        }
        if line.shell.starts_with("curl ") && !has_curl {
            eprintln!("README line {} not run: curl is not installed", line.number);
            continue;
        }
        let shell = with_free_ports(&line.shell, &mut ports);
        if is_assignment(&shell) {
            prelude.push_str(&shell);
            prelude.push('\n');
            continue;
        }
        ran += 1;
        if let Some(jobs_named) = shell.strip_prefix("kill ") {
            for job in jobs_named.split_whitespace() {
                let number: usize = job.trim_start_matches('%').parse().unwrap();
                let job = jobs[number - 1]
                    .take()
                    .unwrap_or_else(|| panic!("README line {}: no job {number}", line.number));
                stop_job(job);
            }
            if jobs.iter().all(Option::is_none) {
                jobs.clear();
            }
            continue;
        }
        if let Some(server) = shell.strip_suffix('&') {
            let script = format!("{prelude}exec {server}");
            jobs.push(Some(start_job(dir.path(), &script, line)));
            continue;
        }
        let script = format!("set -o pipefail\n{prelude}{shell}");
        let child = bash(dir.path(), &script)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (output, timed_out) = wait_at_most(child, LINE_TIMEOUT);
        let (status, printed) = promises(&line.comment);
        let stdout = String::from_utf8_lossy(&output.stdout);
        let shown = || {
            format!(
                "README line {} (`{}`) exited {:?}{}; stdout:\n{}\nstderr:\n{}",
                line.number,
                line.shell,
                output.status.code(),
                if timed_out { " (killed: too slow)" } else { "" },
                stdout.chars().take(2000).collect::<String>(),
                String::from_utf8_lossy(&output.stderr)
            )
        };
        assert_eq!(output.status.code(), Some(status), "{}", shown());
        for part in printed {
            assert!(
                stdout.contains(&part),
                "{} (it should print {part:?})",
                shown()
            );
        }
    }
    assert!(
        jobs.iter().all(Option::is_none),
        "a README server was never stopped"
    );
    assert_eq!(builds, 1, "the README builds once, in its first command");
    assert!(ran >= 25, "only {ran} README lines ran");
    for ((word, reason), used) in SKIPPED.iter().zip(skips_used) {
        assert!(
            used,
            "no README line has `{word}` any more (skipped: {reason})"
        );
    }
}
