//! Initializers of components: an exported WIT function of a wit-bindgen
//! component, or an SDK component's `#[init]`, run once and snapshot with
//! wizer; every task, in either isolation, starts in a fresh instance from
//! the state it left, and a second initialization finds the snapshot in
//! the cache.

use serde_json::json;
use wasmproc::{CacheStatus, DirGrant, ErrorKind, ExitStatus, Initializer, Pool, Task};
use wasmproc_tests::{guests, runtime, typed_component};

fn result(pool: &Pool, task: Task) -> serde_json::Value {
    let outcome = pool.submit(task).unwrap().wait().clone();
    assert!(outcome.success(), "{outcome:?}");
    outcome.decode().unwrap()
}

#[test]
fn an_exported_function_initializes_the_state_every_task_starts_from() {
    let snapshot = typed_component()
        .initialize("remember", "the snapshot's text")
        .unwrap();
    let again = typed_component()
        .initialize("remember", "the snapshot's text")
        .unwrap();
    assert_eq!(again.cache_status(), CacheStatus::Hit);
    let fresh = typed_component().run(&Task::call("recall", &()).unwrap());
    assert_eq!(
        fresh.decode::<String>().unwrap(),
        "",
        "the base is untouched"
    );
    for module in [&snapshot, &again] {
        for (isolation, pool) in crate::one_worker_pools(module) {
            let recall = || Task::call("recall", &()).unwrap();
            assert_eq!(
                result(&pool, recall()),
                json!("the snapshot's text"),
                "{isolation}"
            );
            // A task's change stays in its own instance.
            let changed = Task::call("remember", &"changed by a task").unwrap();
            assert_eq!(result(&pool, changed), json!(null), "{isolation}");
            assert_eq!(
                result(&pool, recall()),
                json!("the snapshot's text"),
                "{isolation}"
            );
            // Other exports still work on the snapshot.
            let square = Task::call("square", &7).unwrap();
            assert_eq!(result(&pool, square), json!(49), "{isolation}");
        }
    }
}

#[test]
fn a_component_initializer_that_fails_ends_with_a_tasks_status() {
    let refused = typed_component().initialize("remember", "").unwrap_err();
    assert_eq!(
        refused.kind(),
        &ErrorKind::TaskFailed(ExitStatus::Exited(1))
    );
    assert!(
        refused.message().contains("nothing to remember"),
        "{refused}"
    );
    let trapped = typed_component().initialize("crash", &()).unwrap_err();
    assert!(
        matches!(
            trapped.kind(),
            ErrorKind::TaskFailed(ExitStatus::Trapped(_))
        ),
        "{trapped}"
    );
    let misfit = typed_component().initialize("remember", &5).unwrap_err();
    assert_eq!(misfit.kind(), &ErrorKind::BadInvocation, "{misfit}");
    let missing = typed_component().initialize("forget", &()).unwrap_err();
    assert_eq!(missing.kind(), &ErrorKind::CannotRun);
    assert!(
        missing.message().contains("has no initializer `forget`")
            && missing.message().contains("remember"),
        "{missing}"
    );
}

#[test]
fn an_sdk_components_initializer_runs_once_for_every_task() {
    let module = runtime().load(guests::INIT_TASKS_P2).unwrap();
    let snapshot = module.initialize("seed_only", &7).unwrap();
    for (isolation, pool) in crate::one_worker_pools(&snapshot) {
        // The seed it left, and one initializer run before every task.
        let state = Task::call("state", &()).unwrap();
        assert_eq!(result(&pool, state), json!([7, 1]), "{isolation}");
        let calls = Task::call("calls", &()).unwrap();
        assert_eq!(result(&pool, calls), json!(1), "{isolation}");
    }
    let pool = Pool::builder(&module)
        .initializer("seed_only", &3)
        .workers(1)
        .build()
        .unwrap();
    assert_eq!(
        result(&pool, Task::call("state", &()).unwrap()),
        json!([3, 1])
    );

    let refused = module.initialize("refuse", &3).unwrap_err();
    assert_eq!(
        refused.kind(),
        &ErrorKind::TaskFailed(ExitStatus::Exited(3))
    );
    let missing = module.initialize("lookup", &1).unwrap_err();
    assert!(
        missing.message().contains("has no initializer `lookup`")
            && missing.message().contains("seed_only"),
        "{missing}"
    );
}

/// A component's handles are not in its memory: an initializer that
/// returns holding one (here the stdout stream wasi-libc keeps once
/// `table` printed) would leave every task a handle that names nothing.
#[test]
fn an_initializer_that_holds_a_stream_or_file_is_refused_with_the_reason() {
    let module = runtime().load(guests::INIT_TASKS_P2).unwrap();
    let printed = module
        .initialize("table", &json!({"len": 10, "seed": 1}))
        .unwrap_err();
    assert_eq!(printed.kind(), &ErrorKind::CannotRun);
    assert!(
        printed.message().contains("returned holding")
            && printed.message().contains("WASI resource"),
        "{printed}"
    );
}

/// A file the initializer keeps is refused by name, whatever its libc can
/// forget; one it closed is fine (the SDK resets wasi-libc's table of
/// granted directories after its initializer, as it does in a module).
#[test]
fn a_file_kept_open_is_named_and_one_closed_is_fine() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("words.txt"), "alpha beta gamma").unwrap();
    let grant = DirGrant::new(dir.path(), "/data");
    let module = runtime().load(guests::INIT_TASKS_P2).unwrap();

    let keeps = Initializer::call("keep_open", &"/data/words.txt")
        .unwrap()
        .dir(grant.clone());
    let kept = module.initialize_with(&keeps).unwrap_err();
    assert_eq!(kept.kind(), &ErrorKind::CannotRun);
    assert!(
        kept.message().contains("returned with a file still open"),
        "{kept}"
    );

    let reads = Initializer::call("words", &"/data/words.txt")
        .unwrap()
        .dir(grant);
    assert!(module.initialize_with(&reads).is_ok());
}
