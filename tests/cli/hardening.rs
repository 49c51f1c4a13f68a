//! The binary under hostile or careless use: each test is a reproduction
//! from issue 13 ("Hardening"), named after what must hold.

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;

use serde_json::Value;
use wasmproc_tests::{code, guests, stderr, stdout};

use crate::{wasmproc, wasmproc_run};

const SDK: &str = guests::SDK_TASKS;
const CMD: &str = guests::WASI_CMD;

/// Runs `wasmproc ARGS` with `input` on its stdin.
fn with_stdin(args: &[&str], input: &[u8]) -> std::process::Output {
    let mut child = wasmproc()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap();
    output
}

#[test]
fn a_misspelt_limit_after_the_module_is_an_error_for_a_task() {
    let output = wasmproc_run(&[
        "run", SDK, "--task", "sleep_ms", "--args", "2000", "--timout", "500ms",
    ]);
    assert_eq!(code(&output), 128);
    let message = stderr(&output);
    assert!(
        message.contains("`--timout`") && message.contains("did you mean --timeout?"),
        "{message}"
    );
}

#[test]
fn a_misspelt_option_given_to_a_command_is_warned_about() {
    let output = wasmproc_run(&["run", CMD, "--max-memroy", "64MiB"]);
    assert!(
        stderr(&output).contains("did you mean --max-memory?"),
        "{}",
        stderr(&output)
    );
    // Past the first word too.
    let output = wasmproc_run(&["run", CMD, "echo", "--timout", "1s"]);
    assert!(
        stderr(&output).contains("did you mean --timeout?"),
        "{}",
        stderr(&output)
    );
    // After an explicit `--` the words are the guest's: no warning.
    let output = wasmproc_run(&["run", CMD, "--", "--max-memroy"]);
    assert!(!stderr(&output).contains("did you mean"));
}

/// The same stdin, output and exit code in both isolations: stdin is
/// relayed to a worker process, and output of any size streams back.
#[test]
fn run_passes_stdin_and_output_through_in_both_isolations() {
    let input: Vec<u8> = (0..300_000u32).flat_map(|i| i.to_le_bytes()).collect();
    for isolation in ["thread", "process"] {
        let output = with_stdin(&["run", "--isolation", isolation, CMD, "cat"], &input);
        assert_eq!(code(&output), 0, "{isolation}: {}", stderr(&output));
        assert!(
            output.stdout == input,
            "{isolation}: stdin did not come back whole"
        );

        let flood = wasmproc_run(&["run", "--isolation", isolation, CMD, "flood", "3000000"]);
        assert_eq!(code(&flood), 0);
        assert_eq!(
            flood.stdout.len(),
            3_000_000 / 1024 * 1024 + 5,
            "{isolation}"
        );
    }
}

#[test]
fn run_json_in_a_worker_process_prints_one_object() {
    let output = wasmproc_run(&[
        "run",
        "--json",
        "--isolation",
        "process",
        CMD,
        "say",
        "hello",
    ]);
    let object: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("not one JSON object ({e}): {}", stdout(&output)));
    assert_eq!(object["stdout"], "hello\n");
    assert_eq!(object["stderr"], "hello\n");
}

