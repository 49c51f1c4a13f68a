//! The `wasmproc` binary: runs WebAssembly modules as sandboxed workers.
//! See `wasmproc --help`, and the library crate for the embedding API.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
