//! WASI conformance: the WebAssembly/wasi-testsuite tests vendored under
//! `tests/wasi-testsuite/` (preview 1 in Rust, C and AssemblyScript; WASI
//! 0.3 components in Rust, those that need no network; where they come
//! from is in its README), each run through the binary as a user runs a
//! WASI command:
//!
//! ```text
//! wasmproc run --dir COPY_OF_ROOT::/ --env K=V test.wasm -- ARGS
//! ```
//!
//! A test's `.json` spec (every key optional) gives its `args`, its `env`
//! (the guest's whole environment), the `root` directory granted as the
//! guest's `/`, and the `exit_code`, `stdout` and `stderr` expected. The
//! WASI 0.3 specs say the same as `operations`: `run` (with `args`, `env`),
//! `write` to stdin, `read` from stdout or stderr, `wait` (with the
//! `exit_code`); here the writes are the run's stdin and the reads what it
//! must print, in order.
//! The root is copied to a fresh temporary directory for each test, so the
//! vendored tree is never written and the suite runner's rule (delete
//! `**/*.cleanup` before and after each test) holds by construction.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;
use wasmproc_tests::{code, stderr, stdout};

/// The vendored suite.
fn suite_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/wasi-testsuite")
}

/// The suite's folders: preview 1 per source language, then WASI 0.3.
const FOLDERS: [&str; 4] = ["rust", "c", "assemblyscript", "rust-p3"];

/// How many tests the vendored suite holds: a file lost from the tree is a
/// failure, not a smaller suite. 72 of preview 1, 25 of WASI 0.3.
const TESTS: usize = 97;

/// Tests not run, each with its reason (kept in step with the README's
/// "WASI conformance"). Empty: every test passes.
const SKIPPED: &[(&str, &str)] = &[];

/// The tests that create symlinks (run again in process isolation).
const SYMLINK_TESTS: [&str; 9] = [
    "rust/dangling_symlink",
    "rust/nofollow_errors",
    "rust/path_exists",
    "rust/path_link",
    "rust/path_symlink_trailing_slashes",
    "rust/readlink",
    "rust/symlink_create",
    "rust/symlink_filestat",
    "rust/symlink_loop",
];

/// One test: its module and its spec.
struct Case {
    /// `FOLDER/NAME`, as in the skip list.
    name: String,
    wasm: PathBuf,
    spec: Value,
}

impl Case {
    /// The spec's `key`, or `None` when it does not say.
    fn get(&self, key: &str) -> Option<&Value> {
        self.spec.get(key).filter(|value| !value.is_null())
    }

    /// Runs the test through the binary (with `extra` flags before the
    /// module); `Err` says how it failed, with everything it printed.
    fn run(&self, extra: &[&str]) -> Result<(), String> {
        let scratch = tempfile::tempdir().expect("a temporary directory");
        let mut command = crate::wasmproc();
        command.arg("run").args(extra);
        // A hung test fails the suite instead of hanging it.
        command.args(["--timeout", "2m"]);
        if let Some(root) = self.get("root") {
            let root = self
                .wasm
                .parent()
                .unwrap()
                .join(root.as_str().expect("root is a string"));
            let copy = scratch.path().join("root");
            copy_tree(&root, &copy);
            command.arg("--dir").arg(format!("{}::/", copy.display()));
        }
        if let Some(env) = self.get("env") {
            for (key, value) in env.as_object().expect("env is an object") {
                let value = value.as_str().expect("env values are strings");
                command.arg("--env").arg(format!("{key}={value}"));
            }
        }
        command.arg(&self.wasm).arg("--");
        for arg in self
            .get("args")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            command.arg(arg.as_str().expect("args are strings"));
        }
        let stdin = self
            .get("stdin")
            .map_or("", |text| text.as_str().expect("a string"));
        let output = output_with_stdin(&mut command, stdin.as_bytes());
        self.check(&output)
            .map_err(|problem| format!("{problem}\n{command:?}\n{}", printed(&output)))
    }

    /// Whether `output` is what the spec expects.
    fn check(&self, output: &Output) -> Result<(), String> {
        let expected = self
            .get("exit_code")
            .map_or(0, |code| code.as_i64().expect("a number"));
        if i64::from(code(output)) != expected {
            return Err(format!("exit code {}, expected {expected}", code(output)));
        }
        for (key, got) in [("stdout", stdout(output)), ("stderr", stderr(output))] {
            if let Some(want) = self.get(key) {
                let want = want.as_str().expect("a string");
                if got != want {
                    return Err(format!("{key} {got:?}, expected {want:?}"));
                }
            }
        }
        Ok(())
    }
}

/// Runs `command` with `stdin` as its input and collects its output.
fn output_with_stdin(command: &mut std::process::Command, stdin: &[u8]) -> Output {
    use std::io::Write as _;
    use std::process::Stdio;
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let mut input = child.stdin.take().expect("a piped stdin");
    // A guest that stops reading early closes the pipe: not a failure here.
    let _ = input.write_all(stdin);
    drop(input);
    child.wait_with_output().expect("the binary ran")
}

