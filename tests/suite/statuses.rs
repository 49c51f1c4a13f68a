//! One test per row of the exit-status table, through the library.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wasmproc::{CancelToken, ErrorKind, ExitStatus, Limits, Output, Task, TrapKind};
use wasmproc_tests::{runtime, sdk_tasks, wasi_cmd};

#[test]
fn exited_zero_with_result() {
    let outcome = sdk_tasks().run(&Task::call("square", &12u64).unwrap());
    assert_eq!(outcome.status, ExitStatus::Exited(0));
    assert_eq!(outcome.status.code(), 0);
    assert_eq!(outcome.decode::<u64>().unwrap(), 144);
}

#[test]
fn exited_with_guest_code() {
    let outcome = wasi_cmd().run(&Task::command().args(["exit", "42"]));
    assert_eq!(outcome.status, ExitStatus::Exited(42));
    assert_eq!(outcome.status.code(), 42);
}

#[test]
fn cannot_run_invalid_module() {
    let error = runtime()
        .load_bytes("junk.wasm", b"\0asm\x01\0\0\0\xff\xff")
        .err()
        .unwrap();
    assert_eq!(error.kind(), &ErrorKind::CannotRun);
    assert_eq!(error.exit_status().code(), 126);
    assert!(
        error.to_string().contains("not a valid WebAssembly module"),
        "{error}"
    );
}

#[test]
fn cannot_run_missing_task() {
    let outcome = sdk_tasks().run(&Task::call("no_such_task", &1).unwrap());
    assert_eq!(outcome.status, ExitStatus::CannotRun);
    assert_eq!(outcome.status.code(), 126);
    let message = outcome.message.unwrap();
    assert!(
        message.contains("no task `no_such_task`") && message.contains("square"),
        "{message}"
    );
}

#[test]
fn not_found_missing_file() {
    let error = runtime().load("/definitely/not/here.wasm").err().unwrap();
    assert_eq!(error.kind(), &ErrorKind::NotFound);
    assert_eq!(error.exit_status().code(), 127);
}

#[test]
fn bad_invocation_invalid_json() {
    let outcome = sdk_tasks().run(&Task::call_json("square", &b"{not json"[..]));
    assert_eq!(outcome.status, ExitStatus::BadInvocation);
    assert_eq!(outcome.status.code(), 128);
}

#[test]
fn cancelled_is_130() {
    let token = CancelToken::new();
    let canceller = token.clone();
    let cancelling = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        canceller.cancel();
    });
    let started = Instant::now();
    let outcome = sdk_tasks().run_with(&Task::call("sleep_ms", &3_600_000u64).unwrap(), &token);
    cancelling.join().unwrap();
    assert_eq!(outcome.status, ExitStatus::Cancelled);
    assert_eq!(outcome.status.code(), 130);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "cancel ended an hour-long sleep"
    );
}

#[test]
fn cancelled_before_start_never_starts() {
    let token = CancelToken::new();
    token.cancel();
    let outcome = wasi_cmd().run_with(&Task::command().args(["args", "x"]), &token);
    assert_eq!(outcome.status, ExitStatus::Cancelled);
    assert!(outcome.stdout.bytes.is_empty(), "the guest never ran");
}

#[test]
fn trapped_is_134() {
    let outcome = sdk_tasks().run(&Task::call("unreachable", &()).unwrap());
    assert_eq!(outcome.status, ExitStatus::Trapped(TrapKind::Unreachable));
    assert_eq!(outcome.status.code(), 134);
}

#[test]
fn memory_exceeded_is_137() {
    let task = Task::call("allocate_mib", &64usize)
        .unwrap()
        .limits(Limits::default().max_memory(16 << 20));
    let outcome = sdk_tasks().run(&task);
    assert_eq!(outcome.status, ExitStatus::MemoryExceeded);
    assert_eq!(outcome.status.code(), 137);
}

/// A host-side panic while serving the guest (here: in an embedder's
/// output writer) ends that task with `WorkerLost`, and the host goes on.
#[test]
fn worker_lost_is_139() {
    struct PanickingWriter;
    impl std::io::Write for PanickingWriter {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            panic!("the embedder's writer broke")
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let writer: Arc<Mutex<dyn std::io::Write + Send>> = Arc::new(Mutex::new(PanickingWriter));
    let task = Task::command()
        .args(["args", "hello"])
        .stdout(Output::Writer(writer));
    let outcome = wasi_cmd().run(&task);
    assert_eq!(outcome.status, ExitStatus::WorkerLost);
    assert_eq!(outcome.status.code(), 139);
    assert!(
        outcome
            .message
            .unwrap()
            .contains("the embedder's writer broke")
    );

    let after = sdk_tasks().run(&Task::call("square", &3u64).unwrap());
    assert_eq!(
        after.decode::<u64>().unwrap(),
        9,
        "the host serves the next task"
    );
}

#[test]
fn timed_out_is_142() {
    let task = Task::call("spin", &())
        .unwrap()
        .limits(Limits::default().timeout(Duration::from_millis(100)));
    let outcome = sdk_tasks().run(&task);
    assert_eq!(outcome.status, ExitStatus::TimedOut);
    assert_eq!(outcome.status.code(), 142);
}

#[test]
fn fuel_exhausted_is_152() {
    let task = Task::call("spin", &())
        .unwrap()
        .limits(Limits::default().fuel(100_000));
    let outcome = sdk_tasks().run(&task);
    assert_eq!(outcome.status, ExitStatus::FuelExhausted);
    assert_eq!(outcome.status.code(), 152);
}

/// Runs beyond the instance pool's size wait for a place; none fails.
#[test]
fn more_concurrent_runs_than_instances_all_complete() {
    let runtime = wasmproc::Runtime::builder()
        .cache_dir(wasmproc_tests::suite_cache_dir())
        .max_instances(2)
        .build()
        .unwrap();
    let module = runtime.load(wasmproc_tests::guests::SDK_TASKS).unwrap();
    let threads: Vec<_> = (0..8u64)
        .map(|i| {
            let module = module.clone();
            std::thread::spawn(move || {
                (0..5u64)
                    .map(|j| {
                        module
                            .run(&Task::call("square", &(i * 10 + j)).unwrap())
                            .decode::<u64>()
                            .unwrap()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for (i, thread) in threads.into_iter().enumerate() {
        let i = i as u64;
        assert_eq!(
            thread.join().unwrap(),
            (0..5u64).map(|j| (i * 10 + j).pow(2)).collect::<Vec<_>>()
        );
    }
}

/// Embedders on tokio may call `run` from `spawn_blocking` or even from an
/// async task; both work.
#[test]
fn runs_from_inside_a_tokio_runtime() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let from_blocking = runtime
        .block_on(runtime.spawn_blocking(|| sdk_tasks().run(&Task::call("square", &6u64).unwrap())))
        .unwrap();
    assert_eq!(from_blocking.decode::<u64>().unwrap(), 36);
    let from_async = runtime.block_on(async {
        let limits = Limits::default().timeout(Duration::from_millis(100));
        sdk_tasks().run(&Task::call("sleep_ms", &60_000u64).unwrap().limits(limits))
    });
    assert_eq!(from_async.status, ExitStatus::TimedOut);
}
