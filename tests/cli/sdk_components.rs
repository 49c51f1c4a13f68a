//! SDK guests built for wasm32-wasip2 (components that import the SDK's
//! WIT contract, `guest/wit`) through the binary: `run --task`, `map
//! --task`, `inspect` with the recorded signatures, `serve` with a
//! `#[handler]`, in both isolations, with the statuses of the same guests
//! built for wasm32-wasip1; `--init` refused with what to do instead.

use super::serve::Serving;
use super::{input_file, lines, wasmproc_run};
use wasmproc_tests::{code, guests, stderr, stdout};

const ISOLATIONS: [&str; 2] = ["thread", "process"];

/// `wasmproc run --isolation ISOLATION SDK_TASKS_P2 --task TASK --args ARGS FLAGS`.
fn run_task(isolation: &str, task: &str, args: &str, flags: &[&str]) -> std::process::Output {
    let mut argv = vec![
        "run",
        "--isolation",
        isolation,
        guests::SDK_TASKS_P2,
        "--task",
        task,
        "--args",
        args,
    ];
    argv.extend_from_slice(flags);
    wasmproc_run(&argv)
}

#[test]
fn run_gives_results_and_the_statuses_of_the_core_build_in_both_isolations() {
    for isolation in ISOLATIONS {
        let squared = run_task(isolation, "square", "7", &[]);
        assert_eq!(code(&squared), 0, "{isolation}: {}", stderr(&squared));
        assert_eq!(stdout(&squared).trim(), "49", "{isolation}");

        let failed = run_task(isolation, "fail_with", "[7, \"no stock\"]", &[]);
        assert_eq!(code(&failed), 7, "{isolation}: {}", stderr(&failed));
        assert!(stderr(&failed).contains("no stock"), "{isolation}");

        // A panic exits 101 through the SDK's WIT `exit`: WASI 0.2's own
        // `exit` would only say "failed" (1).
        let panicked = run_task(isolation, "panics", "\"boom\"", &[]);
        assert_eq!(code(&panicked), 101, "{isolation}: {}", stderr(&panicked));
        assert!(stderr(&panicked).contains("boom"), "{isolation}");

        let exited = run_task(isolation, "exit_deep", "9", &[]);
        assert_eq!(code(&exited), 9, "{isolation}: {}", stderr(&exited));

        // A misfit argument: 128, with the recorded signature and an example.
        let misfit = run_task(isolation, "add", "\"x\"", &[]);
        assert_eq!(code(&misfit), 128, "{isolation}: {}", stderr(&misfit));
        assert!(
            stderr(&misfit).contains("add(a: i64, b: i64) -> i64")
                && stderr(&misfit).contains("--args '[0, 0]'"),
            "{isolation}: {}",
            stderr(&misfit)
        );

        let slow = run_task(isolation, "sleep_ms", "5000", &["--timeout", "300ms"]);
        assert_eq!(code(&slow), 142, "{isolation}: {}", stderr(&slow));

        let greedy = run_task(isolation, "allocate_mib", "100", &["--max-memory", "32MiB"]);
        assert_eq!(code(&greedy), 137, "{isolation}: {}", stderr(&greedy));

        let missing = run_task(isolation, "no_such_task", "null", &[]);
        assert_eq!(code(&missing), 126, "{isolation}");
        assert!(
            stderr(&missing).contains("has no task `no_such_task`")
                && stderr(&missing).contains("square"),
            "{isolation}: {}",
            stderr(&missing)
        );
    }
}

#[test]
fn map_runs_a_task_per_line_in_both_isolations() {
    let input = input_file("1\n2\n\"x\"\n4\n");
    for isolation in ISOLATIONS {
        let path = input.path().to_str().unwrap();
        let output = wasmproc_run(&[
            "map",
            "--isolation",
            isolation,
            guests::SDK_TASKS_P2,
            "--task",
            "square",
            path,
        ]);
        assert_eq!(code(&output), 123, "{isolation}: {}", stderr(&output));
        let lines = lines(&output);
        let results: Vec<_> = lines.iter().map(|line| line["result"].clone()).collect();
        assert_eq!(
            results,
            [1.into(), 4.into(), serde_json::Value::Null, 16.into()],
            "{isolation}"
        );
        assert_eq!(lines[2]["status"], "bad_invocation", "{isolation}");
        assert_eq!(lines[2]["exit_code"], 128, "{isolation}");
    }
}

#[test]
fn inspect_lists_the_tasks_with_their_recorded_signatures() {
    let output = wasmproc_run(&["inspect", guests::SDK_TASKS_P2]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let text = stdout(&output);
    assert!(
        text.starts_with("sdk_tasks.wasm: a component of SDK tasks (wasm32-wasip2)"),
        "{text}"
    );
    for line in [
        "square(x: u64) -> u64",
        "add(a: i64, b: i64) -> i64",
        "fail_with(code: u8, message: String) -> Result<(), Failure>",
    ] {
        assert!(text.contains(line), "{line} missing from:\n{text}");
    }
    let json = wasmproc_run(&["inspect", "--json", guests::SDK_TASKS_P2]);
    let description: serde_json::Value = serde_json::from_str(&stdout(&json)).unwrap();
    assert_eq!(description["component"], true);
    let tasks = description["tasks"].as_array().unwrap();
    assert!(tasks.iter().any(|t| t == "square"), "{description}");
    // The dispatcher is how tasks are reached, not a task of its own.
    assert!(
        !tasks
            .iter()
            .any(|t| t.as_str().unwrap().contains("run-task"))
    );
}

#[test]
fn serve_runs_a_handler_per_connection_in_both_isolations() {
    for isolation in ISOLATIONS {
        let mut server = Serving::start(&[
            "--isolation",
            isolation,
            "--task",
            "echo",
            guests::SERVE_TASKS_P2,
        ]);
        let reply = server.exchange(b"through an SDK component");
        assert_eq!(reply, b"through an SDK component", "{isolation}");
        let record = server.record();
        assert_eq!(record["status"], "exited", "{isolation}: {record}");
        assert_eq!(record["exit_code"], 0, "{isolation}");
        let (code, _) = server.terminate();
        assert_eq!(code, Some(0), "{isolation}");
    }
}

#[test]
fn an_sdk_components_initializer_runs_through_the_binary() {
    let output = wasmproc_run(&[
        "run",
        guests::INIT_TASKS_P2,
        "--init",
        "seed_only",
        "--init-args",
        "3",
        "--task",
        "state",
    ]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(stdout(&output).trim(), "[3,1]");
    let missing = wasmproc_run(&[
        "run",
        guests::SDK_TASKS_P2,
        "--init",
        "anything",
        "--task",
        "square",
        "--args",
        "3",
    ]);
    assert_eq!(code(&missing), 126, "{}", stderr(&missing));
    assert!(
        stderr(&missing).contains("has no initializer `anything`"),
        "{}",
        stderr(&missing)
    );
}
