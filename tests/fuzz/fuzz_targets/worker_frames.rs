//! Fuzzes `wasmproc::fuzzing::worker_frames`: it must never panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wasmproc::fuzzing::worker_frames(data));