/// Reads that have no end fail at the limit, at once, with 128.
#[cfg(unix)]
#[test]
fn an_endless_argument_on_stdin_fails_at_the_limit() {
    use std::time::{Duration, Instant};
    let started = Instant::now();
    let output = wasmproc()
        .args([
            "run",
            SDK,
            "--task",
            "echo",
            "--args",
            "-",
            "--max-args",
            "1MiB",
        ])
        .stdin(std::fs::File::open("/dev/zero").unwrap())
        .output()
        .unwrap();
    assert_eq!(code(&output), 128, "{}", stderr(&output));
    assert!(stderr(&output).contains("over the limit"));
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[cfg(unix)]
#[test]
fn an_endless_module_is_refused_at_once() {
    let output = wasmproc_run(&["run", "/dev/zero"]);
    assert_eq!(code(&output), 126);
    assert!(stderr(&output).contains("not a WebAssembly module"));
}

/// A line that never ends is reported as soon as it passes the limit; the
/// map goes on reading (and holds none of it).
#[cfg(unix)]
#[test]
fn an_endless_input_line_fails_at_the_limit() {
    let mut child = wasmproc()
        .args([
            "map",
            "--max-args",
            "64KiB",
            SDK,
            "--task",
            "echo",
            "/dev/zero",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    child.kill().unwrap();
    let _ = child.wait();
    let line: Value = serde_json::from_str(&first).unwrap();
    assert_eq!(line["status"], "bad_invocation");
    assert!(
        line["message"]
            .as_str()
            .unwrap()
            .contains("input line 1 is over the limit of 65536 bytes")
    );
}

#[test]
fn jobs_beyond_the_cap_are_refused_and_many_jobs_start_lazily() {
    let output = wasmproc_run(&["map", "-j", "100000", SDK, "--task", "square", "-"]);
    assert_eq!(code(&output), 128);
    assert!(
        stderr(&output).contains("-j 1024 or less"),
        "{}",
        stderr(&output)
    );

    let output = with_stdin(
        &["map", "-j", "1000", SDK, "--task", "square"],
        b"1\n2\n3\n",
    );
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(stdout(&output).lines().count(), 3);
}

#[test]
fn a_memory_limit_past_what_a_task_may_have_is_refused() {
    let output = wasmproc_run(&["run", "--max-memory", "8GiB", SDK, "--task", "nothing"]);
    assert_eq!(code(&output), 128);
    assert!(
        stderr(&output).contains("give at most 4GiB"),
        "{}",
        stderr(&output)
    );
}

/// `map` over a pipe starts each task as its line arrives and writes each
/// result when it is ready, while the producer is still writing.
#[test]
fn map_streams_results_while_its_input_is_open() {
    for isolation in ["thread", "process"] {
        let mut child = wasmproc()
            .args([
                "map",
                "--isolation",
                isolation,
                SDK,
                "--task",
                "square",
                "-",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        let mut output = BufReader::new(child.stdout.take().unwrap());
        for n in [5u64, 6] {
            writeln!(input, "{n}").unwrap();
            input.flush().unwrap();
            let mut line = String::new();
            output.read_line(&mut line).unwrap();
            let line: Value = serde_json::from_str(&line).unwrap();
            assert_eq!(
                line["result"],
                n * n,
                "{isolation}: the result came while the input was open"
            );
        }
        drop(input);
        assert_eq!(child.wait().unwrap().code(), Some(0), "{isolation}");
    }
}

/// An outcome's index and its message name the same line: the index is the
/// line's number from 0 (blank lines skipped but counted), the message the
/// line's number from 1.
#[test]
fn indexes_and_messages_refer_to_input_lines() {
    let output = with_stdin(&["map", SDK, "--task", "square"], b"3\n\n{bad\n4\n");
    assert_eq!(code(&output), 123);
    let lines: Vec<Value> = stdout(&output)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let indexes: Vec<u64> = lines.iter().map(|l| l["index"].as_u64().unwrap()).collect();
    assert_eq!(indexes, [0, 2, 3]);
    let message = lines[1]["message"].as_str().unwrap();
    assert!(message.starts_with("input line 3: "), "{message}");
}

/// A closed stdout ends every command quietly: no panic, no error.
#[cfg(unix)]
#[test]
fn a_closed_stdout_ends_commands_quietly() {
    use std::io::Read;
    let many: String = (0..20_000).map(|i| format!("{i}\n")).collect();
    let mut input = tempfile::NamedTempFile::new().unwrap();
    input.write_all(many.as_bytes()).unwrap();
    for args in [
        vec!["inspect", SDK],
        vec![
            "map",
            SDK,
            "--task",
            "square",
            input.path().to_str().unwrap(),
        ],
    ] {
        let mut child = wasmproc()
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let mut first = [0u8; 1];
        stdout.read_exact(&mut first).unwrap();
        drop(stdout);
        let output = child.wait_with_output().unwrap();
        let complaint = String::from_utf8_lossy(&output.stderr);
        assert!(
            matches!(output.status.code(), Some(0 | 123)),
            "{args:?}: {:?} {complaint}",
            output.status
        );
        assert!(
            !complaint.contains("panicked") && !complaint.contains("error"),
            "{args:?}: {complaint}"
        );
    }
}

#[test]
fn a_module_with_too_many_functions_is_refused_before_compiling() {
    let output = wasmproc_run(&["compile", "--max-functions", "3", SDK]);
    assert_eq!(code(&output), 126);
    assert!(
        stderr(&output).contains("over the limit of 3"),
        "{}",
        stderr(&output)
    );
}

#[cfg(unix)]
#[test]
fn a_host_value_that_is_not_utf8_is_named_as_such() {
    use std::os::unix::ffi::OsStrExt;
    let output = wasmproc()
        .args(["run", "--env", "WASMPROC_TEST_LATIN1", CMD, "env"])
        .env(
            "WASMPROC_TEST_LATIN1",
            std::ffi::OsStr::from_bytes(b"caf\xe9"),
        )
        .output()
        .unwrap();
    assert_eq!(code(&output), 128);
    assert!(
        stderr(&output).contains("is not UTF-8"),
        "{}",
        stderr(&output)
    );
}

/// `map --replay-dir` writes a bundle for each task that did not exit 0,
/// and `wasmproc replay` runs it again to the same outcome.
#[test]
fn failed_map_tasks_replay_to_the_same_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let replays = dir.path().join("replays");
    let output = with_stdin(
        &[
            "map",
            "--isolation",
            "process",
            "--replay-dir",
            replays.to_str().unwrap(),
            SDK,
            "--task",
            "fail_with",
        ],
        b"[0, \"fine\"]\n\n[7, \"no such customer\"]\n{bad\n",
    );
    assert_eq!(code(&output), 123);
    // `fail_with` always fails: a code 0 becomes 1.
    assert!(
        stderr(&output).contains("3 replay bundles"),
        "{}",
        stderr(&output)
    );
    let mut bundles: Vec<_> = std::fs::read_dir(&replays)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    bundles.sort();
    let names: Vec<_> = bundles
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "sdk_tasks-line-1.replay.json",
            "sdk_tasks-line-3.replay.json",
            "sdk_tasks-line-4.replay.json"
        ]
    );
    let again = wasmproc_run(&["replay", "--json", bundles[1].to_str().unwrap()]);
    assert_eq!(code(&again), 7);
    let object: Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(object["message"], "no such customer");
    let again = wasmproc_run(&["replay", bundles[2].to_str().unwrap()]);
    assert_eq!(code(&again), 128, "{}", stderr(&again));
}

/// `run --replay-dir` records the stdin the guest read, and the replay
/// feeds it the same bytes; a module that changed since is refused.
#[test]
fn a_failed_run_replays_with_the_stdin_it_read() {
    let dir = tempfile::tempdir().unwrap();
    let module = dir.path().join("cmd.wasm");
    std::fs::copy(CMD, &module).unwrap();
    let replays = dir.path().join("replays");
    let output = with_stdin(
        &[
            "run",
            "--replay-dir",
            replays.to_str().unwrap(),
            module.to_str().unwrap(),
            "expect",
            "other",
        ],
        b"secret",
    );
    assert_eq!(code(&output), 1);
    let bundle = replays.join("cmd-run.replay.json");
    assert!(
        stderr(&output).contains("wasmproc replay"),
        "{}",
        stderr(&output)
    );

    let again = wasmproc_run(&["replay", bundle.to_str().unwrap()]);
    assert_eq!(code(&again), 1);
    assert!(
        stderr(&again).contains("read \"secret\""),
        "{}",
        stderr(&again)
    );

    std::fs::copy(SDK, &module).unwrap();
    let changed = wasmproc_run(&["replay", bundle.to_str().unwrap()]);
    assert_eq!(code(&changed), 126);
    assert!(stderr(&changed).contains("changed since the bundle was written"));
}

/// A misfitting argument is explained on replay as `run` explained it:
/// the task's signature and a form that works.
#[test]
fn a_replayed_misfit_is_explained_as_run_explains_it() {
    let dir = tempfile::tempdir().unwrap();
    let replays = dir.path().join("replays");
    for (args, headline) in [
        (
            &["--args", "[1]"][..],
            "`add` takes 2 values and --args gives 1",
        ),
        (&[][..], "`add` takes an argument and none was given"),
    ] {
        let mut command = vec![
            "run",
            "--replay-dir",
            replays.to_str().unwrap(),
            SDK,
            "--task",
            "add",
        ];
        command.extend_from_slice(args);
        let output = wasmproc_run(&command);
        assert_eq!(code(&output), 128, "{}", stderr(&output));
        assert!(stderr(&output).contains(headline), "{}", stderr(&output));
        let bundle = std::fs::read_dir(&replays)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .next()
            .expect("run wrote a bundle");

        let again = wasmproc_run(&["replay", bundle.to_str().unwrap()]);
        assert_eq!(code(&again), 128, "{}", stderr(&again));
        assert!(stderr(&again).contains(headline), "{}", stderr(&again));
        assert!(
            stderr(&again).contains("`add(a: i64, b: i64) -> i64`"),
            "{}",
            stderr(&again)
        );
        std::fs::remove_file(bundle).unwrap();
    }
}

/// `replay` prints as `run` does, best effort: a reader that went away
/// (`replay … | head -c0`) neither panics it nor changes its exit status.
#[cfg(unix)]
#[test]
fn replay_into_a_closed_stdout_keeps_the_tasks_status() {
    let dir = tempfile::tempdir().unwrap();
    let module = dir.path().join("cmd.wasm");
    std::fs::copy(CMD, &module).unwrap();
    let replays = dir.path().join("replays");
    let replay_dir = replays.to_str().unwrap();
    let output = wasmproc_run(&[
        "run",
        "--replay-dir",
        replay_dir,
        module.to_str().unwrap(),
        "exit",
        "3",
    ]);
    assert_eq!(code(&output), 3, "{}", stderr(&output));
    let bundle = replays.join("cmd-run.replay.json");

    let mut child = wasmproc()
        .args(["replay", "--json", bundle.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Closed before the replay has loaded its module, so before it prints.
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    let complaint = stderr(&output);
    assert_eq!(code(&output), 3, "{complaint}");
    assert!(!complaint.contains("panicked"), "{complaint}");
}

/// A bundle is a file anyone may edit: the directories it grants are said
/// before running, and granted only with `--yes` or the same `--dir`
/// flags; a field of a later format is refused.
#[test]
fn replay_grants_a_bundles_directories_only_when_told_to() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("note.txt"), "inside").unwrap();
    let replays = dir.path().join("replays");
    let grant = format!("{}::/data", data.display());
    let output = wasmproc_run(&[
        "run",
        "--replay-dir",
        replays.to_str().unwrap(),
        "--dir",
        &grant,
        CMD,
        "read",
        "/data/missing.txt",
    ]);
    assert_eq!(code(&output), 2, "{}", stderr(&output));
    let bundle = replays.join("wasi-cmd-run.replay.json");
    let bundle = bundle.to_str().unwrap();

    let asked = wasmproc_run(&["replay", bundle]);
    assert_eq!(code(&asked), 128, "{}", stderr(&asked));
    let message = stderr(&asked);
    assert!(
        message.contains(&format!("the bundle grants --dir {grant}")),
        "{message}"
    );
    assert!(
        message.contains("pass --yes, or the same flags"),
        "{message}"
    );

    for agreed in [vec!["--yes"], vec!["--dir", grant.as_str()]] {
        let mut args = vec!["replay"];
        args.extend(agreed.iter().copied());
        args.push(bundle);
        let again = wasmproc_run(&args);
        assert_eq!(code(&again), 2, "{agreed:?}: {}", stderr(&again));
        assert!(stderr(&again).contains("cannot read /data/missing.txt"));
    }
    let other = format!("{}::/data", dir.path().display());
    let refused = wasmproc_run(&["replay", "--dir", &other, bundle]);
    assert_eq!(code(&refused), 128, "{}", stderr(&refused));

    // An edited bundle that grants /etc is refused the same way.
    let mut edited: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle).unwrap()).unwrap();
    edited["dirs"] = serde_json::json!([{"host": "/etc", "guest": "/data"}]);
    std::fs::write(bundle, edited.to_string()).unwrap();
    let etc = wasmproc_run(&["replay", bundle]);
    assert_eq!(code(&etc), 128);
    assert!(
        stderr(&etc).contains("--dir /etc::/data"),
        "{}",
        stderr(&etc)
    );

    edited["from_the_future"] = serde_json::json!(true);
    std::fs::write(bundle, edited.to_string()).unwrap();
    let later = wasmproc_run(&["replay", "--yes", bundle]);
    assert_eq!(code(&later), 128);
    assert!(
        stderr(&later).contains("from_the_future"),
        "{}",
        stderr(&later)
    );
}

