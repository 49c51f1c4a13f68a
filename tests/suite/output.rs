//! Where guest output goes: captured (bounded), to a writer, or discarded.

use std::sync::{Arc, Mutex};

use wasmproc::{ExitStatus, Limits, Output, Task};
use wasmproc_tests::{sdk_tasks, wasi_cmd};

#[test]
fn stdout_and_stderr_are_captured_separately() {
    let task = Task::call("write_output", &(10usize, "to stderr")).unwrap();
    let outcome = sdk_tasks().run(&task);
    assert_eq!(outcome.status, ExitStatus::Exited(0));
    assert_eq!(outcome.stdout.text(), "xxxxxxxxxx");
    assert_eq!(outcome.stderr.text(), "to stderr");
    assert!(!outcome.stdout.truncated && !outcome.stderr.truncated);
}

#[test]
fn capture_is_capped_and_marked_truncated_while_the_guest_runs_on() {
    let task = Task::command()
        .args(["flood", "1048576"])
        .limits(Limits::default().max_output(1000));
    let outcome = wasi_cmd().run(&task);
    assert_eq!(
        outcome.status,
        ExitStatus::Exited(0),
        "the flood is not an error"
    );
    assert_eq!(outcome.stdout.bytes.len(), 1000);
    assert!(outcome.stdout.truncated);
    assert!(outcome.stdout.bytes.iter().all(|&b| b == b'y'));
}

#[test]
fn output_goes_to_a_writer_as_written() {
    let sink = Arc::new(Mutex::new(Vec::<u8>::new()));
    let writer: Arc<Mutex<dyn std::io::Write + Send>> = sink.clone();
    let task = Task::command()
        .args(["args", "to", "writer"])
        .stdout(Output::Writer(writer));
    let outcome = wasi_cmd().run(&task);
    assert_eq!(outcome.status, ExitStatus::Exited(0));
    assert!(
        outcome.stdout.bytes.is_empty(),
        "nothing is captured when a writer takes it"
    );
    assert_eq!(
        String::from_utf8(sink.lock().unwrap().clone()).unwrap(),
        "wasi-cmd.wasm|args|to|writer\n"
    );
}

/// Runs `say MARKER` with both streams set to `output` in a child process
/// (this test binary, running only `test`), and returns what the child
/// printed: whatever a guest inherits shows up there. In the child itself,
/// runs the task and returns `None`.
fn child_streams(test: &str, output: &str) -> Option<String> {
    const CHILD: &str = "WASMPROC_TEST_OUTPUT_CHILD";
    if let Some(mode) = std::env::var_os(CHILD) {
        let output = if mode == "inherit" {
            Output::Inherit
        } else {
            Output::Discard
        };
        let task = Task::command()
            .args(["say", "marker-7f3a"])
            .stdout(output.clone())
            .stderr(output);
        let outcome = wasi_cmd().run(&task);
        assert_eq!(outcome.status, ExitStatus::Exited(0));
        assert!(outcome.stdout.bytes.is_empty() && outcome.stderr.bytes.is_empty());
        return None;
    }
    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(CHILD, output)
        .output()
        .unwrap();
    assert!(child.status.success(), "the child test failed: {child:?}");
    Some(format!(
        "{}{}",
        String::from_utf8_lossy(&child.stdout),
        String::from_utf8_lossy(&child.stderr)
    ))
}

#[test]
fn discarded_output_reaches_no_stream() {
    let Some(printed) = child_streams("output::discarded_output_reaches_no_stream", "discard")
    else {
        return;
    };
    assert!(!printed.contains("marker-7f3a"), "{printed}");
}

#[test]
fn inherited_output_reaches_the_host_streams() {
    // The control for the test above: the same child does see what a guest
    // inherits, on both streams.
    let Some(printed) = child_streams(
        "output::inherited_output_reaches_the_host_streams",
        "inherit",
    ) else {
        return;
    };
    assert_eq!(printed.matches("marker-7f3a").count(), 2, "{printed}");
}

#[test]
fn output_written_before_a_failure_is_kept() {
    let outcome = wasi_cmd().run(&Task::command().args(["panic"]));
    assert_eq!(
        outcome.status,
        ExitStatus::Trapped(wasmproc::TrapKind::Unreachable)
    );
    assert!(outcome.stderr.text().contains("wasi-cmd was told to panic"));
}
