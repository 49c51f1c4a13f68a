//! Instrumented copies in the cache: a module as wasmtime-wizer instruments
//! it to run an initializer in (its globals and memories exported),
//! compiled. The instrumented wasm depends on the module only, not on the
//! initializer or its argument, so one entry serves every snapshot of that
//! module: a new initializer argument costs one compile (the snapshot's),
//! not two. For a large module (the Python-function runner's 38 MB) each
//! compile is most of a snapshot's cost.
//!
//! An entry's identity is the hash of the instrumented wasm itself, so a
//! new wizer that instruments differently never finds an old entry.

use wasmtime::Engine;

use super::compiled::Compiled;
use super::{CacheStatus, EntryKind, Identity, ModuleCache};

/// The entries' file extension.
const EXTENSION: &str = EntryKind::Instrumented.extension();

impl ModuleCache {
    /// The instrumented module or component `wasm`, from the cache or
    /// compiled and stored.
    pub(crate) fn load_or_compile_instrumented<C: Compiled>(
        &self,
        engine: &Engine,
        wasm: &[u8],
    ) -> Result<(C, CacheStatus), wasmtime::Error> {
        let identity = Identity::of_wasm(wasm);
        if let Some(compiled) = self.load(engine, &identity, EXTENSION) {
            tracing::debug!(target: "wasmproc::cache", "cache hit: the instrumented module's compiled code");
            return Ok((compiled, CacheStatus::Hit));
        }
        self.compile(engine, &identity, EXTENSION, wasm)
    }
}
