//! `wasmproc map`: NDJSON in, NDJSON out, one status per line.

use std::io::Write;
use std::process::Stdio;

use serde_json::Value;
use wasmproc_tests::{code, guests, stderr};

use crate::{input_file, lines, wasmproc, wasmproc_run};

const SDK: &str = guests::SDK_TASKS;
const CMD: &str = guests::WASI_CMD;

#[test]
fn typed_tasks_in_order_with_a_malformed_line_failing_alone() {
    let input = input_file("3\n4\n{oops\n\"five\"\n6\n");
    let output = wasmproc_run(&[
        "map",
        SDK,
        "--task",
        "square",
        "-j",
        "2",
        input.path().to_str().unwrap(),
    ]);
    assert_eq!(code(&output), 123, "some tasks failed: {}", stderr(&output));
    let lines = lines(&output);
    let indexes: Vec<u64> = lines.iter().map(|l| l["index"].as_u64().unwrap()).collect();
    assert_eq!(indexes, [0, 1, 2, 3, 4]);
    assert_eq!(lines[0]["result"], 9);
    assert_eq!(lines[1]["result"], 16);
    assert_eq!(lines[2]["status"], "bad_invocation");
    assert_eq!(lines[2]["exit_code"], 128);
    assert_eq!(lines[3]["status"], "bad_invocation");
    assert_eq!(lines[4]["result"], 36);
    for field in [
        "stdout",
        "stderr",
        "fuel_used",
        "peak_memory_bytes",
        "duration_ms",
        "message",
    ] {
        assert!(lines[0].get(field).is_some(), "{field} is in every line");
    }
    let summary = stderr(&output);
    assert!(
        summary.contains("5 tasks") && summary.contains("2 bad_invocation"),
        "{summary}"
    );
}

#[test]
fn all_succeeding_exits_zero() {
    let input = input_file(&(1..=50).map(|i| format!("{i}\n")).collect::<String>());
    let output = wasmproc_run(&[
        "map",
        SDK,
        "--task",
        "square",
        input.path().to_str().unwrap(),
    ]);
    assert_eq!(code(&output), 0);
    let results: Vec<u64> = lines(&output)
        .iter()
        .map(|l| l["result"].as_u64().unwrap())
        .collect();
    assert_eq!(results, (1..=50u64).map(|i| i * i).collect::<Vec<_>>());
}

