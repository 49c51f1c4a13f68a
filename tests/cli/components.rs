//! WASI 0.2 command components through the binary: `wasi-cmd` built for
//! wasm32-wasip2 under `run`, `map` (argv per line), `serve` (the
//! connection is its stdin and stdout) and `inspect`, in both isolations,
//! with the flags and statuses of a preview-1 command.

use std::io::Write;
use std::process::Stdio;

use super::serve::Serving;
use super::{input_file, lines, wasmproc, wasmproc_run};
use wasmproc_tests::wat_components::{HOOKED, exiting_with};
use wasmproc_tests::{code, guests, stderr, stdout};

const ISOLATIONS: [&str; 2] = ["thread", "process"];

/// `wasmproc run --isolation ISOLATION FLAGS COMPONENT ARGV`.
fn run(isolation: &str, flags: &[&str], argv: &[&str]) -> std::process::Output {
    let mut args = vec!["run", "--isolation", isolation];
    args.extend_from_slice(flags);
    args.push(guests::WASI_CMD_P2);
    args.extend_from_slice(argv);
    wasmproc_run(&args)
}

#[test]
fn run_passes_argv_env_and_output_and_maps_exits_in_both_isolations() {
    for isolation in ISOLATIONS {
        let said = run(isolation, &[], &["say", "hi"]);
        assert_eq!(code(&said), 0, "{isolation}: {}", stderr(&said));
        assert_eq!(stdout(&said), "hi\n", "{isolation}");
        assert!(stderr(&said).contains("hi"), "{isolation}");

        let env = run(isolation, &["--env", "COLOR=teal"], &["env"]);
        assert_eq!(stdout(&env), "COLOR=teal\n", "{isolation}");

        // Rust's std on wasm32-wasip2 exits nonzero through `wasi:cli/exit`
        // `exit(err)`: 1, whatever the code.
        assert_eq!(code(&run(isolation, &[], &["exit", "7"])), 1, "{isolation}");
        let panicked = run(isolation, &[], &["panic"]);
        assert_eq!(code(&panicked), 134, "{isolation}");
        assert!(stderr(&panicked).contains("trapped"), "{isolation}");
    }
}

#[test]
fn run_relays_stdin_in_both_isolations() {
    for isolation in ISOLATIONS {
        let mut child = wasmproc()
            .args(["run", "--isolation", isolation, guests::WASI_CMD_P2, "cat"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        input
            .write_all(b"relayed\nthrough the component\n")
            .unwrap();
        drop(input);
        let output = child.wait_with_output().unwrap();
        assert_eq!(code(&output), 0, "{isolation}: {}", stderr(&output));
        assert_eq!(
            stdout(&output),
            "relayed\nthrough the component\n",
            "{isolation}"
        );
    }
}

#[test]
fn a_granted_dir_is_read_and_an_ungranted_path_refused_in_both_isolations() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("note.txt"), "granted\n").unwrap();
    let grant = format!("{}::/data", dir.path().display());
    let host_path = dir.path().join("note.txt");
    for isolation in ISOLATIONS {
        let read = run(isolation, &["--dir", &grant], &["read", "/data/note.txt"]);
        assert_eq!(code(&read), 0, "{isolation}: {}", stderr(&read));
        assert_eq!(stdout(&read), "granted\n");
        let refused = run(isolation, &[], &["read", host_path.to_str().unwrap()]);
        assert_eq!(code(&refused), 1, "{isolation}");
        assert!(stdout(&refused).is_empty(), "{isolation}");
        assert!(stderr(&refused).contains("cannot read"), "{isolation}");
    }
}

#[test]
fn limits_end_a_component_with_their_statuses_in_both_isolations() {
    for isolation in ISOLATIONS {
        let spun = run(isolation, &["--timeout", "300ms"], &["spin"]);
        assert_eq!(code(&spun), 142, "{isolation}: {}", stderr(&spun));
        let slept = run(isolation, &["--timeout", "300ms"], &["sleep", "3600000"]);
        assert_eq!(code(&slept), 142, "{isolation}: {}", stderr(&slept));
        let fuel = run(isolation, &["--fuel", "100000"], &["spin"]);
        assert_eq!(code(&fuel), 152, "{isolation}: {}", stderr(&fuel));
        let memory = run(isolation, &["--max-memory", "32MiB"], &["alloc", "1024"]);
        assert_eq!(code(&memory), 137, "{isolation}: {}", stderr(&memory));
        let within = run(isolation, &["--max-memory", "32MiB"], &["alloc", "8"]);
        assert_eq!(stdout(&within), "8\n", "{isolation}: {}", stderr(&within));
    }
}

