//! The library's fuzz entry points (`wasmproc::fuzzing`, fuzzed for real
//! with `cargo fuzz`, see `tests/fuzz`) over seeds and thousands of their
//! mutations: none may panic. Bounded, so it runs in every test run.

use wasmproc::fuzzing;
use wasmproc_tests::guests;
use wasmproc_tests::mutations::mutations;

#[test]
fn worker_frames_never_panic() {
    let mut seeds = fuzzing::worker_frame_seeds();
    seeds.push(u32::MAX.to_le_bytes().to_vec());
    seeds.push(Vec::new());
    for input in seeds.iter().cloned().chain(mutations(&seeds, 5_000, 13)) {
        fuzzing::worker_frames(&input);
    }
}

#[test]
fn module_loading_never_panics() {
    let wat = |text: &str| wat::parse_str(text).unwrap();
    let seeds = vec![
        wat(r#"(module (memory (export "memory") 1) (func (export "_start")))"#),
        wat(r#"(module
                 (import "wasmproc_v1" "input_len" (func (result i32)))
                 (memory (export "memory") 1)
                 (table 2 funcref)
                 (global i32 (i32.const 7))
                 (data (i32.const 0) "hi")
                 (func (export "wasmproc_task:t") (result i32) (i32.const 0)))"#),
        b"(module (func (export \"_start\")))".to_vec(),
        std::fs::read(guests::WASI_CMD).unwrap()[..4096].to_vec(),
    ];
    for input in seeds.iter().cloned().chain(mutations(&seeds, 400, 17)) {
        fuzzing::load_module(&input);
    }
}
