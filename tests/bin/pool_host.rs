//! A host program with a process pool, built as users are told to build
//! one: `run_worker_if_requested` first thing in `main`. The suite's
//! process pools start it as their worker executable.

fn main() {
    wasmproc::run_worker_if_requested();
    std::process::exit(wasmproc_tests::host_program::main());
}
