//! The `wasmproc` binary: runs WebAssembly modules as sandboxed workers.
//! See `wasmproc --help`, and the `wasmproc` library crate for the
//! embedding API: this binary is a thin layer of flags and printing over it.

fn main() -> std::process::ExitCode {
    // A pool with process isolation starts this binary as its workers.
    wasmproc::run_worker_if_requested();
    wasmproc_cli::main()
}
