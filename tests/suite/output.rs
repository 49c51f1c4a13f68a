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

/// A writer that blocks its first write until released, then fails it:
/// a reader that does not read, then goes away.
struct Stuck {
    entered: crossbeam_channel::Sender<()>,
    release: crossbeam_channel::Receiver<()>,
}

impl std::io::Write for Stuck {
    fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
        let _ = self.entered.send(());
        let _ = self.release.recv();
        Err(std::io::Error::new(
            std::io::ErrorKind::BrokenPipe,
            "the reader went away",
        ))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A task cancelled while its guest is blocked in a write no signal
/// reaches ends `cancelled` when the write returns, even when the guest
/// exits with its own code at once after it (here `proc_exit(101)`, the
/// very next instruction: no epoch check runs in between).
#[test]
fn a_task_cancelled_in_a_stuck_write_ends_cancelled_whatever_follows() {
    const WRITE_THEN_EXIT: &str = r#"(module
      (import "wasi_snapshot_preview1" "fd_write"
        (func $write (param i32 i32 i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
      (memory (export "memory") 1)
      (data (i32.const 0) "\10\00\00\00\05\00\00\00")
      (data (i32.const 16) "hello")
      (func (export "_start")
        (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 32)))
        (call $exit (i32.const 101))))"#;
    let module = wasmproc_tests::runtime()
        .load_bytes("write-then-exit.wat", WRITE_THEN_EXIT.as_bytes())
        .unwrap();
    let (entered, in_write) = crossbeam_channel::bounded(1);
    let (release, released) = crossbeam_channel::bounded(1);
    let writer: Arc<Mutex<dyn std::io::Write + Send>> = Arc::new(Mutex::new(Stuck {
        entered,
        release: released,
    }));
    let task = Task::command().stdout(Output::Writer(writer));
    let token = wasmproc::CancelToken::new();
    let running = {
        let token = token.clone();
        std::thread::spawn(move || module.run_with(&task, &token))
    };
    in_write.recv().unwrap();
    token.cancel();
    release.send(()).unwrap();
    let outcome = running.join().unwrap();
    assert_eq!(outcome.status, ExitStatus::Cancelled, "{outcome:?}");
}
