//! `--invoke` and `--stub-imports` through the binary: a reactor's
//! functions called in both isolations and by `map`, arguments from argv,
//! results printed; unknown imports refused by name, or stubbed to trap.

use super::{input_file, lines, wasmproc_run};
use wasmproc_tests::wat::{HOOKED, REACTOR};
use wasmproc_tests::{stderr, stdout};

/// `source` in a `.wat` file of a temporary directory (kept alive by the
/// returned guard).
fn module_file(source: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.wat");
    std::fs::write(&path, source).unwrap();
    (dir, path.to_str().unwrap().to_owned())
}

#[test]
fn a_reactor_runs_with_invoke_in_both_isolations() {
    let (_dir, path) = module_file(REACTOR);
    for isolation in ["thread", "process"] {
        let output = wasmproc_run(&["run", "--isolation", isolation, "--invoke", "run", &path]);
        assert_eq!(
            output.status.code(),
            Some(42),
            "{isolation}: {}",
            stderr(&output)
        );
    }
}

#[test]
fn map_invoke_takes_each_line_as_argv() {
    let (_dir, path) = module_file(REACTOR);
    let input = input_file("[\"1\", \"2\", \"3\"]\n[]\n");
    let output = wasmproc_run(&[
        "map",
        "--invoke",
        "calc",
        &path,
        input.path().to_str().unwrap(),
    ]);
    let results = lines(&output);
    assert_eq!(results[0]["exit_code"], 0, "{}", stderr(&output));
    assert_eq!(results[0]["stdout"], "3\n6\n");
    assert_eq!(results[0]["result"], serde_json::json!([3, 6.0]));
    assert_eq!(results[1]["exit_code"], 128);
    assert!(
        results[1]["message"]
            .as_str()
            .unwrap()
            .contains("(i32, i64, f64)")
    );

    let input = input_file("[]\n");
    let output = wasmproc_run(&[
        "map",
        "--invoke",
        "run",
        &path,
        input.path().to_str().unwrap(),
    ]);
    assert_eq!(lines(&output)[0]["exit_code"], 42);
}

#[test]
fn invoke_arguments_come_from_argv_and_results_are_printed() {
    let (_dir, path) = module_file(REACTOR);
    let output = wasmproc_run(&["run", "--invoke", "calc", &path, "2", "40", "1.25"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stdout(&output), "42\n2.5\n");
}

#[test]
fn a_bad_invoke_argument_exits_128_naming_the_signature() {
    let (_dir, path) = module_file(REACTOR);
    for argv in [&["2", "x", "1"][..], &["2"][..]] {
        let mut args = vec!["run", "--invoke", "calc", &path, "--"];
        args.extend(argv);
        let output = wasmproc_run(&args);
        assert_eq!(output.status.code(), Some(128), "{argv:?}");
        assert!(
            stderr(&output).contains("func (i32, i64, f64) -> (i64, f64)"),
            "{}",
            stderr(&output)
        );
    }
}

#[test]
fn a_reactor_without_invoke_is_told_to_use_it() {
    let (_dir, path) = module_file(REACTOR);
    let output = wasmproc_run(&["run", &path]);
    assert_eq!(output.status.code(), Some(126));
    let message = stderr(&output);
    assert!(message.contains("--invoke NAME"), "{message}");
    assert!(
        message.contains("calc (i32, i64, f64) -> (i64, f64)"),
        "{message}"
    );
    let inspected = stdout(&wasmproc_run(&["inspect", &path]));
    assert!(inspected.contains("--invoke NAME"), "{inspected}");
    assert!(inspected.contains("calc"), "{inspected}");
}

#[test]
fn an_unknown_import_is_refused_by_default_and_stubbed_on_request() {
    let (_dir, path) = module_file(HOOKED);
    let refused = wasmproc_run(&["run", &path]);
    assert_eq!(refused.status.code(), Some(126));
    assert!(
        stderr(&refused).contains("`host::call`"),
        "{}",
        stderr(&refused)
    );
    assert!(stderr(&refused).contains("--stub-imports"));
    // `map` refuses it once, before any line, with the same status and
    // reason, instead of failing every line (which would exit 123).
    let input = input_file("[]\n[]\n");
    for isolation in ["thread", "process"] {
        let map = wasmproc_run(&[
            "map",
            "--isolation",
            isolation,
            &path,
            input.path().to_str().unwrap(),
        ]);
        assert_eq!(map.status.code(), Some(126), "{}", stderr(&map));
        assert!(stderr(&map).contains("`host::call`"), "{}", stderr(&map));
        assert_eq!(stdout(&map), "", "no line ran");
    }

    for isolation in ["thread", "process"] {
        let never_called =
            wasmproc_run(&["run", "--stub-imports", "--isolation", isolation, &path]);
        assert_eq!(
            never_called.status.code(),
            Some(0),
            "{}",
            stderr(&never_called)
        );
        let called = wasmproc_run(&[
            "run",
            "--stub-imports",
            "--isolation",
            isolation,
            "--json",
            "--invoke",
            "use_hook",
            &path,
        ]);
        assert_eq!(called.status.code(), Some(134), "{isolation}");
        let outcome: serde_json::Value = serde_json::from_str(&stdout(&called)).unwrap();
        assert_eq!(outcome["status"], "trapped");
        assert!(
            outcome["message"]
                .as_str()
                .unwrap()
                .contains("`host::call`")
        );
    }
}

#[test]
fn init_wizer_runs_a_wizer_ready_modules_initializer_into_a_snapshot() {
    let (_dir, path) = module_file(
        r#"(module
             (global $g (mut i32) (i32.const 0))
             (func (export "wizer.initialize") (global.set $g (i32.const 9)))
             (func (export "run") (result i32) (global.get $g)))"#,
    );
    assert_eq!(
        wasmproc_run(&["run", "--invoke", "run", &path])
            .status
            .code(),
        Some(0)
    );
    for isolation in ["thread", "process"] {
        let output = wasmproc_run(&[
            "run",
            "--init",
            "wizer",
            "--isolation",
            isolation,
            "--invoke",
            "run",
            &path,
        ]);
        assert_eq!(
            output.status.code(),
            Some(9),
            "{isolation}: {}",
            stderr(&output)
        );
    }
}