/// A guest whose time runs out while it waits for its reader ends
/// `timed_out` in both isolations, also when the reader comes back later.
/// (In process isolation the worker retired after such a task, and the
/// pool took the refused credit for its death: `worker lost`, 139.)
#[test]
fn a_task_that_times_out_waiting_for_its_reader_is_timed_out() {
    for isolation in ["thread", "process"] {
        let child = wasmproc()
            .args(["run", "--isolation", isolation, "--timeout", "1s", CMD])
            .args(["flood", "4000000000"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Nobody reads until well after the time limit.
        std::thread::sleep(std::time::Duration::from_secs(3));
        let output = child.wait_with_output().unwrap();
        assert_eq!(code(&output), 142, "{isolation}: {}", stderr(&output));
        assert!(
            !stderr(&output).contains("worker"),
            "{isolation}: {}",
            stderr(&output)
        );
    }
}

/// A worker's cluster-wide values that the cluster would not keep are
/// refused before any connection, as every other zero limit is.
#[test]
fn a_workers_zero_attempts_or_tiny_ack_wait_is_refused() {
    for (flag, value, says) in [
        ("--attempts", "0", "--attempts must be at least 1"),
        ("--ack-wait", "0s", "--ack-wait must be at least 300ms"),
    ] {
        // Nothing listens there: the refusal comes first.
        let output = wasmproc_run(&["worker", "--nats", "nats://127.0.0.1:1", flag, value]);
        assert_eq!(code(&output), 128, "{flag}: {}", stderr(&output));
        assert!(
            stderr(&output).contains(says),
            "{flag}: {}",
            stderr(&output)
        );
    }
}

/// `compile` says why the cache cannot take its entry, as the README
/// promises, not only that it could not.
#[test]
fn compile_says_why_the_cache_is_unusable() {
    let place = tempfile::NamedTempFile::new().unwrap();
    let output = wasmproc()
        .env("WASMPROC_CACHE_DIR", place.path())
        .args(["compile", SDK])
        .output()
        .unwrap();
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert!(
        stdout(&output).contains("is a file, not a directory"),
        "{}",
        stdout(&output)
    );
}

/// A FIFO put where a cache entry or its record should be is no entry: the
/// module is compiled again, and nothing waits on the FIFO's other end.
#[cfg(unix)]
#[test]
fn a_fifo_in_the_cache_is_compiled_over_not_waited_on() {
    let cache = tempfile::tempdir().unwrap();
    let run = || {
        let mut child = wasmproc()
            .env("WASMPROC_CACHE_DIR", cache.path())
            .args(["run", SDK, "--task", "square", "--args", "7"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let started = std::time::Instant::now();
        while child.try_wait().unwrap().is_none() {
            if started.elapsed() > std::time::Duration::from_secs(60) {
                child.kill().unwrap();
                panic!("the run waits on the FIFO");
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        child.wait_with_output().unwrap()
    };
    assert_eq!(code(&run()), 0);
    for entry in std::fs::read_dir(cache.path()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".cwasm") || name.ends_with(".checked") {
            std::fs::remove_file(&path).unwrap();
            let made = std::process::Command::new("mkfifo")
                .arg(&path)
                .status()
                .unwrap();
            assert!(made.success());
        }
    }
    let output = run();
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(stdout(&output), "49\n");
}
