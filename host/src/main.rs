//! The `wasmproc` binary: runs WebAssembly modules as sandboxed workers.
//! See `wasmproc --help`, and the library crate for the embedding API.

mod cli;

fn main() -> std::process::ExitCode {
    // A pool with process isolation starts this binary as its workers.
    wasmproc::process::run_worker_if_requested();
    cli::main()
}
