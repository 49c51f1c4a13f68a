//! Entry points for fuzzing the parts of the library that read untrusted
//! bytes: the worker-process protocol's frames and module loading. Used by
//! the `cargo fuzz` targets in `fuzz/` and, over a fixed corpus and its
//! mutations, by the test suite (so CI catches regressions on stable).
//! Not an API: each function must only never panic, whatever its input.

use std::sync::OnceLock;

/// The engine settings of the library's pools, for the benchmark that
/// compares them with wasmtime used directly (not an API).
pub use crate::engine::bench_engine_config;

use crate::outcome::Outcome;
use crate::pool::process::protocol::{
    ShareOp, ShareReply, StreamName, ToChild, ToParent, WireTask, read_frame, write_frame,
};
use crate::runtime::Runtime;
use crate::status::ExitStatus;
use crate::task::{Entry, Task};

/// Decodes frames in both directions from `bytes` until the end or the
/// first error.
pub fn worker_frames(bytes: &[u8]) {
    let mut input = bytes;
    while let Ok(Some(_)) = read_frame::<ToChild>(&mut input) {}
    let mut input = bytes;
    while let Ok(Some(_)) = read_frame::<ToParent>(&mut input) {}
}

/// Loads `bytes` as a module (no cache) and describes it.
pub fn load_module(bytes: &[u8]) {
    static RUNTIME: OnceLock<Option<Runtime>> = OnceLock::new();
    let Some(runtime) = RUNTIME.get_or_init(|| {
        Runtime::builder()
            .no_cache()
            .max_instances(1)
            .max_module_functions(1_000)
            .build()
            .ok()
    }) else {
        return;
    };
    if let Ok(module) = runtime.load_bytes("fuzz.wasm", bytes) {
        let _ = module.exports();
        let _ = module.imports();
        let _ = module.resolve(&Entry::Auto);
    }
}

/// Frames as a pool and a worker really exchange them: the seeds of the
/// frame corpus.
pub fn worker_frame_seeds() -> Vec<Vec<u8>> {
    let mut to_child = Vec::new();
    let task = Task::call("square", &7u64)
        .unwrap_or_else(|_| Task::command())
        .args(["a", "b"])
        .env("K", "V");
    for message in [
        ToChild::Run {
            id: 1,
            task: WireTask::from_task(&task, None),
            shares_with_next: true,
        },
        ToChild::Input {
            id: 1,
            bytes: b"input".to_vec(),
        },
        ToChild::InputEnd { id: 1 },
        ToChild::InputFailed {
            id: 1,
            os_code: Some(21),
            message: "Is a directory (os error 21)".into(),
        },
        ToChild::ShareReply {
            id: 1,
            seq: 1,
            reply: ShareReply::Received(Ok(b"7".to_vec())),
        },
        ToChild::Cancel { id: 1 },
    ] {
        let _ = write_frame(&mut to_child, &message);
    }
    let mut to_parent = Vec::new();
    let mut outcome = Outcome::failed(ExitStatus::TimedOut, "too slow");
    outcome.result = Some(b"49".to_vec());
    for message in [
        ToParent::Started { version: 3, pid: 7 },
        ToParent::Ready,
        ToParent::Output {
            id: 1,
            stream: StreamName::Stdout,
            bytes: b"out".to_vec(),
        },
        ToParent::InputTaken { id: 1, bytes: 5 },
        ToParent::Share {
            id: 1,
            seq: 1,
            taken: 0,
            op: ShareOp::Recv {
                grant: 0,
                timeout: -1,
            },
        },
        ToParent::Done {
            id: 1,
            outcome,
            retire: false,
            taken: 1,
        },
    ] {
        let _ = write_frame(&mut to_parent, &message);
    }
    vec![to_child, to_parent]
}
