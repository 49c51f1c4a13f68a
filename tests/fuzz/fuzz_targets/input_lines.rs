//! Fuzzes `wasmproc_cli::fuzzing::input_lines`: it must never panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wasmproc_cli::fuzzing::input_lines(data));
