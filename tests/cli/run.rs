//! The `wasmproc` binary, run as a user runs it.

use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use wasmproc_tests::{code, guests, stderr, stdout};

use crate::{wasmproc, wasmproc_run};

const SDK: &str = guests::SDK_TASKS;
const CMD: &str = guests::WASI_CMD;

fn json_line(output: &std::process::Output) -> Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(output)))
}

#[test]
fn typed_task_prints_its_result_as_json() {
    let output = wasmproc_run(&["run", SDK, "--task", "add", "--args", "[2, 40]"]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(stdout(&output), "42\n");
}

#[test]
fn host_options_may_come_before_the_module() {
    let output = wasmproc_run(&["run", "--task", "square", "--args", "9", SDK]);
    assert_eq!(stdout(&output), "81\n");
}

#[test]
fn json_object_has_every_field() {
    let output = wasmproc_run(&[
        "run",
        "--json",
        SDK,
        "--task",
        "write_output",
        "--args",
        "[3, \"e\"]",
    ]);
    assert_eq!(code(&output), 0);
    let object = json_line(&output);
    assert_eq!(object["status"], "exited");
    assert_eq!(object["exit_code"], 0);
    assert_eq!(object["result"], 3);
    assert_eq!(object["stdout"], "xxx");
    assert_eq!(object["stderr"], "e");
    assert_eq!(object["fuel_used"], Value::Null);
    assert!(object["peak_memory_bytes"].as_u64().unwrap() > 0);
    assert!(object["duration_ms"].as_f64().unwrap() > 0.0);
}

#[test]
fn json_reports_failures_with_their_status() {
    let output = wasmproc_run(&["run", "--json", "--fuel", "1000", SDK, "--task", "spin"]);
    assert_eq!(code(&output), 152);
    let object = json_line(&output);
    assert_eq!(object["status"], "fuel_exhausted");
    assert_eq!(object["exit_code"], 152);
    assert_eq!(object["fuel_used"], 1000);
}

#[test]
fn json_output_is_capped() {
    let output = wasmproc_run(&[
        "run",
        "--json",
        "--max-output",
        "100B",
        CMD,
        "flood",
        "100000",
    ]);
    let object = json_line(&output);
    assert_eq!(object["stdout"].as_str().unwrap().len(), 100);
    assert_eq!(object["stdout_truncated"], true);
}

#[test]
fn command_output_and_exit_code_pass_through() {
    let output = wasmproc_run(&["run", CMD, "--", "args", "--json", "x"]);
    assert_eq!(code(&output), 0);
    assert_eq!(stdout(&output), "wasi-cmd.wasm|args|--json|x\n");
    let failing = wasmproc_run(&["run", CMD, "stderr", "oops"]);
    assert_eq!(code(&failing), 0);
    assert_eq!(stderr(&failing), "oops\n");
    assert_eq!(code(&wasmproc_run(&["run", CMD, "exit", "17"])), 17);
}

#[test]
fn stdin_passes_through_to_a_command() {
    let mut child = wasmproc()
        .args(["run", CMD, "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"piped through\n")
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(code(&output), 0);
    assert_eq!(stdout(&output), "piped through\n");
}

#[test]
fn args_from_stdin() {
    let mut child = wasmproc()
        .args(["run", SDK, "--task", "echo", "--args", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(br#"{"from": "stdin"}"#)
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(stdout(&output), "{\"from\":\"stdin\"}\n");
}

#[test]
fn works_as_a_wasi_runner_with_dir_and_env() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("note.txt"), "granted file").unwrap();
    let grant = format!("{}::/", dir.path().display());
    let read = wasmproc_run(&[
        "run",
        "--dir",
        &grant,
        "--env",
        "K=V",
        CMD,
        "--",
        "read",
        "/note.txt",
    ]);
    assert_eq!(code(&read), 0, "{}", stderr(&read));
    assert_eq!(stdout(&read), "granted file");
    let env = wasmproc_run(&["run", "--env", "K=V", CMD, "env"]);
    assert_eq!(stdout(&env), "K=V\n");
}

#[test]
fn nothing_reaches_the_guest_without_a_grant() {
    let secret = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(secret.path(), "top secret").unwrap();
    let output = wasmproc()
        .args(["run", CMD, "env"])
        .env("WASMPROC_TEST_SECRET", "leaked")
        .output()
        .unwrap();
    assert_eq!(stdout(&output), "", "no host variable reaches the guest");
    let read = wasmproc_run(&["run", CMD, "read", secret.path().to_str().unwrap()]);
    assert_eq!(code(&read), 2);
    assert!(!stdout(&read).contains("top secret"));
}

#[test]
fn env_key_alone_passes_the_host_value() {
    let output = wasmproc()
        .args(["run", "--env", "WASMPROC_TEST_PASS", CMD, "env"])
        .env("WASMPROC_TEST_PASS", "passed")
        .output()
        .unwrap();
    assert_eq!(stdout(&output), "WASMPROC_TEST_PASS=passed\n");
}

#[test]
fn timeout_ends_a_guest_sleeping_in_a_host_call() {
    let started = Instant::now();
    let output = wasmproc_run(&["run", "--timeout", "500ms", CMD, "sleep", "3600000"]);
    let took = started.elapsed();
    assert_eq!(code(&output), 142);
    assert!(stderr(&output).contains("timed out"), "{}", stderr(&output));
    // Process start and a cache hit cost little; the sleep itself is cut at 500ms.
    assert!(took < Duration::from_millis(500 + 1500), "took {took:?}");
}

/// A stdin that cannot be read (a directory) is an error for the guest's
/// read in both isolations, not an end of input in a worker process.
#[cfg(unix)]
#[test]
fn a_stdin_that_cannot_be_read_fails_the_guests_read_in_both_isolations() {
    let dir = tempfile::tempdir().unwrap();
    for isolation in ["thread", "process"] {
        let output = wasmproc()
            .args(["run", "--isolation", isolation, CMD, "cat"])
            .stdin(std::fs::File::open(dir.path()).unwrap())
            .output()
            .unwrap();
        // The guest unwraps its read: a panic, then an abort.
        let stderr = stderr(&output);
        assert_eq!(code(&output), 134, "{isolation}: {stderr}");
        assert!(
            stderr.contains("stdin reads: Os { code: 31, kind: IsADirectory"),
            "{isolation}: {stderr}"
        );
    }
}

#[test]
fn timeout_ends_a_guest_blocked_reading_stdin() {
    let mut child = wasmproc()
        .args(["run", "--timeout", "300ms", CMD, "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Keep stdin open and silent: the guest blocks in `fd_read`.
    let _stdin = child.stdin.take();
    let started = Instant::now();
    let output = child.wait_with_output().unwrap();
    assert_eq!(code(&output), 142);
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn every_guest_status_through_the_binary() {
    let cases: &[(&[&str], i32)] = &[
        (&["run", SDK, "--task", "square", "--args", "2"], 0),
        (
            &[
                "run",
                SDK,
                "--task",
                "fail_with",
                "--args",
                "[33, \"nope\"]",
            ],
            33,
        ),
        (&["run", SDK, "--task", "panics", "--args", "\"boom\""], 101),
        (&["run", SDK, "--task", "missing"], 126),
        (&["run", SDK, "--task", "square", "--args", "not json"], 128),
        (&["run", SDK, "--task", "square", "--args", "\"text\""], 128),
        (&["run", SDK, "--task", "unreachable"], 134),
        (
            &["run", SDK, "--task", "recurse", "--args", "100000000"],
            134,
        ),
        (
            &[
                "run",
                "--max-memory",
                "16MiB",
                SDK,
                "--task",
                "allocate_mib",
                "--args",
                "100",
            ],
            137,
        ),
        (&["run", "--timeout", "100ms", SDK, "--task", "spin"], 142),
        (&["run", "--fuel", "5000", SDK, "--task", "spin"], 152),
    ];
    for (args, expected) in cases {
        let output = wasmproc_run(args);
        assert_eq!(
            code(&output),
            *expected,
            "wasmproc {args:?}: {}",
            stderr(&output)
        );
    }
}

#[test]
fn panic_message_is_on_stderr() {
    let output = wasmproc_run(&["run", SDK, "--task", "panics", "--args", "\"the sky fell\""]);
    assert_eq!(code(&output), 101);
    assert!(stderr(&output).contains("the sky fell"));
}

#[test]
fn trap_prints_kind_and_backtrace() {
    let output = wasmproc_run(&["run", SDK, "--task", "out_of_bounds"]);
    assert_eq!(code(&output), 134);
    let text = stderr(&output);
    assert!(
        text.contains("the guest trapped (memory_out_of_bounds)"),
        "{text}"
    );
    assert!(
        text.contains("sdk_tasks.wasm!wasmproc_task:out_of_bounds"),
        "the backtrace names the frame: {text}"
    );
}

/// Every limit is said in one line; where the guest was when it struck
/// goes to `-v` and `--json` only.
#[test]
fn limit_messages_are_one_line_with_the_backtrace_under_v_and_json() {
    let cases: [(&[&str], i32, &str); 3] = [
        (
            &["--fuel", "100000", "--task", "spin"],
            152,
            "fuel exhausted",
        ),
        (&["--timeout", "200ms", "--task", "spin"], 142, "timed out"),
        (
            &[
                "--max-memory",
                "8MiB",
                "--task",
                "allocate_mib",
                "--args",
                "64",
            ],
            137,
            "memory limit exceeded",
        ),
    ];
    for (flags, status, words) in cases {
        let mut args = vec!["run", SDK];
        args.extend_from_slice(flags);
        let output = wasmproc_run(&args);
        assert_eq!(code(&output), status, "{}", stderr(&output));
        let text = stderr(&output);
        assert_eq!(text.lines().count(), 1, "{flags:?}: one line, not:\n{text}");
        assert!(text.contains(words), "{text}");
        let mut json = vec!["run", "--json", SDK];
        json.extend_from_slice(flags);
        let object = json_line(&wasmproc_run(&json));
        if status == 152 {
            // The fuel runs out inside the guest's code: a backtrace, which
            // `--json` and `-v` keep.
            assert!(
                object["backtrace"]
                    .as_str()
                    .is_some_and(|b| b.contains("spin")),
                "{object}"
            );
            let mut verbose = vec!["run", "-v", SDK];
            verbose.extend_from_slice(flags);
            let text = stderr(&wasmproc_run(&verbose));
            assert!(
                text.contains("wasm backtrace") && text.contains("spin"),
                "{text}"
            );
        }
    }
}

#[test]
fn json_is_printed_also_when_nothing_could_run() {
    let output = wasmproc_run(&["run", "--json", "/no/such/module.wasm"]);
    assert_eq!(code(&output), 127);
    let object = json_line(&output);
    assert_eq!(object["status"], "not_found");
    assert!(
        object["message"]
            .as_str()
            .unwrap()
            .contains("/no/such/module.wasm")
    );
}

#[test]
fn panics_are_flagged_in_json() {
    let output = wasmproc_run(&["run", "--json", SDK, "--task", "panics", "--args", "\"x\""]);
    assert_eq!(json_line(&output)["panicked"], true);
}

#[test]
fn compile_and_inspect_report_loading_errors() {
    for command in ["compile", "inspect"] {
        assert_eq!(code(&wasmproc_run(&[command, "/no/such/module.wasm"])), 127);
        let output = wasmproc_run(&[command, concat!(env!("CARGO_MANIFEST_DIR"), "/src/main.rs")]);
        assert_eq!(code(&output), 126, "{command} of a Rust source file");
    }
}

#[test]
fn loading_errors_have_their_statuses() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, "not wasm").unwrap();
    let invalid = wasmproc_run(&["run", junk.to_str().unwrap()]);
    assert_eq!(code(&invalid), 126);
    assert!(stderr(&invalid).contains("not a WebAssembly module"));
    let missing = wasmproc_run(&["run", "/no/such/module.wasm"]);
    assert_eq!(code(&missing), 127);
    assert!(stderr(&missing).contains("not found"));
}

#[test]
fn bad_flags_and_values_are_128() {
    let cases: &[&[&str]] = &[
        &["run", "--bogus", CMD],
        &["run", "--timeout", "soon", CMD],
        &["run", "--timeout", "0s", CMD],
        &["run", "--max-memory", "lots", CMD],
        &["run", "--fuel", "-1", CMD],
        &["run", "--dir", "::/x", CMD],
        &["run", "--dir", "/no/such/dir::/x", CMD, "list", "/x"],
        &["run", "--env", "=v", CMD],
        &["run", "--args", "1", CMD],
        &["frobnicate"],
        &["run"],
    ];
    for args in cases {
        let output = wasmproc_run(args);
        assert_eq!(code(&output), 128, "wasmproc {args:?}: {}", stderr(&output));
        assert!(
            !stderr(&output).is_empty(),
            "wasmproc {args:?} explains itself"
        );
    }
}

#[test]
fn inspect_lists_tasks_and_imports() {
    let text = wasmproc_run(&["inspect", SDK]);
    assert_eq!(code(&text), 0);
    assert!(
        stdout(&text).contains("summarize")
            && stdout(&text).contains("wasi_snapshot_preview1::fd_write")
    );
    let json = json_line(&wasmproc_run(&["inspect", "--json", CMD]));
    assert_eq!(json["command"], true);
    assert_eq!(json["tasks"], serde_json::json!([]));
    assert!(
        json["imports"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["provided"] == true)
    );
}

#[test]
fn compile_fills_the_cache_once() {
    let cache = tempfile::tempdir().unwrap();
    let compile = || {
        wasmproc()
            .env("WASMPROC_CACHE_DIR", cache.path())
            .args(["compile", CMD])
            .output()
            .unwrap()
    };
    let first = compile();
    assert_eq!(code(&first), 0);
    assert!(
        stdout(&first).contains("compiled into the cache"),
        "{}",
        stdout(&first)
    );
    let second = compile();
    assert!(
        stdout(&second).contains("already compiled"),
        "{}",
        stdout(&second)
    );
    // The plain code and the fuel-metered code, once each.
    assert_eq!(wasmproc_tests::cache_entries(cache.path(), "cwasm"), 2);
    // A --fuel run after `compile` compiles nothing more.
    let fueled = wasmproc()
        .env("WASMPROC_CACHE_DIR", cache.path())
        .args(["run", "--fuel", "10000000", CMD, "exit", "0"])
        .output()
        .unwrap();
    assert_eq!(code(&fueled), 0, "{}", stderr(&fueled));
    assert_eq!(wasmproc_tests::cache_entries(cache.path(), "cwasm"), 2);
}

#[cfg(unix)]
#[test]
fn ctrl_c_cancels_with_130() {
    let child = wasmproc()
        .args(["run", CMD, "sleep", "3600000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The handler is installed before anything else; give the process time
    // to start on a loaded machine.
    std::thread::sleep(Duration::from_millis(1000));
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let output = child.wait_with_output().unwrap();
    assert_eq!(code(&output), 130, "{}", stderr(&output));
}

/// A typed task's result alone on stdout (so `| jq` works); the guest's own
/// prints go to stderr, in both isolations.
#[test]
fn a_typed_tasks_prints_go_to_stderr_and_its_result_alone_to_stdout() {
    for isolation in ["thread", "process"] {
        let output = wasmproc_run(&[
            "run",
            "--isolation",
            isolation,
            SDK,
            "--task",
            "write_output",
            "--args",
            "[3, \"note\\n\"]",
        ]);
        assert_eq!(code(&output), 0, "{isolation}: {}", stderr(&output));
        assert_eq!(stdout(&output), "3\n", "{isolation}");
        assert_eq!(stderr(&output), "xxxnote\n", "{isolation}");
    }
}

/// A panic's message is printed once: by the guest, with the host's line
/// naming the status.
#[test]
fn a_panics_message_is_printed_once() {
    let output = wasmproc_run(&["run", SDK, "--task", "panics", "--args", "\"boom\""]);
    assert_eq!(code(&output), 101);
    let stderr = stderr(&output);
    assert_eq!(stderr.matches("boom").count(), 1, "{stderr}");
    assert!(
        stderr.ends_with("wasmproc: sdk_tasks.wasm: the task panicked (exit code 101)\n"),
        "{stderr}"
    );
}

/// `--args` mistakes are named in the user's words, with the task's
/// signature (recorded by the SDK) and a form that works.
#[test]
fn argument_mistakes_name_the_fix() {
    let shape = "`add(a: i64, b: i64) -> i64` takes a JSON array of 2 values, one per \
                 parameter, e.g. --args '[0, 0]'";
    let cases: Vec<(&[&str], String)> = vec![
        (
            &[],
            format!(
                "wasmproc: sdk_tasks.wasm: bad invocation: `add` takes an argument and none was \
                 given: {shape} (invalid type: null, expected a tuple of size 2)\n"
            ),
        ),
        (
            &["--args", "hello"],
            "wasmproc: error: --args hello is not JSON: a string must be quoted, as JSON wants: \
             --args '\"hello\"'\n"
                .to_owned(),
        ),
        (
            &["--args", "[1, 2, 3]"],
            format!(
                "wasmproc: sdk_tasks.wasm: bad invocation: `add` takes fewer values than the 3 \
                 --args gives: {shape} (trailing characters)\n"
            ),
        ),
        (
            &["--args", "[1]"],
            format!(
                "wasmproc: sdk_tasks.wasm: bad invocation: `add` takes 2 values and --args gives \
                 1: {shape} (invalid length 1, expected a tuple of size 2)\n"
            ),
        ),
        (
            &["--args", "\"x\""],
            format!(
                "wasmproc: sdk_tasks.wasm: bad invocation: the argument does not fit `add`: \
                 {shape} (invalid type: string \"x\", expected a tuple of size 2)\n"
            ),
        ),
        (
            &["--args", "{oops"],
            "wasmproc: error: --args is not valid JSON (key must be a string at line 1 column \
             2): write the argument as JSON, e.g. --args 3, --args '\"text\"', --args '[1, 2]' \
             or --args '{\"n\": 3}'\n"
                .to_owned(),
        ),
    ];
    for (extra, want) in cases {
        let mut args = vec!["run", SDK, "--task", "add"];
        args.extend_from_slice(extra);
        let output = wasmproc_run(&args);
        assert_eq!(code(&output), 128, "{extra:?}");
        assert_eq!(stderr(&output), want, "{extra:?}");
    }
    // `--args` as the last word is clap's missing value, not JSON.
    let output = wasmproc_run(&["run", SDK, "--task", "add", "--args"]);
    assert_eq!(code(&output), 128);
    assert!(
        stderr(&output).starts_with("error: a value is required for '--args <JSON|->'"),
        "{}",
        stderr(&output)
    );
}

/// `-v` and `RUST_LOG` say what happens on stderr; stdout keeps the result
/// alone.
#[test]
fn verbose_runs_say_what_the_cache_and_the_workers_do() {
    let cache = tempfile::tempdir().unwrap();
    let run = |flags: &[&str], log: Option<&str>| {
        let mut command = wasmproc();
        command
            .env("WASMPROC_CACHE_DIR", cache.path())
            .env_remove("RUST_LOG");
        if let Some(log) = log {
            command.env("RUST_LOG", log);
        }
        command
            .args(flags)
            .args([
                "run",
                "--isolation",
                "process",
                SDK,
                "--task",
                "add",
                "--args",
                "[1, 2]",
            ])
            .output()
            .unwrap()
    };
    let first = run(&["-v"], None);
    assert_eq!(stdout(&first), "3\n");
    let log = stderr(&first);
    assert!(log.contains("cache miss: compiled"), "{log}");
    assert!(!log.contains("started"), "-v leaves out the details: {log}");

    let second = run(&["-vv"], None);
    assert_eq!(stdout(&second), "3\n");
    let log = stderr(&second);
    assert!(log.contains("cache hit"), "{log}");
    assert!(
        log.contains("worker process") && log.contains("started"),
        "{log}"
    );

    let quiet = run(&[], None);
    assert_eq!(stderr(&quiet), "");
    let by_env = run(&[], Some("wasmproc::pool=debug"));
    assert!(
        stderr(&by_env).contains("worker 0 started"),
        "{}",
        stderr(&by_env)
    );
}

/// `inspect` shows each task's signature as the SDK recorded it.
#[test]
fn inspect_shows_task_signatures() {
    let output = wasmproc_run(&["inspect", SDK]);
    let text = stdout(&output);
    for line in [
        "  add(a: i64, b: i64) -> i64",
        "  parse_number(text: String) -> Result<u32, std::num::ParseIntError>",
        "  nothing()",
    ] {
        assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
    }
    let json: Value =
        serde_json::from_slice(&wasmproc_run(&["inspect", "--json", SDK]).stdout).unwrap();
    let add = json["signatures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "add")
        .unwrap();
    assert_eq!(
        add,
        &serde_json::json!({"kind": "task", "name": "add", "params": [{"name": "a", "type": "i64", "shape": "integer"}, {"name": "b", "type": "i64", "shape": "integer"}], "result": "i64", "result_shape": "integer"})
    );
    // A module not built with the SDK has none, and runs as before.
    let json: Value =
        serde_json::from_slice(&wasmproc_run(&["inspect", "--json", CMD]).stdout).unwrap();
    assert_eq!(json["signatures"], serde_json::json!([]));
}

/// WebAssembly text is known past a byte-order mark and leading comments.
#[test]
fn webassembly_text_may_start_with_comments() {
    let dir = tempfile::tempdir().unwrap();
    let module = r#"(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_start") (call $exit (i32.const 7))))"#;
    for (name, prefix) in [
        ("line.wat", ";; exits 7\n;; twice\n"),
        ("block.wat", "(; exits 7 ;)\n"),
        ("bom.wat", "\u{feff}"),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, format!("{prefix}{module}")).unwrap();
        let output = wasmproc_run(&["run", path.to_str().unwrap()]);
        assert_eq!(code(&output), 7, "{name}: {}", stderr(&output));
    }
    let prose = dir.path().join("notes.wat");
    std::fs::write(&prose, ";; only a comment\nnot a module\n").unwrap();
    let output = wasmproc_run(&["run", prose.to_str().unwrap()]);
    assert_eq!(code(&output), 126, "{}", stderr(&output));
    assert!(stderr(&output).contains("not a WebAssembly module"));
}

/// A timeout that strikes in the guest's code says where it was: `--json`'s
/// `backtrace`, in both isolations.
#[test]
fn a_timeout_in_the_guests_code_keeps_its_backtrace() {
    for isolation in ["thread", "process"] {
        let output = wasmproc_run(&[
            "run",
            "--json",
            "--isolation",
            isolation,
            "--timeout",
            "300ms",
            SDK,
            "--task",
            "spin",
        ]);
        assert_eq!(code(&output), 142, "{isolation}: {}", stderr(&output));
        let outcome = json_line(&output);
        assert!(
            outcome["backtrace"]
                .as_str()
                .is_some_and(|b| b.contains("spin")),
            "{isolation}: {outcome}"
        );
    }
}
