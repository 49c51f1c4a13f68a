//! The `wasmproc` binary's tests: real guests (compiled by the
//! `wasmproc-tests` build script) run through the real binary, which cargo
//! builds for this test and names in `CARGO_BIN_EXE_wasmproc`.
//!
//! Built as a test of the `wasmproc-cli` package (see its Cargo.toml), the
//! only place that knows where the binary is.

use std::path::Path;
use std::process::{Command, Output, Stdio};

// Help, version and unknown subcommands: no guest needed.
mod smoke;
// `wasmproc run`, `inspect` and `compile`: flags, outputs, exit codes.
mod run;
// `wasmproc map`: NDJSON in and out, per-line statuses, the run's exit code.
mod map;
// `--init` on `run`, `map` and `compile`; the initializers `inspect` lists.
mod init;
// Process isolation through the binary: no worker outlives its parent.
mod isolation;
// `wasmproc serve`: real sockets, log lines, a clean stop.
mod serve;
// `worker --nats`, `map`/`run --nats`: a real NATS server, hosts killed.
mod cluster;
// Careless and hostile use: typos, endless inputs, closed pipes, limits.
mod hardening;
// Bounded relays and signals that always work: readers that never read.
mod bounded;
// The command line's fuzz entry points over seeds and mutations: no panic.
mod fuzzed;
// WASI preview 1 conformance: the vendored wasi-testsuite, test by test.
mod wasi_testsuite;
// `--invoke` (reactors, any exported function) and `--stub-imports`.
mod invoke;
// Argument shapes: records' fields in `inspect`, complete examples, handlers.
mod shapes;
// The README's `wasmproc` commands, run in order as written (bash, Unix).
#[cfg(unix)]
mod readme;
// WASI 0.2 command components under `run`, `map`, `serve` and `inspect`.
mod components;
mod typed_components;
// SDK guests built for wasm32-wasip2: components through the SDK's WIT contract.
mod sdk_components;

/// The binary under test.
fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_wasmproc"))
}

/// A `wasmproc` command using the suite's cache, with an empty stdin.
fn wasmproc() -> Command {
    let mut command = Command::new(binary());
    command
        .env("WASMPROC_CACHE_DIR", wasmproc_tests::suite_cache_dir())
        .env(
            "WASMPROC_CACHE_KEY_FILE",
            wasmproc_tests::suite_cache_key_file(),
        )
        .stdin(Stdio::null());
    command
}

/// A command's stdout as JSON lines (what `map` writes).
fn lines(output: &Output) -> Vec<serde_json::Value> {
    wasmproc_tests::stdout(output)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect()
}

/// A temporary file holding `text` (a `map` input).
fn input_file(text: &str) -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), text).unwrap();
    file
}

/// Runs `wasmproc ARGS` and returns its output.
fn wasmproc_run(args: &[&str]) -> Output {
    wasmproc().args(args).output().expect("the binary starts")
}
