//! A component's exported WIT functions as tasks through the binary:
//! `run --task NAME --args JSON`, `map --task NAME` over JSON lines and
//! `inspect`'s WIT signatures, with the wit-bindgen guest in both
//! isolations, and a component written in Python (componentize-py) when
//! that tool is installed.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{input_file, lines, wasmproc_run};
use wasmproc_tests::{code, guests, stderr, stdout};

const ISOLATIONS: [&str; 2] = ["thread", "process"];

#[test]
fn run_takes_json_arguments_and_prints_the_json_result_in_both_isolations() {
    for isolation in ISOLATIONS {
        let run = |task: &str, args: &str| {
            wasmproc_run(&[
                "run",
                "--isolation",
                isolation,
                guests::TYPED_COMPONENT,
                "--task",
                task,
                "--args",
                args,
            ])
        };
        let polar = run("polar", r#"{"x": 3, "y": 4}"#);
        assert_eq!(code(&polar), 0, "{isolation}: {}", stderr(&polar));
        let value: serde_json::Value = serde_json::from_str(&stdout(&polar)).unwrap();
        assert_eq!(value["radius"], 5.0, "{isolation}");

        let bad = run("add", "[2, 300]");
        assert_eq!(code(&bad), 128, "{isolation}");
        assert!(
            stderr(&bad).contains("`add: func(a: u8, b: u8) -> u8`: at `b`: expected u8"),
            "{isolation}: {}",
            stderr(&bad)
        );

        let failed = run("parse-number", r#""twelve""#);
        assert_eq!(code(&failed), 1, "{isolation}");
        assert!(
            stderr(&failed).contains("`twelve` is not a number"),
            "{isolation}"
        );
    }
}

#[test]
fn map_runs_a_typed_export_over_json_lines_in_both_isolations() {
    let input = input_file("3\n-4\n\"x\"\n");
    for isolation in ISOLATIONS {
        let output = wasmproc_run(&[
            "map",
            "--isolation",
            isolation,
            guests::TYPED_COMPONENT,
            "--task",
            "square",
            input.path().to_str().unwrap(),
        ]);
        assert_eq!(code(&output), 123, "{isolation}: one line is not an s32");
        let records = lines(&output);
        let results: Vec<_> = records.iter().map(|r| r["result"].clone()).collect();
        assert_eq!(
            results,
            [9.into(), 16.into(), serde_json::Value::Null],
            "{isolation}"
        );
        assert_eq!(records[2]["status"], "bad_invocation", "{isolation}");
    }
}

#[test]
fn inspect_prints_each_task_with_its_wit_signature() {
    let output = wasmproc_run(&["inspect", guests::TYPED_COMPONENT]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let text = stdout(&output);
    assert!(
        text.contains("polar(p: record { x: f64, y: f64 }) -> record { radius: f64, angle: f64 }"),
        "{text}"
    );
    assert!(
        text.contains("parse-number(text: string) -> result<u32, string>"),
        "{text}"
    );
}

/// The Python component of `tests/components/python`, built once with
/// componentize-py into the tests' target directory; `None` (and the
/// reason on stderr) when componentize-py is not installed, unless CI says
/// it must be (`WASMPROC_REQUIRE_COMPONENTIZE_PY`).
fn python_component() -> Option<PathBuf> {
    static BUILT: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let source =
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/components/python");
            let output = Path::new(env!("CARGO_TARGET_TMPDIR")).join("python-tasks.wasm");
            let built = Command::new("componentize-py")
                .current_dir(&source)
                .args(["-d", "wit", "-w", "tasks", "componentize", "app", "-o"])
                .arg(&output)
                .output();
            match built {
                Ok(done) if done.status.success() => Some(output),
                Ok(done) => panic!(
                    "componentize-py failed: {}",
                    String::from_utf8_lossy(&done.stderr)
                ),
                Err(error) => {
                    assert!(
                        std::env::var_os("WASMPROC_REQUIRE_COMPONENTIZE_PY").is_none(),
                        "componentize-py is required here (pip install componentize-py): {error}"
                    );
                    eprintln!("skipped: componentize-py is not installed ({error})");
                    None
                }
            }
        })
        .clone()
}

#[test]
fn a_python_component_runs_its_typed_exports_through_map() {
    let Some(component) = python_component() else {
        return;
    };
    let component = component.to_str().unwrap();
    let input = input_file("[1, 2, 3.5]\n[]\n");
    let output = wasmproc_run(&[
        "map",
        "--results-only",
        component,
        "--task",
        "summarize",
        input.path().to_str().unwrap(),
    ]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let results: Vec<serde_json::Value> = stdout(&output)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(results[0]["count"], 3);
    assert!((results[0]["mean"].as_f64().unwrap() - 13.0 / 6.0).abs() < 1e-12);
    assert_eq!(results[1], serde_json::json!({"count": 0, "mean": 0.0}));

    let greeted = wasmproc_run(&["run", component, "--task", "greet", "--args", r#""ann""#]);
    assert_eq!(
        stdout(&greeted).trim(),
        r#""hello, ann""#,
        "{}",
        stderr(&greeted)
    );
    let refused = wasmproc_run(&["run", component, "--task", "greet", "--args", r#""""#]);
    assert_eq!(code(&refused), 1);
    assert!(
        stderr(&refused).contains("the name is empty"),
        "{}",
        stderr(&refused)
    );
}
