//! Argument shapes a user can read: `inspect` shows a record's fields (text
//! and `--json`), a mistaken argument is answered with a complete example,
//! and a connection handler is marked as one and refused by `run` and `map`.
//! The guests are the README's examples (`guest/examples`), whose types
//! derive `wasmproc_guest::Describe`.

use serde_json::Value;
use wasmproc_tests::{code, guests, stderr, stdout};

use crate::wasmproc;

fn example(name: &str) -> String {
    format!("{}/{name}.wasm", guests::EXAMPLES)
}

#[test]
fn inspect_shows_the_fields_of_records_and_a_complete_example() {
    let output = wasmproc()
        .args(["inspect", &example("squares")])
        .output()
        .unwrap();
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let text = stdout(&output);
    for line in [
        "  polar(p: Point) -> Polar",
        "      Point { x: f64, y: f64 }",
        "      Polar { r: f64, theta: f64 }",
        r#"      e.g. --args '{"x": 0.0, "y": 0.0}'"#,
        "      e.g. --args '[0, 0]'",
    ] {
        assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
    }
    // serde's `default` makes a field optional, left out of the example.
    let output = wasmproc()
        .args(["inspect", &example("text_stats")])
        .output()
        .unwrap();
    let text = stdout(&output);
    assert!(
        text.contains("Doc { text: String, top?: usize }")
            && text.contains(r#"e.g. --args '{"text": ""}'"#),
        "{text}"
    );
}

#[test]
fn inspect_json_has_each_parameters_shape_with_its_fields() {
    let output = wasmproc()
        .args(["inspect", "--json", &example("squares")])
        .output()
        .unwrap();
    let value: Value = serde_json::from_slice(&output.stdout).unwrap();
    let polar = value["signatures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "polar")
        .unwrap();
    assert_eq!(polar["params"][0]["shape"]["record"], "Point");
    let fields = &polar["params"][0]["shape"]["fields"];
    assert_eq!(fields[0]["name"], "x");
    assert_eq!(fields[0]["type"], "f64");
    assert_eq!(fields[0]["shape"], "number");
    assert_eq!(polar["result_shape"]["fields"][1]["name"], "theta");
    assert_eq!(value["handlers"], serde_json::json!([]));
}

#[test]
fn a_mistaken_argument_is_answered_with_a_complete_example() {
    let output = wasmproc()
        .args([
            "run",
            &example("squares"),
            "--task",
            "polar",
            "--args",
            r#"{"x": 1}"#,
        ])
        .output()
        .unwrap();
    assert_eq!(code(&output), 128);
    assert!(
        stderr(&output).contains(
            r#"`polar(p: Point) -> Polar` takes one value, e.g. --args '{"x": 0.0, "y": 0.0}' (missing field `y`)"#
        ),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_handler_is_marked_in_inspect_and_refused_by_run_and_map() {
    let http = example("http");
    let output = wasmproc().args(["inspect", &http]).output().unwrap();
    assert!(
        stdout(&output).contains("a connection handler: wasmproc serve http.wasm"),
        "{}",
        stdout(&output)
    );
    let output = wasmproc()
        .args(["inspect", "--json", &http])
        .output()
        .unwrap();
    let value: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(value["handlers"], serde_json::json!(["http"]));
    for command in [
        vec!["run", http.as_str(), "--task", "http"],
        vec!["map", http.as_str(), "--task", "http", "/dev/null"],
    ] {
        let output = wasmproc().args(&command).output().unwrap();
        assert_eq!(code(&output), 128, "{command:?}: {}", stderr(&output));
        assert!(
            stderr(&output).contains(
                "`http` is a connection handler: it reads and writes a connection, which `run` \
                 does not have; serve it with `wasmproc serve http.wasm --listen"
            ),
            "{command:?}: {}",
            stderr(&output)
        );
        assert_eq!(stdout(&output), "", "nothing printed on stdout");
    }
}

/// A `char`'s example is one character (`""` would be refused by the very
/// task it is offered for), for a Rust SDK task (core module and
/// component) and a WIT `char` of a component.
#[test]
fn the_example_offered_for_a_char_is_one_character_and_runs() {
    for module in [
        guests::SDK_TASKS,
        guests::SDK_TASKS_P2,
        guests::TYPED_COMPONENT,
    ] {
        let run = |args: &str| {
            wasmproc()
                .args(["run", module, "--task", "upper", "--args", args])
                .output()
                .unwrap()
        };
        let refused = run(r#""""#);
        let message = stderr(&refused);
        assert_eq!(code(&refused), 128, "{module}: {message}");
        let example = message
            .split("e.g. --args '")
            .nth(1)
            .and_then(|rest| rest.split('\'').next())
            .unwrap_or_else(|| panic!("{module}: no example in: {message}"));
        assert_eq!(example, r#""a""#, "{module}");
        let output = run(example);
        assert_eq!(code(&output), 0, "{module}: {}", stderr(&output));
        assert_eq!(stdout(&output).trim(), r#""A""#, "{module}");
    }
}
