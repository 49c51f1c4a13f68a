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

#[test]
fn discarded_output_is_dropped() {
    let task = Task::command()
        .args(["stderr", "gone"])
        .stdout(Output::Discard)
        .stderr(Output::Discard);
    let outcome = wasi_cmd().run(&task);
    assert_eq!(outcome.status, ExitStatus::Exited(0));
    assert!(outcome.stderr.bytes.is_empty());
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
