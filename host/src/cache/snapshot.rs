//! Snapshots on disk: the wasm an initializer's run left, found again by
//! what made it (the module, the initializer, its argument and grants).
//!
//! An entry has the layout of a compiled-module entry, with the snapshot's
//! key in place of the wasm's hash and the snapshot's wasm as the artifact,
//! and the same tag: a forged or damaged snapshot is not used (it would
//! hand every task state the initializer never built), it is made again.

use std::path::PathBuf;

use super::{ModuleCache, store, verified_artifact};

/// Bump when what an initialization leaves changes for the same inputs
/// (the snapshotter, the SDK's contract).
const SNAPSHOT_FORMAT: &[u8] = b"wasmproc snapshot 1, wasmtime-wizer 48";

/// What identifies a snapshot: a hash of everything that made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SnapshotKey(blake3::Hash);

impl SnapshotKey {
    /// The key of the snapshot left by the initializer `init` of the module
    /// `wasm`, called with `parts` (its argument and grants, each already
    /// in a stable encoding).
    pub(crate) fn new(wasm: &[u8], init: &str, parts: &[&[u8]]) -> Self {
        let mut hasher = blake3::Hasher::new();
        for part in [SNAPSHOT_FORMAT, blake3::hash(wasm).as_bytes(), init.as_bytes()]
            .into_iter()
            .chain(parts.iter().copied())
        {
            // Length-prefixed, so that parts cannot run into each other.
            hasher.update(&(part.len() as u64).to_le_bytes());
            hasher.update(part);
        }
        SnapshotKey(hasher.finalize())
    }
}

impl ModuleCache {
    fn snapshot_path(&self, key: &SnapshotKey) -> Option<PathBuf> {
        let (dir, _) = self.on.as_ref()?;
        Some(dir.join(format!("{}.snapshot", &key.0.to_hex()[..40])))
    }

    /// The snapshot stored under `key`, if there is one and its tag checks
    /// out.
    pub(crate) fn load_snapshot(&self, key: &SnapshotKey) -> Option<Vec<u8>> {
        let path = self.snapshot_path(key)?;
        let (_, secret) = self.on.as_ref()?;
        let mut file = std::fs::read(path).ok()?;
        let wasm_len = verified_artifact(&file, secret, key.0.as_bytes())?.len();
        // The artifact is the file's tail: keep it without copying.
        file.drain(..file.len() - wasm_len);
        Some(file)
    }

    /// Stores a snapshot under `key`; whether it was written (the cache may
    /// be off, or its directory not writable).
    pub(crate) fn store_snapshot(&self, key: &SnapshotKey, wasm: &[u8]) -> bool {
        let (Some(path), Some((_, secret))) = (self.snapshot_path(key), &self.on) else {
            return false;
        };
        store(&path, secret, key.0.as_bytes(), wasm).is_ok()
    }
}