/// `serve --invoke`: each connection runs the function, its results
/// written to the connection (the task's stdout), in both isolations.
#[test]
fn serve_invokes_the_function_for_each_connection() {
    let (_dir, path) = module_file(REACTOR);
    for isolation in ["thread", "process"] {
        let mut server = crate::serve::Serving::start(&[
            "--isolation",
            isolation,
            "--invoke",
            "calc",
            &path,
            "--",
            "2",
            "40",
            "1.25",
        ]);
        for _ in 0..2 {
            let reply = server.exchange(b"");
            assert_eq!(String::from_utf8_lossy(&reply), "42\n2.5\n", "{isolation}");
            let record = server.record();
            assert_eq!(record["status"], "exited", "{isolation}: {record}");
            assert_eq!(record["exit_code"], 0, "{isolation}: {record}");
        }
        let (code, rest) = server.terminate();
        assert_eq!(code, Some(0), "{isolation}: {rest}");
    }
}

/// A failed `--invoke` run leaves a bundle that replays to the same
/// outcome: the function called, and the stubbing its module needs.
#[test]
fn an_invoked_run_replays_to_the_same_outcome() {
    let (_dir, reactor) = module_file(REACTOR);
    let hooked_dir = tempfile::tempdir().unwrap();
    let hooked = hooked_dir.path().join("hooked.wat");
    std::fs::write(&hooked, HOOKED).unwrap();
    let hooked = hooked.to_str().unwrap();
    for (args, code) in [
        (vec!["--invoke", "run", reactor.as_str()], 42),
        (vec!["--stub-imports", "--invoke", "use_hook", hooked], 134),
    ] {
        let bundles = tempfile::tempdir().unwrap();
        let mut run = vec!["run", "--replay-dir", bundles.path().to_str().unwrap()];
        run.extend(&args);
        let first = wasmproc_run(&run);
        assert_eq!(first.status.code(), Some(code), "{}", stderr(&first));
        let bundle = std::fs::read_dir(bundles.path())
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .find(|path| path.to_string_lossy().ends_with(".replay.json"))
            .unwrap_or_else(|| panic!("no bundle for {args:?}: {}", stderr(&first)));
        let again = wasmproc_run(&["replay", bundle.to_str().unwrap()]);
        assert_eq!(
            again.status.code(),
            Some(code),
            "{args:?}: {}",
            stderr(&again)
        );
        if code == 134 {
            assert!(stderr(&again).contains("host::call"), "{}", stderr(&again));
        }
    }
}

/// A module missing several imports is told about all of them at once.
#[test]
fn every_unknown_import_is_named() {
    let (_dir, path) = module_file(
        r#"(module
             (import "host" "call" (func))
             (import "env" "log" (func (param i32)))
             (func (export "_start")))"#,
    );
    let output = wasmproc_run(&["run", &path]);
    assert_eq!(output.status.code(), Some(126));
    assert!(
        stderr(&output)
            .contains("it imports 2 wasmproc does not provide: `host::call`, `env::log`"),
        "{}",
        stderr(&output)
    );
}
