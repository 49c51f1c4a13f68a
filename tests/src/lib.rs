//! Helpers of the integration suite: where the compiled guests and the
//! `wasmproc` binary are, and a runtime with a private cache.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use wasmproc::{Module, Runtime};

/// Paths of the guests compiled by `build.rs`.
pub mod guests {
    include!(concat!(env!("OUT_DIR"), "/guests.rs"));
}

/// One runtime for the whole suite, with a cache directory of its own so
/// tests never touch the user's cache.
pub fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        Runtime::builder()
            .cache_dir(suite_cache_dir())
            .build()
            .expect("the default runtime builds")
    })
}

/// The cache directory shared by the suite's runtime and binary runs.
pub fn suite_cache_dir() -> PathBuf {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("a temporary directory"))
        .path()
        .to_owned()
}

/// The typed-task guest, loaded once.
pub fn sdk_tasks() -> &'static Module {
    static MODULE: OnceLock<Module> = OnceLock::new();
    MODULE.get_or_init(|| runtime().load(guests::SDK_TASKS).expect("sdk-tasks loads"))
}

/// The plain WASI command guest, loaded once.
pub fn wasi_cmd() -> &'static Module {
    static MODULE: OnceLock<Module> = OnceLock::new();
    MODULE.get_or_init(|| runtime().load(guests::WASI_CMD).expect("wasi-cmd loads"))
}

/// The `wasmproc` binary that cargo built beside this test binary.
pub fn binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary knows its path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test binaries live in target/PROFILE/deps");
    let binary = profile_dir.join(format!("wasmproc{}", std::env::consts::EXE_SUFFIX));
    assert!(
        binary.exists(),
        "{} is missing: run the suite with `cargo test` from the workspace root, which builds it",
        binary.display()
    );
    binary
}

/// A `wasmproc` command using the suite's cache, with no inherited env
/// beyond what the binary needs.
pub fn wasmproc() -> Command {
    let mut command = Command::new(binary());
    command
        .env("WASMPROC_CACHE_DIR", suite_cache_dir())
        .stdin(Stdio::null());
    command
}

/// Runs `wasmproc ARGS` and returns its output.
pub fn wasmproc_run(args: &[&str]) -> Output {
    wasmproc().args(args).output().expect("the binary starts")
}

/// The exit code of a finished command (all statuses are codes, never
/// signals, on every OS).
pub fn code(output: &Output) -> i32 {
    output
        .status
        .code()
        .expect("wasmproc exits with a code, not a signal")
}

/// The stdout of a command as text.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The stderr of a command as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}
