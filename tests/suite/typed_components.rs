//! A component's exported WIT functions as typed tasks, through the
//! library: the wit-bindgen guest `typed-component` (records, variants,
//! enums, flags, options, results, lists) with JSON arguments and results,
//! in both isolations; a bad argument quotes the WIT signature; limits end
//! a typed call as they end any task.

use std::time::Duration;

use serde_json::{Value, json};
use wasmproc::{ExitStatus, Limits, Pool, Task, TrapKind};
use wasmproc_tests::typed_component;

fn call(pool: &Pool, task: &str, args: Value) -> wasmproc::Outcome {
    pool.submit(Task::call(task, &args).unwrap())
        .unwrap()
        .wait()
        .clone()
}

#[test]
fn every_export_is_a_task_with_its_wit_signature() {
    let component = typed_component();
    assert!(component.is_component() && !component.is_command());
    let tasks = component.component_functions();
    for task in [
        "square",
        "add",
        "polar",
        "area",
        "largest",
        "parse-number",
        "render",
    ] {
        assert!(tasks.iter().any(|t| t == task), "{task} in {tasks:?}");
    }
    let polar = component.signature("polar").expect("a signature");
    assert_eq!(
        polar.to_string(),
        "polar(p: record { x: f64, y: f64 }) -> record { radius: f64, angle: f64 }"
    );
    let area = component.signature("area").unwrap().to_string();
    assert!(
        area.contains("variant { circle(f64), rectangle(tuple<f64, f64>), dot }"),
        "{area}"
    );
}

#[test]
fn json_arguments_become_component_values_and_results_json_in_both_isolations() {
    for (isolation, pool) in crate::one_worker_pools(typed_component()) {
        let value = |task: &str, args: Value| {
            let outcome = call(&pool, task, args);
            assert_eq!(
                outcome.status,
                ExitStatus::Exited(0),
                "{isolation} {task}: {outcome:?}"
            );
            outcome.decode::<Value>().unwrap()
        };
        assert_eq!(value("square", json!(7)), json!(49), "{isolation}");
        assert_eq!(value("add", json!([2, 40])), json!(42), "{isolation}");
        assert_eq!(
            value("add", json!({"a": 2, "b": 40})),
            json!(42),
            "{isolation}"
        );
        assert_eq!(
            value("polar", json!({"x": 3, "y": 4})),
            json!({"radius": 5.0, "angle": 4f64.atan2(3.0)}),
            "{isolation}"
        );
        assert_eq!(
            value("area", json!([{"rectangle": [2, 3]}, "metres"])),
            json!(6.0)
        );
        assert_eq!(value("area", json!(["dot", "feet"])), json!(0.0));
        assert_eq!(
            value("largest", json!([3, -9, 12])),
            json!(12),
            "{isolation}"
        );
        assert_eq!(value("largest", json!([])), Value::Null, "{isolation}");
        assert_eq!(
            value("parse-number", json!(" 17 ")),
            json!(17),
            "{isolation}"
        );
        assert_eq!(
            value(
                "render",
                json!({"text": "hi", "style": ["bold", "italic"], "note": "n"})
            ),
            json!("_**hi**_ (n)"),
            "{isolation}"
        );
        assert_eq!(
            value("render", json!({"text": "hi", "style": []})),
            json!("hi"),
            "an option field may be left out ({isolation})"
        );
        assert_eq!(value("nothing", Value::Null), Value::Null, "{isolation}");
    }
}

#[test]
fn an_err_result_fails_the_task_with_its_message() {
    for (isolation, pool) in crate::one_worker_pools(typed_component()) {
        let failed = call(&pool, "parse-number", json!("twelve"));
        assert_eq!(
            failed.status,
            ExitStatus::Exited(1),
            "{isolation}: {failed:?}"
        );
        let message = failed.message.as_deref().unwrap_or_default();
        assert!(
            message.contains("`twelve` is not a number"),
            "{isolation}: {message}"
        );
        assert!(failed.result.is_none(), "{isolation}");
    }
}

#[test]
fn a_bad_argument_is_a_bad_invocation_quoting_the_signature() {
    for (isolation, pool) in crate::one_worker_pools(typed_component()) {
        let out_of_range = call(&pool, "add", json!([2, 300]));
        assert_eq!(
            out_of_range.status,
            ExitStatus::BadInvocation,
            "{isolation}"
        );
        let message = out_of_range.message.unwrap();
        assert!(
            message.contains("add: func(a: u8, b: u8) -> u8"),
            "{isolation}: {message}"
        );
        assert!(
            message.contains("at `b`: expected u8"),
            "{isolation}: {message}"
        );

        let missing = call(&pool, "polar", json!({"x": 1}));
        assert_eq!(missing.status, ExitStatus::BadInvocation, "{isolation}");
        assert!(missing.message.unwrap().contains("at `p.y`"), "{isolation}");

        let bad_case = call(&pool, "area", json!(["hexagon", "metres"]));
        assert_eq!(bad_case.status, ExitStatus::BadInvocation, "{isolation}");
    }
}

#[test]
fn an_unknown_function_cannot_run_and_names_the_ones_there_are() {
    let outcome = typed_component().run(&Task::call("cube", &3).unwrap());
    assert_eq!(outcome.status, ExitStatus::CannotRun);
    let message = outcome.message.unwrap();
    assert!(
        message.contains("no function `cube`") && message.contains("square"),
        "{message}"
    );
}

#[test]
fn traps_and_limits_end_typed_calls_in_both_isolations() {
    for (isolation, pool) in crate::one_worker_pools(typed_component()) {
        let crashed = call(&pool, "crash", Value::Null);
        assert!(
            matches!(crashed.status, ExitStatus::Trapped(TrapKind::Unreachable)),
            "{isolation}: {crashed:?}"
        );
        let limits = Limits::default().timeout(Duration::from_millis(200));
        let spun = pool
            .submit(Task::call("spin", &()).unwrap().limits(limits))
            .unwrap()
            .wait()
            .clone();
        assert_eq!(spun.status, ExitStatus::TimedOut, "{isolation}");
        let limits = Limits::default().max_memory(16 << 20);
        let big = pool
            .submit(Task::call("allocate-mib", &64).unwrap().limits(limits))
            .unwrap()
            .wait()
            .clone();
        assert_eq!(
            big.status,
            ExitStatus::MemoryExceeded,
            "{isolation}: {big:?}"
        );
        // The pool goes on.
        assert_eq!(call(&pool, "square", json!(3)).decode::<i32>().unwrap(), 9);
    }
}

#[test]
fn fuel_is_metered_in_typed_calls() {
    let limits = Limits::default().fuel(10_000);
    let outcome = typed_component().run(&Task::call("spin", &()).unwrap().limits(limits));
    assert_eq!(outcome.status, ExitStatus::FuelExhausted, "{outcome:?}");
    let limits = Limits::default().fuel(100_000_000);
    let outcome = typed_component().run(&Task::call("square", &5).unwrap().limits(limits));
    assert_eq!(outcome.decode::<i32>().unwrap(), 25);
    assert!(
        outcome.fuel_used.is_some_and(|used| used > 0),
        "{outcome:?}"
    );
}