/// A WASI 0.3 spec's `operations` said in the preview-1 keys: the `run`'s
/// `args` and `env`, the `write`s joined as `stdin`, the `read`s of each
/// stream joined as its expected output, the `wait`'s `exit_code`. Other
/// keys (`root`) stay.
fn flatten_operations(mut spec: Value) -> Value {
    let Some(operations) = spec
        .as_object_mut()
        .and_then(|spec| spec.remove("operations"))
    else {
        return spec;
    };
    let spec = spec.as_object_mut().expect("a spec is an object");
    let mut streams: [(&str, String); 3] = [
        ("stdin", String::new()),
        ("stdout", String::new()),
        ("stderr", String::new()),
    ];
    for operation in operations.as_array().expect("operations is an array") {
        let kind = operation["type"].as_str().expect("an operation has a type");
        match kind {
            "run" => {
                for key in ["args", "env"] {
                    if let Some(value) = operation.get(key) {
                        spec.insert(key.to_owned(), value.clone());
                    }
                }
            }
            "write" | "read" => {
                let id = operation["id"].as_str().expect("a stream id");
                let payload = operation["payload"].as_str().expect("a payload");
                let (_, text) = streams
                    .iter_mut()
                    .find(|(name, _)| *name == id)
                    .unwrap_or_else(|| panic!("unknown stream {id}"));
                text.push_str(payload);
            }
            "wait" => {
                if let Some(code) = operation.get("exit_code") {
                    spec.insert("exit_code".to_owned(), code.clone());
                }
            }
            other => panic!("unknown operation {other}"),
        }
    }
    for (name, text) in streams {
        if !text.is_empty() {
            spec.insert(name.to_owned(), Value::String(text));
        }
    }
    Value::Object(spec.clone())
}

/// What a run printed, for a failure's message.
fn printed(output: &Output) -> String {
    format!(
        "--- stdout ---\n{}\n--- stderr ---\n{}",
        stdout(output),
        stderr(output)
    )
}

/// Every test of the vendored suite, sorted by name.
fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for folder in FOLDERS {
        let dir = suite_dir().join(folder);
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for entry in entries {
            let wasm = entry.unwrap().path();
            if wasm.extension().is_none_or(|extension| extension != "wasm") {
                continue;
            }
            let stem = wasm.file_stem().unwrap().to_str().unwrap().to_owned();
            let spec = match std::fs::read_to_string(wasm.with_extension("json")) {
                Ok(text) => flatten_operations(
                    serde_json::from_str(&text)
                        .unwrap_or_else(|e| panic!("{folder}/{stem}.json: {e}")),
                ),
                // No spec: every default.
                Err(_) => Value::Object(Default::default()),
            };
            cases.push(Case {
                name: format!("{folder}/{stem}"),
                wasm,
                spec,
            });
        }
    }
    cases.sort_by(|a, b| a.name.cmp(&b.name));
    cases
}

/// Copies the directory tree `from` to `to` (files and directories: the
/// fixtures hold nothing else).
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Runs `cases` on a few threads (each test is a process of its own) and
/// fails listing every failing test with its output.
fn run_all(cases: &[&Case], extra: &[&str]) {
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .max(2);
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                while let Some(case) = cases.get(next.fetch_add(1, Ordering::Relaxed)) {
                    if let Err(failure) = case.run(extra) {
                        failures
                            .lock()
                            .unwrap()
                            .push(format!("=== {}: {failure}", case.name));
                    }
                }
            });
        }
    });
    let mut failures = failures.into_inner().unwrap();
    failures.sort();
    assert!(
        failures.is_empty(),
        "{} of {} WASI tests failed ({extra:?}):\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}

#[test]
fn every_test_of_the_wasi_testsuite_passes() {
    let cases = cases();
    assert_eq!(cases.len(), TESTS, "the vendored suite is incomplete");
    for (name, _) in SKIPPED {
        assert!(
            cases.iter().any(|case| case.name == *name),
            "skipped {name} is no test"
        );
    }
    let run: Vec<&Case> = cases
        .iter()
        .filter(|case| SKIPPED.iter().all(|(name, _)| case.name != *name))
        .collect();
    run_all(&run, &[]);
}

#[test]
fn the_symlink_tests_pass_in_process_isolation() {
    let cases = cases();
    let run: Vec<&Case> = cases
        .iter()
        .filter(|case| SYMLINK_TESTS.contains(&case.name.as_str()))
        .collect();
    assert_eq!(run.len(), SYMLINK_TESTS.len());
    run_all(&run, &["--isolation", "process"]);
}

/// A WASI 0.3 command blocked in a host call (reading a stdin nobody
/// writes) ends at its time limit in both isolations, with what it
/// printed before.
#[test]
fn a_wasi_0_3_command_blocked_on_stdin_times_out_in_both_isolations() {
    use std::process::Stdio;
    let wasm = suite_dir().join("rust-p3/cli-stdout-flush.wasm");
    for isolation in ["thread", "process"] {
        let mut child = crate::wasmproc()
            .args(["run", "--isolation", isolation, "--timeout", "1s"])
            .arg(&wasm)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary starts");
        // Held open and never written: the guest waits on it.
        let stdin = child.stdin.take();
        let output = child.wait_with_output().expect("the binary ran");
        drop(stdin);
        assert_eq!(code(&output), 142, "{isolation}: {}", printed(&output));
        assert_eq!(stdout(&output), "READY", "{isolation}");
    }
}
