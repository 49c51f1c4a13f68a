//! Typed tasks written with wasmproc-guest, through the library.

use serde_json::{Value, json};
use wasmproc::{ExitStatus, Task};
use wasmproc_tests::sdk_tasks;

fn call(name: &str, arg: Value) -> wasmproc::Outcome {
    sdk_tasks().run(&Task::call(name, &arg).unwrap())
}

#[test]
fn module_lists_its_tasks() {
    let tasks = sdk_tasks().tasks();
    for name in ["square", "add", "summarize", "panics", "spin"] {
        assert!(
            tasks.iter().any(|t| t == name),
            "{name} missing from {tasks:?}"
        );
    }
    assert!(!sdk_tasks().is_command(), "a cdylib of tasks has no _start");
}

#[test]
fn rich_argument_and_result_types() {
    let order = json!({
        "id": 7,
        "customer": null,
        "lines": [
            {"sku": "apple", "qty": 3, "price_cents": 50},
            {"sku": "pear", "qty": 1, "price_cents": 120},
            {"sku": "apple", "qty": 2, "price_cents": 50}
        ],
        "tags": {"priority": "high", "gift": "yes"},
        "shipping": {"courier": {"days": 2}},
        "discount": 0.25
    });
    let outcome = call("summarize", order);
    assert_eq!(
        outcome.status,
        ExitStatus::Exited(0),
        "{:?}",
        outcome.message
    );
    let summary: Value = outcome.decode().unwrap();
    assert_eq!(
        summary,
        json!({
            "id": 7,
            "customer": "anonymous",
            "total_cents": 370,
            "items": 6,
            "per_sku": {"apple": 5, "pear": 1},
            "delivery": {"kind": "days", "days": 2},
            "tag_keys": ["gift", "priority"],
            "discounted": 277.5
        })
    );
}

#[test]
fn unit_and_newtype_enum_variants() {
    let base = |shipping: Value| json!({"id": 1, "customer": "ann", "lines": [], "tags": {}, "shipping": shipping, "discount": null});
    let pickup: Value = call("summarize", base(json!("pickup"))).decode().unwrap();
    assert_eq!(pickup["delivery"], json!({"kind": "in_store"}));
    let post: Value = call("summarize", base(json!({"post": "1 Main St"})))
        .decode()
        .unwrap();
    assert_eq!(
        post["delivery"],
        json!({"kind": "address", "to": "1 Main St"})
    );
    assert_eq!(post["discounted"], Value::Null);
}

#[test]
fn several_parameters_take_a_json_array() {
    assert_eq!(call("add", json!([40, 2])).decode::<i64>().unwrap(), 42);
}

#[test]
fn no_parameter_takes_null() {
    let outcome = call("nothing", Value::Null);
    assert_eq!(outcome.status, ExitStatus::Exited(0));
    assert_eq!(outcome.decode::<()>().unwrap(), ());
}

#[test]
fn json_values_round_trip() {
    let value =
        json!({"nested": [1, 2.5, "three", null, true, {"deep": [[]]}], "unicode": "žluťoučký 🦀"});
    assert_eq!(
        call("echo", value.clone()).decode::<Value>().unwrap(),
        value
    );
}

#[test]
fn typed_decode_of_a_result() {
    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Stats {
        total_cents: u64,
        items: u32,
    }
    let order = json!({"id": 1, "customer": "x", "lines": [{"sku": "a", "qty": 2, "price_cents": 5}],
                       "tags": {}, "shipping": "pickup", "discount": null});
    let stats: Stats = call("summarize", order).decode().unwrap();
    assert_eq!(
        stats,
        Stats {
            total_cents: 10,
            items: 2
        }
    );
}

#[test]
fn argument_of_the_wrong_type_is_a_bad_invocation() {
    let outcome = call("square", json!("seven"));
    assert_eq!(outcome.status, ExitStatus::BadInvocation);
    let message = outcome.message.unwrap();
    assert!(
        message.contains("invalid type: string \"seven\", expected u64"),
        "{message}"
    );
}

#[test]
fn missing_field_is_a_bad_invocation() {
    let outcome = call("summarize", json!({"id": 1}));
    assert_eq!(outcome.status, ExitStatus::BadInvocation);
    assert!(outcome.message.unwrap().contains("missing field"));
}

#[test]
fn too_deep_argument_is_a_bad_invocation() {
    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let outcome = sdk_tasks().run(&Task::call_json("echo", deep.into_bytes()));
    assert_eq!(
        outcome.status,
        ExitStatus::BadInvocation,
        "{:?}",
        outcome.message
    );
}