#[test]
fn command_lines_are_argv_arrays_and_unordered_keeps_every_index() {
    let mut child = wasmproc()
        .args(["map", "--unordered", "-j", "3", CMD, "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = String::new();
    for i in 0..30 {
        input.push_str(&format!("[\"exit\", \"{}\"]\n", i % 4));
    }
    input.push_str("{\"not\": \"an array\"}\n");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(code(&output), 123);
    let mut seen: Vec<(u64, Value)> = lines(&output)
        .into_iter()
        .map(|l| (l["index"].as_u64().unwrap(), l["exit_code"].clone()))
        .collect();
    seen.sort_by_key(|(i, _)| *i);
    assert_eq!(seen.len(), 31);
    for (i, exit_code) in &seen[..30] {
        assert_eq!(exit_code, &Value::from(i % 4), "line {i}");
    }
    assert_eq!(seen[30].1, 128, "the malformed line is a bad invocation");
}

#[test]
fn chunks_give_the_same_results() {
    let input = input_file(&(0..40).map(|i| format!("{i}\n")).collect::<String>());
    let output = wasmproc_run(&[
        "map",
        SDK,
        "--task",
        "square",
        "--chunksize",
        "7",
        input.path().to_str().unwrap(),
    ]);
    assert_eq!(code(&output), 0);
    let results: Vec<u64> = lines(&output)
        .iter()
        .map(|l| l["result"].as_u64().unwrap())
        .collect();
    assert_eq!(results, (0..40u64).map(|i| i * i).collect::<Vec<_>>());
}

#[test]
fn limits_and_capabilities_apply_to_every_line() {
    let input = input_file("\"WANTED\"\n\"PATH\"\n");
    let output = wasmproc_run(&[
        "map",
        "--env",
        "WANTED=yes",
        SDK,
        "--task",
        "env_var",
        input.path().to_str().unwrap(),
    ]);
    let lines = lines(&output);
    assert_eq!(lines[0]["result"], "yes");
    assert_eq!(
        lines[1]["result"],
        Value::Null,
        "the host's PATH is not granted"
    );

    let spins = input_file("null\nnull\n");
    let output = wasmproc_run(&[
        "map",
        "--timeout",
        "50ms",
        SDK,
        "--task",
        "spin",
        spins.path().to_str().unwrap(),
    ]);
    assert_eq!(code(&output), 123);
    assert!(
        self::lines(&output)
            .iter()
            .all(|l| l["status"] == "timed_out")
    );
}

#[test]
fn a_run_that_cannot_start_has_its_status() {
    let input = input_file("1\n");
    let path = input.path().to_str().unwrap();
    assert_eq!(
        code(&wasmproc_run(&["map", "/no/such/module.wasm", path])),
        127
    );
    assert_eq!(
        code(&wasmproc_run(&["map", SDK, path])),
        126,
        "several tasks and no --task"
    );
    assert_eq!(
        code(&wasmproc_run(&["map", SDK, "--task", "nope", path])),
        126
    );
    assert_eq!(
        code(&wasmproc_run(&[
            "map",
            SDK,
            "--task",
            "square",
            "/no/such/input.ndjson"
        ])),
        128
    );
    assert_eq!(
        code(&wasmproc_run(&[
            "map", "-j", "0", SDK, "--task", "square", path
        ])),
        128
    );
    assert_eq!(
        code(&wasmproc_run(&[
            "map",
            "--chunksize",
            "0",
            SDK,
            "--task",
            "square",
            path
        ])),
        128
    );
}

#[test]
fn process_isolation_gives_the_same_lines() {
    let input = input_file("3\n\"x\"\n{bad\nnull\n");
    let path = input.path().to_str().unwrap();
    let strip = |output: &std::process::Output| -> Vec<Value> {
        lines(output)
            .into_iter()
            .map(|mut line| {
                line.as_object_mut().unwrap().remove("duration_ms");
                line
            })
            .collect()
    };
    let threads = wasmproc_run(&[
        "map",
        "--isolation",
        "thread",
        SDK,
        "--task",
        "square",
        path,
    ]);
    let processes = wasmproc_run(&[
        "map",
        "--isolation",
        "process",
        "-j",
        "2",
        SDK,
        "--task",
        "square",
        path,
    ]);
    assert_eq!(code(&threads), code(&processes));
    assert_eq!(strip(&threads), strip(&processes));
    assert_eq!(strip(&processes)[0]["result"], 9);
}

#[test]
fn results_only_writes_the_answers_in_order_and_failures_to_stderr() {
    let input = input_file("3\n4\n{oops\n\n6\n");
    let commands = input_file("[\"args\", \"a\"]\n[\"exit\", \"3\"]\n[\"args\", \"b\"]\n");
    for isolation in ["thread", "process"] {
        let output = wasmproc_run(&[
            "map",
            SDK,
            "--task",
            "square",
            "-j",
            "2",
            "--isolation",
            isolation,
            "--results-only",
            input.path().to_str().unwrap(),
        ]);
        assert_eq!(code(&output), 123, "a task failed: {}", stderr(&output));
        assert_eq!(String::from_utf8_lossy(&output.stdout), "9\n16\n36\n");
        let errors = stderr(&output);
        assert!(
            errors.contains("input line 3: bad_invocation"),
            "{isolation}: the failure names its line and status: {errors}"
        );
        assert_eq!(errors.matches("input line 3").count(), 1, "{errors}");

        // A command's answer is its stdout, as it wrote it.
        let output = wasmproc_run(&[
            "map",
            CMD,
            "--isolation",
            isolation,
            "--results-only",
            commands.path().to_str().unwrap(),
        ]);
        assert_eq!(code(&output), 123, "{}", stderr(&output));
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let answers: Vec<&str> = stdout.lines().collect();
        assert_eq!(answers.len(), 2, "{isolation}: {stdout}");
        assert!(answers[0].ends_with("|args|a") && answers[1].ends_with("|args|b"));
        let errors = stderr(&output);
        assert!(
            errors.contains("input line 2: exited with code 3"),
            "{errors}"
        );
    }
}

/// Ctrl-C: the tasks end cancelled, the exit status is 130, and the
/// summary says how much of the input was read, cancelled and never read,
/// and the first line not done (here the first, cancelled while it ran).
#[cfg(unix)]
#[test]
fn ctrl_c_says_how_many_input_lines_were_never_read() {
    let lines = 100_000;
    let input = input_file(&"[\"sleep\", \"3600000\"]\n".repeat(lines));
    let child = wasmproc()
        .args(["map", "-j", "1", CMD])
        .arg(input.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let output = child.wait_with_output().unwrap();
    assert_eq!(code(&output), 130, "{}", stderr(&output));
    let stderr = stderr(&output);
    let note = stderr
        .lines()
        .find(|line| line.starts_with("wasmproc map: interrupted: "))
        .unwrap_or_else(|| panic!("no interrupted line: {stderr}"));
    // Counts are written with thousands separators (`97,440`).
    let numbers: Vec<usize> = note
        .replace(',', "")
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|word| word.parse().ok())
        .collect();
    let (read, cancelled, unread, first) = (numbers[0], numbers[1], numbers[2], numbers[3]);
    assert!(read > 0 && unread > 0, "{note}");
    assert_eq!(read + unread, lines, "{note}");
    assert_eq!(cancelled, read, "{note}: every task read was cancelled");
    assert_eq!(first, 1, "{note}");
    // One line out for each line read.
    assert_eq!(
        wasmproc_tests::stdout(&output).lines().count(),
        read,
        "{note}"
    );
}

/// A line that does not fit the task is explained with its signature.
#[test]
fn a_line_of_the_wrong_shape_is_explained_with_the_signature() {
    let input = input_file("[1, 2]\n\"x\"\n");
    let output = wasmproc_run(&["map", SDK, "--task", "add", input.path().to_str().unwrap()]);
    assert_eq!(code(&output), 123);
    let lines = lines(&output);
    assert_eq!(lines[0]["result"], 3);
    assert_eq!(
        lines[1]["message"],
        "input line 2: the argument does not fit `add`: `add(a: i64, b: i64) -> i64` takes a \
         JSON array of 2 values, one per parameter, e.g. the line [0, 0] (invalid type: string \
         \"x\", expected a tuple of size 2)"
    );
}

/// An input that cannot be read ends the map: a directory named as the
/// input is refused before any task (128); stdin that is one gives one
/// failed line, and the map ends (it read failures without end before).
#[test]
fn an_input_that_cannot_be_read_ends_the_map() {
    let dir = tempfile::tempdir().unwrap();
    let named = wasmproc_run(&["map", SDK, "--task", "square", dir.path().to_str().unwrap()]);
    assert_eq!(code(&named), 128, "{}", stderr(&named));
    assert!(
        stderr(&named).contains("is a directory"),
        "{}",
        stderr(&named)
    );

    let output = wasmproc()
        .args(["map", SDK, "--task", "square", "-"])
        .stdin(std::fs::File::open(dir.path()).unwrap())
        .output()
        .unwrap();
    assert_eq!(code(&output), 123, "{}", stderr(&output));
    let lines = lines(&output);
    assert_eq!(lines.len(), 1, "one line says the input ended");
    assert_eq!(lines[0]["status"], "bad_invocation");
}

/// A closed stderr (`2>&1 >/dev/null | head -c 0`) loses the summary, not
/// the status: the command does not panic.
#[test]
fn a_closed_stderr_loses_the_summary_not_the_status() {
    let input = input_file("1\n2\n");
    let mut child = wasmproc()
        .args([
            "map",
            SDK,
            "--task",
            "square",
            input.path().to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stderr.take());
    assert_eq!(child.wait().unwrap().code(), Some(0));
}
