//! Fuzzes `wasmproc_cli::fuzzing::command_line`: it must never panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wasmproc_cli::fuzzing::command_line(data));
