//! What every example needs: the `classics` guest, built to wasm and
//! loaded.

use std::path::PathBuf;
use std::process::Command;

use wasmproc::{Isolation, Module, ProcessOptions, Runtime};

/// Builds the examples' guest (`guest/examples/classics.rs`) for
/// wasm32-wasip1 and loads it; or loads the file `$WASMPROC_CLASSICS` names
/// (where there is no cargo to build with: the Windows runs under Wine).
pub fn classics() -> Module {
    let runtime = Runtime::builder().build().expect("the runtime builds");
    if let Some(wasm) = std::env::var_os("WASMPROC_CLASSICS") {
        return runtime.load(wasm).expect("the classics guest loads");
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let built = Command::new(cargo)
        .current_dir(&root)
        .args(["build", "--quiet", "--release", "-p", "wasmproc-guest"])
        .args(["--example", "classics", "--target", "wasm32-wasip1"])
        .status()
        .expect("cargo runs");
    assert!(
        built.success(),
        "building the classics guest failed (see above)"
    );
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let wasm = target.join("wasm32-wasip1/release/examples/classics.wasm");
    runtime.load(&wasm).expect("the classics guest loads")
}

/// Process isolation when the example was run with `-- --processes`, else
/// threads. (In process isolation the example's own executable is each
/// worker: `main` calls `run_worker_if_requested` first.)
pub fn isolation_from_args() -> Isolation {
    if std::env::args().any(|a| a == "--processes") {
        Isolation::Process(ProcessOptions::default())
    } else {
        Isolation::Thread
    }
}
