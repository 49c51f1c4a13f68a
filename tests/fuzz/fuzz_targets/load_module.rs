//! Fuzzes `wasmproc::fuzzing::load_module`: it must never panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wasmproc::fuzzing::load_module(data));
