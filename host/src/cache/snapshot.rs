//! Snapshots in the cache: the compiled module an initializer's run left,
//! found again by what made it (the module, the initializer, its argument
//! and grants), without running the initializer or reading any wasm.
//!
//! A snapshot's entry is a compiled-module entry (same trailer, same tag)
//! whose identity is that hash; its name ends in `.snapshot`. A forged or
//! damaged snapshot is not used (it would hand every task state the
//! initializer never built): it is made again.

use std::sync::Arc;

use wasmtime::Engine;

use super::compiled::Compiled;
use super::functions::Session;
use super::{CacheStatus, CacheStore, EntryKind, Identity, ModuleCache};

/// Bump when what an initialization leaves changes for the same inputs
/// (the snapshotter, the SDK's contract).
const SNAPSHOT_FORMAT: &[u8] = b"wasmproc snapshot 1, wasmtime-wizer 48";

/// The entries' file extension.
const EXTENSION: &str = EntryKind::Snapshot.extension();

impl Identity {
    /// The identity of the snapshot left by the initializer `init` of the
    /// module `base`, called with `parts` (its argument and grants, each in
    /// a stable encoding).
    pub(crate) fn of_snapshot(base: &Identity, init: &str, parts: &[&[u8]]) -> Self {
        let mut hasher = blake3::Hasher::new();
        for part in [SNAPSHOT_FORMAT, base.as_bytes(), init.as_bytes()]
            .into_iter()
            .chain(parts.iter().copied())
        {
            // Length-prefixed, so that parts cannot run into each other.
            hasher.update(&(part.len() as u64).to_le_bytes());
            hasher.update(part);
        }
        Identity(hasher.finalize())
    }
}

impl ModuleCache {
    /// The snapshot `identity`, compiled for `engine`, if the cache holds
    /// it.
    pub(crate) fn load_snapshot<C: Compiled>(
        &self,
        engine: &Engine,
        identity: &Identity,
    ) -> Option<C> {
        self.load(engine, identity, EXTENSION)
    }

    /// Writes the compiled snapshot `identity` back when its entry is gone
    /// (as [`restore`](ModuleCache::restore) does for modules): a worker
    /// process finds it there instead of initializing again from its base,
    /// whose file may have changed since.
    pub(crate) fn restore_snapshot<C: Compiled>(
        &self,
        engine: &Engine,
        identity: &Identity,
        compiled: &C,
    ) -> bool {
        self.restore_entry(engine, identity, EXTENSION, compiled)
    }

    /// Compiles the snapshot `identity` (a core module or a component)
    /// from its `wasm` for `engine`, and stores it. With a `session` (the
    /// functions of the base module's own compile or earlier snapshot, and
    /// of its instrumented copy: `functions.rs`), `compiler` makes an engine of
    /// `engine`'s settings that compiles with them; its code reaches
    /// `engine` through the entry.
    pub(crate) fn compile_snapshot<C: Compiled>(
        &self,
        engine: &Engine,
        compiler: impl FnOnce(Arc<dyn CacheStore>) -> Option<Engine>,
        session: Option<Session<'_>>,
        identity: &Identity,
        wasm: &[u8],
    ) -> Result<(C, CacheStatus), wasmtime::Error> {
        let compiler = session
            .as_ref()
            .and_then(|session| compiler(session.store()));
        let (Some(session), Some(compiler)) = (session, compiler) else {
            return self.compile(engine, identity, EXTENSION, wasm);
        };
        let compiled = self.compile_with(&compiler, engine, identity, EXTENSION, wasm)?;
        session.close("the snapshot's compile", identity, EXTENSION);
        Ok(compiled)
    }
}
