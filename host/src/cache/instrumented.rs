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
//!
//! Wizer only adds exports (and, in a component, the functions behind
//! them), so the instrumented copy has the module's code: when a module's
//! first snapshot compiles it, it takes the functions the module's own
//! compile left (`functions.rs`), and the functions it used are kept for
//! the snapshot's compile, which finds most of them there (not all: a
//! function's Cranelift key also holds exception tables left over from
//! the trampolines compiled before it on the same Cranelift context, so
//! some keys differ between compiles; for a small Rust guest the
//! instrumented copy found 422 and compiled 216, the snapshot 586 and 51;
//! the Python runner's instrumented copy compiled in 2.2 s instead of 5.6).

use std::sync::Arc;

use wasmtime::Engine;

use super::compiled::Compiled;
use super::functions::Session;
use super::{CacheStatus, CacheStore, EntryKind, Identity, ModuleCache};

/// The entries' file extension.
const EXTENSION: &str = EntryKind::Instrumented.extension();

impl ModuleCache {
    /// The instrumented module or component `wasm`, from the cache or
    /// compiled and stored. Compiled, with a `session` (a module's first
    /// snapshot's), by the engine `compiler` makes over it, whose functions
    /// the session then offers to the snapshot's compile.
    pub(crate) fn load_or_compile_instrumented<C: Compiled>(
        &self,
        engine: &Engine,
        wasm: &[u8],
        session: Option<&Session<'_>>,
        compiler: impl FnOnce(Arc<dyn CacheStore>) -> Option<Engine>,
    ) -> Result<(C, CacheStatus), wasmtime::Error> {
        let identity = Identity::of_wasm(wasm);
        if let Some(compiled) = self.load(engine, &identity, EXTENSION) {
            tracing::debug!(target: "wasmproc::cache", "cache hit: the instrumented module's compiled code");
            return Ok((compiled, CacheStatus::Hit));
        }
        let compiler = session.and_then(|session| Some((session, compiler(session.store())?)));
        let Some((session, compiler)) = compiler else {
            return self.compile(engine, &identity, EXTENSION, wasm);
        };
        let compiled = self.compile_with(&compiler, engine, &identity, EXTENSION, wasm)?;
        session.offer_to_next_compile("the instrumented copy's compile");
        Ok(compiled)
    }
}