#[test]
fn too_large_argument_is_a_bad_invocation() {
    let big = serde_json::to_vec(&"x".repeat(4096)).unwrap();
    let task = Task::call_json("echo", big).limits(wasmproc::Limits::default().max_args(1024));
    let outcome = sdk_tasks().run(&task);
    assert_eq!(outcome.status, ExitStatus::BadInvocation);
    assert!(
        outcome
            .message
            .unwrap()
            .contains("argument is 4.0 KiB, over the limit of 1.0 KiB")
    );
}

#[test]
fn display_error_fails_with_code_1_and_its_message() {
    let outcome = call("parse_number", json!("12x"));
    assert_eq!(outcome.status, ExitStatus::Exited(1));
    assert_eq!(
        outcome.message.as_deref(),
        Some("invalid digit found in string")
    );
    assert_eq!(
        call("parse_number", json!(" 12 ")).decode::<u32>().unwrap(),
        12
    );
}

#[test]
fn failure_carries_its_own_exit_code() {
    let outcome = call("fail_with", json!([77, "no such customer"]));
    assert_eq!(outcome.status, ExitStatus::Exited(77));
    assert_eq!(outcome.message.as_deref(), Some("no such customer"));
    let error = outcome.decode::<()>().unwrap_err();
    assert_eq!(
        error.kind(),
        &wasmproc::ErrorKind::TaskFailed(ExitStatus::Exited(77))
    );
    assert!(error.to_string().contains("no such customer"));
}

/// One rule for a guest exit code the guest does not own (126–255),
/// however it is reported: a `host_error` trap whose message names it.
#[test]
fn exit_codes_past_the_guest_range_are_host_errors_by_every_path() {
    let host_error = ExitStatus::Trapped(wasmproc::TrapKind::HostError);
    for (path, outcome) in [
        ("a Failure returned", call("fail_with", json!([200, "x"]))),
        ("a Failure exited with", call("exit_deep", json!(200))),
        ("proc_exit", call("process_exit", json!(200))),
    ] {
        assert_eq!(outcome.status, host_error, "{path}: {:?}", outcome.message);
        let message = outcome.message.unwrap();
        assert!(
            message.contains("exited with code 200") && message.contains("0–125"),
            "{path}: {message}"
        );
    }
    let returned = wasmproc_tests::runtime()
        .load_bytes(
            "returns_130.wat",
            br#"(module (memory (export "memory") 1)
                 (func (export "wasmproc_task:t") (result i32) (i32.const 130)))"#,
        )
        .unwrap()
        .run(&Task::call("t", &()).unwrap());
    assert_eq!(returned.status, host_error);
    assert!(returned.message.unwrap().contains("exited with code 130"));
    // A failure's code 0 would claim success: it becomes 1.
    assert_eq!(
        call("fail_with", json!([0, "x"])).status,
        ExitStatus::Exited(1)
    );
}

#[test]
fn exit_with_from_deep_inside() {
    let outcome = call("exit_deep", json!(9));
    assert_eq!(outcome.status, ExitStatus::Exited(9));
    assert_eq!(
        outcome.message.as_deref(),
        Some("exited from deep inside with 9")
    );
}

#[test]
fn process_exit_gives_the_code() {
    assert_eq!(call("process_exit", json!(3)).status, ExitStatus::Exited(3));
}

#[test]
fn panic_is_exit_101_with_its_message() {
    let outcome = call("panics", json!("the sky fell"));
    assert_eq!(outcome.status, ExitStatus::Exited(101));
    let message = outcome.message.clone().unwrap();
    assert!(message.starts_with("the sky fell (at "), "{message}");
    assert!(outcome.panicked);
    assert!(!call("fail_with", json!([101, "not a panic"])).panicked);
    assert!(
        outcome
            .stderr
            .text()
            .contains("task panicked: the sky fell")
    );
    assert!(outcome.result.is_none());
}

#[test]
fn each_task_runs_in_a_fresh_instance() {
    // `calls` counts its calls in a static: state would leak if an instance
    // were reused.
    for _ in 0..3 {
        assert_eq!(call("calls", Value::Null).decode::<u32>().unwrap(), 1);
    }
}

#[test]
fn entries_resolve_to_what_the_module_exports() {
    use wasmproc::Entry;
    let sdk = sdk_tasks();
    assert_eq!(
        sdk.resolve(&Entry::Task("square".into())).unwrap(),
        Entry::Task("square".into())
    );
    let several = sdk.resolve(&Entry::Auto).unwrap_err();
    assert!(several.to_string().contains("several tasks"), "{several}");
    assert_eq!(several.exit_status(), ExitStatus::CannotRun);
    assert_eq!(
        wasmproc_tests::wasi_cmd().resolve(&Entry::Auto).unwrap(),
        Entry::Command
    );
}