#[test]
fn map_runs_each_line_as_argv_in_both_isolations() {
    let input =
        input_file("[\"say\", \"one\"]\n[\"exit\", \"4\"]\n[\"spin\"]\n[\"say\", \"four\"]\n");
    for isolation in ISOLATIONS {
        let output = wasmproc_run(&[
            "map",
            "--isolation",
            isolation,
            "--timeout",
            "300ms",
            "--fuel",
            "1000000000000",
            guests::WASI_CMD_P2,
            input.path().to_str().unwrap(),
        ]);
        let results = lines(&output);
        assert_eq!(results.len(), 4, "{isolation}: {}", stderr(&output));
        assert_eq!(results[0]["stdout"], "one\n", "{isolation}");
        assert_eq!(results[0]["exit_code"], 0);
        assert!(results[0]["fuel_used"].as_u64().unwrap() > 0, "{isolation}");
        assert!(results[0]["peak_memory_bytes"].as_u64().unwrap() > 0);
        assert_eq!(results[1]["exit_code"], 1, "{isolation}");
        assert_eq!(results[2]["status"], "timed_out", "{isolation}");
        assert_eq!(results[3]["stdout"], "four\n", "{isolation}");
        // Some tasks failed: `map`'s own exit status says so.
        assert_ne!(code(&output), 0, "{isolation}");
    }
}

#[test]
fn serve_makes_the_connection_the_components_stdin_and_stdout_in_both_isolations() {
    for isolation in ISOLATIONS {
        let mut server =
            Serving::start(&["--isolation", isolation, guests::WASI_CMD_P2, "--", "cat"]);
        let reply = server.exchange(b"through a WASI 0.2 component");
        assert_eq!(reply, b"through a WASI 0.2 component", "{isolation}");
        let record = server.record();
        assert_eq!(record["status"], "exited", "{isolation}: {record}");
        assert_eq!(record["exit_code"], 0);
        assert_eq!(record["bytes_in"], 28);
        assert_eq!(record["bytes_out"], 28);
        let (code, _) = server.terminate();
        assert_eq!(code, Some(0), "{isolation}");
    }
}

#[test]
fn inspect_says_what_a_component_is_and_entry_flags_are_refused() {
    let output = wasmproc_run(&["inspect", guests::WASI_CMD_P2]);
    let text = stdout(&output);
    assert!(
        text.contains("a WASI 0.2 command component") && text.contains("wasi:cli/run@0.2."),
        "{text}"
    );
    assert!(text.contains("wasi:filesystem/preopens@0.2."), "{text}");
    assert!(!text.contains("NOT PROVIDED"), "{text}");
    let json = wasmproc_run(&["inspect", "--json", guests::WASI_CMD_P2]);
    let value: serde_json::Value = serde_json::from_str(&stdout(&json)).unwrap();
    assert_eq!(value["component"], true);
    assert_eq!(value["command"], true);

    let invoked = wasmproc_run(&["run", "--invoke", "run", guests::WASI_CMD_P2]);
    assert_eq!(code(&invoked), 126);
    assert!(
        stderr(&invoked).contains("is a component"),
        "{}",
        stderr(&invoked)
    );
    let init = wasmproc_run(&["run", "--init", "setup", guests::WASI_CMD_P2]);
    assert_eq!(code(&init), 126);
    assert!(
        stderr(&init).contains("has no initializer `setup`"),
        "{}",
        stderr(&init)
    );
    let task = wasmproc_run(&["run", "--task", "run", guests::WASI_CMD_P2]);
    assert_eq!(code(&task), 126);
}

#[test]
fn unknown_imports_and_exit_codes_of_components_through_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let hooked = dir.path().join("hooked.wat");
    std::fs::write(&hooked, HOOKED).unwrap();
    let hooked = hooked.to_str().unwrap();
    let exit = dir.path().join("exit.wat");
    std::fs::write(&exit, exiting_with(9)).unwrap();
    let exit = exit.to_str().unwrap();
    for isolation in ISOLATIONS {
        let iso = ["--isolation", isolation];
        let refused = wasmproc_run(&[&["run"][..], &iso, &[hooked]].concat());
        assert_eq!(code(&refused), 126, "{isolation}");
        assert!(
            stderr(&refused).contains("my:host/hook"),
            "{}",
            stderr(&refused)
        );
        let stubbed = wasmproc_run(&[&["run", "--stub-imports"][..], &iso, &[hooked]].concat());
        assert_eq!(code(&stubbed), 0, "{isolation}: {}", stderr(&stubbed));
        let exited = wasmproc_run(&[&["run"][..], &iso, &[exit]].concat());
        assert_eq!(code(&exited), 9, "{isolation}: {}", stderr(&exited));
    }
    let inspect = stdout(&wasmproc_run(&["inspect", hooked]));
    assert!(
        inspect.contains("my:host/hook") && inspect.contains("NOT PROVIDED: the module cannot run"),
        "{inspect}"
    );
}
