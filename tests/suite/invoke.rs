//! Foreign entry points through the library: a reactor's functions called
//! with `Task::invoke` (its `_initialize` first), arguments from argv,
//! results printed and kept; unknown imports refused, or stubbed to trap.

use wasmproc::{ExitStatus, Runtime, Task, TrapKind};
use wasmproc_tests::wat::{HOOKED, REACTOR};
use wasmproc_tests::{runtime, suite_cache_dir, suite_cache_key_file};

fn load(runtime: &Runtime, source: &str) -> wasmproc::Module {
    runtime
        .load_bytes("test.wasm", source.as_bytes())
        .expect("the module loads")
}

fn stubbing_runtime() -> Runtime {
    Runtime::builder()
        .cache_dir(suite_cache_dir())
        .cache_key_file(suite_cache_key_file())
        .stub_unknown_imports(true)
        .build()
        .unwrap()
}

#[test]
fn a_reactor_runs_its_initialize_then_the_invoked_function() {
    let module = load(runtime(), REACTOR);
    for (isolation, pool) in crate::one_worker_pools(&module) {
        let outcome = pool.submit(Task::invoke("run")).unwrap().wait().clone();
        assert_eq!(
            outcome.status,
            ExitStatus::Exited(42),
            "{isolation}: {outcome:?}"
        );
    }
}

#[test]
fn arguments_come_from_argv_and_results_are_printed_and_kept() {
    let module = load(runtime(), REACTOR);
    for (isolation, pool) in crate::one_worker_pools(&module) {
        let outcome = pool
            .submit(Task::invoke("calc").args(["2", "40", "1.25"]))
            .unwrap()
            .wait()
            .clone();
        assert_eq!(
            outcome.status,
            ExitStatus::Exited(0),
            "{isolation}: {outcome:?}"
        );
        assert_eq!(outcome.stdout.text(), "42\n2.5\n", "{isolation}");
        assert_eq!(
            outcome.decode::<(i64, f64)>().unwrap(),
            (42, 2.5),
            "{isolation}"
        );
    }
}

#[test]
fn a_bad_argument_is_a_bad_invocation_naming_the_signature() {
    let module = load(runtime(), REACTOR);
    for argv in [vec!["2", "x", "1"], vec!["2"], vec!["1", "2", "3", "4"]] {
        let outcome = module.run(&Task::invoke("calc").args(argv.clone()));
        assert_eq!(outcome.status, ExitStatus::BadInvocation, "{argv:?}");
        let message = outcome.message.unwrap();
        assert!(
            message.contains("func (i32, i64, f64) -> (i64, f64)"),
            "{message}"
        );
    }
}

#[test]
fn an_exit_code_outside_the_guests_range_traps() {
    let outcome = load(runtime(), REACTOR).run(&Task::invoke("out_of_range"));
    assert_eq!(outcome.status, ExitStatus::Trapped(TrapKind::HostError));
    assert!(outcome.message.unwrap().contains("300"));
}

#[test]
fn functions_that_cannot_be_invoked_are_refused_by_signature() {
    let module = load(runtime(), REACTOR);
    let outcome = module.run(&Task::invoke("simd"));
    assert_eq!(outcome.status, ExitStatus::CannotRun);
    assert!(outcome.message.unwrap().contains("func (v128) -> ()"));
    let missing = module
        .resolve(&wasmproc::Entry::Export("nope".into()))
        .unwrap_err();
    assert!(
        missing
            .message()
            .contains("calc (i32, i64, f64) -> (i64, f64)"),
        "{missing}"
    );
}

#[test]
fn a_reactor_without_invoke_is_told_to_use_it() {
    let module = load(runtime(), REACTOR);
    let outcome = module.run(&Task::command());
    assert_eq!(outcome.status, ExitStatus::CannotRun);
    let message = outcome.message.unwrap();
    assert!(message.contains("--invoke NAME"), "{message}");
    assert!(message.contains("run () -> (i32)"), "{message}");
    let names: Vec<String> = module.functions().into_iter().map(|f| f.name).collect();
    assert_eq!(names, ["run", "calc", "out_of_range", "simd"]);
}

#[test]
fn an_unknown_import_is_refused_by_name() {
    // The link error is kept for the run: the module still loads.
    let outcome = load(runtime(), HOOKED).run(&Task::command());
    assert_eq!(outcome.status, ExitStatus::CannotRun);
    assert!(outcome.message.unwrap().contains("`host::call`"));
}

#[test]
fn a_stubbed_import_runs_until_it_is_called_in_both_isolations() {
    let module = load(&stubbing_runtime(), HOOKED);
    let import = module
        .imports()
        .into_iter()
        .find(|i| i.name == "call")
        .unwrap();
    assert!(!import.provided && import.stubbed);
    for (isolation, pool) in crate::one_worker_pools(&module) {
        let outcome = pool.submit(Task::command()).unwrap().wait().clone();
        assert_eq!(
            outcome.status,
            ExitStatus::Exited(0),
            "{isolation}: {outcome:?}"
        );
        let outcome = pool
            .submit(Task::invoke("use_hook"))
            .unwrap()
            .wait()
            .clone();
        assert_eq!(
            outcome.status,
            ExitStatus::Trapped(TrapKind::HostError),
            "{isolation}: {outcome:?}"
        );
        assert!(
            outcome.message.unwrap().contains("`host::call`"),
            "{isolation}"
        );
    }
}

#[test]
fn unknown_imports_other_than_functions_stay_refused() {
    let module = load(
        &stubbing_runtime(),
        r#"(module (import "host" "g" (global i32)) (func (export "_start")))"#,
    );
    let outcome = module.run(&Task::command());
    assert_eq!(outcome.status, ExitStatus::CannotRun);
    let message = outcome.message.unwrap();
    assert!(
        message.contains("`host::g`") && message.contains("global"),
        "{message}"
    );
}

/// A wizer-ready reactor: `wizer.initialize` sets state that `run` reads,
/// and counts how often `_initialize` ran (in hundreds).
const WIZER_READY: &str = r#"
(module
  (memory (export "memory") 1)
  (global $g (mut i32) (i32.const 0))
  (global $inits (mut i32) (i32.const 0))
  (func (export "_initialize") (global.set $inits (i32.add (global.get $inits) (i32.const 1))))
  (func (export "wizer.initialize") (global.set $g (i32.const 7)) (i32.store (i32.const 0) (i32.const 5)))
  (func (export "run") (result i32)
    (i32.add (i32.add (global.get $g) (i32.load (i32.const 0)))
             (i32.mul (global.get $inits) (i32.const 100)))))
"#;

#[test]
fn wizer_initialize_is_an_initializer_and_its_snapshot_keeps_the_state() {
    let module = load(runtime(), WIZER_READY);
    assert_eq!(
        module.run(&Task::invoke("run")).status,
        ExitStatus::Exited(100)
    );
    let snapshot = module
        .initialize_with(&wasmproc::Initializer::call_json("wizer", &b"null"[..]))
        .unwrap();
    // Its state, and `_initialize` run once (before the initializer), not
    // again per task.
    for (isolation, pool) in crate::one_worker_pools(&snapshot) {
        let outcome = pool.submit(Task::invoke("run")).unwrap().wait().clone();
        assert_eq!(
            outcome.status,
            ExitStatus::Exited(112),
            "{isolation}: {outcome:?}"
        );
    }
}
