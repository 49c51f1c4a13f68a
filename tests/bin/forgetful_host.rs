//! A host program with a process pool that forgets to call
//! `run_worker_if_requested` in `main`: started as a worker, it runs the
//! program again. wasmproc must stop that at once, not spawn without end.

fn main() {
    std::process::exit(wasmproc_tests::host_program::main());
}
