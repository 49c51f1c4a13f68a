//! The compiled-module cache on disk.
//!
//! An entry's name is the BLAKE3 hash of the wasm bytes and of the engine's
//! compatibility hash (wasmtime version and every setting that changes the
//! generated code), so a changed module, wasmtime or setting never finds a
//! stale entry. The file holds a magic header, the BLAKE3 hash of the wasm
//! it was compiled from, a tag, and the artifact (the compiled code).
//!
//! # Trust
//!
//! Loading an entry runs its native code, so an entry is used only when its
//! tag checks out: a keyed BLAKE3 hash (a MAC) of the wasm's hash and the
//! artifact, under a per-user secret key kept outside the cache, in a file
//! only its owner may read (`key`). Damage, an entry made from other wasm
//! or by another build, and an entry forged by anyone without the key
//! (another user who can write the directory, say) all fail the check: the
//! module is compiled again and the entry rewritten. Without a usable key
//! the cache is off, and says why.
//!
//! Snapshots (`snapshot.rs`) are kept beside the compiled modules, signed
//! the same way.
//!
//! Entries are written to a temporary file and renamed into place, so
//! concurrent writers and crashes leave whole files only; the directory is
//! made readable by its owner only.

mod key;
mod snapshot;

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

use wasmtime::Engine;

use crate::error::{Error, ErrorKind};

pub(crate) use key::default_key_file;
pub(crate) use snapshot::SnapshotKey;

/// The first bytes of every entry; bump the digit when the layout changes.
const MAGIC: &[u8; 8] = b"WPCACHE3";
const HASH_LEN: usize = 32;

/// How a module was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CacheStatus {
    /// Loaded from the cache; nothing was compiled.
    Hit,
    /// Compiled and written to the cache.
    Compiled,
    /// The entry was corrupt or stale: compiled again and rewritten.
    Rebuilt,
    /// Compiled; the cache is off or could not be written (the module still
    /// runs).
    Uncached,
}

pub(crate) struct ModuleCache {
    /// The directory and the key that signs its entries; `None` when off.
    on: Option<(PathBuf, [u8; key::KEY_LEN])>,
    /// Why the cache is off, when it was asked for but cannot be used.
    off_because: Option<Error>,
}

impl ModuleCache {
    pub(crate) fn disabled() -> Self {
        ModuleCache {
            on: None,
            off_because: None,
        }
    }

    /// A cache in `dir`, its entries signed with the key in `key_file`; off
    /// (with the reason) when there is no usable key.
    pub(crate) fn in_dir(dir: PathBuf, key_file: Option<&Path>) -> Self {
        let key = match key_file {
            Some(path) => key::load_or_create(path),
            None => Err(Error::new(
                ErrorKind::Setup,
                "no configuration directory to keep the cache key in: set WASMPROC_CACHE_KEY_FILE",
            )),
        };
        match key {
            Ok(key) => ModuleCache {
                on: Some((dir, key)),
                off_because: None,
            },
            Err(why) => ModuleCache {
                on: None,
                off_because: Some(why),
            },
        }
    }

    pub(crate) fn dir(&self) -> Option<&Path> {
        self.on.as_ref().map(|(dir, _)| dir.as_path())
    }

    /// Why the cache is off though a directory was given for it.
    pub(crate) fn off_because(&self) -> Option<&str> {
        self.off_because.as_ref().map(Error::message)
    }

    /// The entry's path for these wasm bytes under this engine.
    pub(crate) fn entry_path(&self, engine: &Engine, wasm: &[u8]) -> Option<PathBuf> {
        let (dir, _) = self.on.as_ref()?;
        let mut key = Blake3Hasher(blake3::Hasher::new());
        key.0.update(wasm);
        engine.precompile_compatibility_hash().hash(&mut key);
        let key = key.0.finalize().to_hex();
        Some(dir.join(format!("{}.cwasm", &key[..40])))
    }

    /// Loads the module from the cache, or compiles it and stores it.
    pub(crate) fn load_or_compile(
        &self,
        engine: &Engine,
        wasm: &[u8],
    ) -> Result<(wasmtime::Module, CacheStatus), wasmtime::Error> {
        let (Some(path), Some((_, key))) = (self.entry_path(engine, wasm), &self.on) else {
            return Ok((wasmtime::Module::new(engine, wasm)?, CacheStatus::Uncached));
        };
        let wasm_hash = blake3::hash(wasm);
        let mut existed = false;
        if let Ok(file) = std::fs::read(&path) {
            existed = true;
            if let Some(artifact) = verified_artifact(&file, key, wasm_hash.as_bytes()) {
                // SAFETY: `Module::deserialize` requires bytes produced by
                // `Module::serialize` (or `Engine::precompile_module`) of a
                // compatible engine. The entry's tag is a MAC, under this
                // user's secret key, of the very wasm we hold and of these
                // bytes: only this user's wasmproc, having compiled that
                // wasm, could have made it (a torn, corrupted or forged
                // file fails the check). wasmtime itself rejects an artifact
                // of another version or configuration with an error.
                if let Ok(module) = unsafe { wasmtime::Module::deserialize(engine, artifact) } {
                    return Ok((module, CacheStatus::Hit));
                }
            }
        }
        let module = wasmtime::Module::new(engine, wasm)?;
        let stored = module
            .serialize()
            .and_then(|artifact| Ok(store(&path, key, wasm_hash.as_bytes(), &artifact)?));
        let status = match stored {
            Ok(()) if existed => CacheStatus::Rebuilt,
            Ok(()) => CacheStatus::Compiled,
            Err(_) => CacheStatus::Uncached,
        };
        Ok((module, status))
    }
}

/// The tag of an entry: a keyed hash of the wasm's hash and the artifact.
fn tag(key: &[u8; key::KEY_LEN], wasm_hash: &[u8; HASH_LEN], artifact: &[u8]) -> blake3::Hash {
    let mut hasher = blake3::Hasher::new_keyed(key);
    hasher.update(wasm_hash);
    hasher.update(artifact);
    hasher.finalize()
}

/// The artifact inside an entry, if the entry was made from the wasm that
/// hashes to `wasm_hash` and its tag checks out under `key`.
fn verified_artifact<'f>(
    file: &'f [u8],
    key: &[u8; key::KEY_LEN],
    wasm_hash: &[u8; HASH_LEN],
) -> Option<&'f [u8]> {
    let rest = file.strip_prefix(MAGIC.as_slice())?;
    let rest = rest.strip_prefix(wasm_hash.as_slice())?;
    if rest.len() < HASH_LEN {
        return None;
    }
    let (claimed, artifact) = rest.split_at(HASH_LEN);
    let claimed = blake3::Hash::from_bytes(claimed.try_into().ok()?);
    // `blake3::Hash` compares in constant time.
    (tag(key, wasm_hash, artifact) == claimed).then_some(artifact)
}

fn store(
    path: &Path,
    key: &[u8; key::KEY_LEN],
    wasm_hash: &[u8; HASH_LEN],
    artifact: &[u8],
) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    key::create_private_dir(dir)?;
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    file.write_all(MAGIC)?;
    file.write_all(wasm_hash)?;
    file.write_all(tag(key, wasm_hash, artifact).as_bytes())?;
    file.write_all(artifact)?;
    file.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Feeds `Hash` output into BLAKE3, whose result is stable across Rust
/// versions (std's `DefaultHasher` is not).
struct Blake3Hasher(blake3::Hasher);

impl Hasher for Blake3Hasher {
    fn finish(&self) -> u64 {
        let hash = self.0.finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&hash.as_bytes()[..8]);
        u64::from_le_bytes(first)
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; key::KEY_LEN] = [7; key::KEY_LEN];

    fn entry(key: &[u8; key::KEY_LEN], wasm_hash: &[u8; HASH_LEN], artifact: &[u8]) -> Vec<u8> {
        let mut file = MAGIC.to_vec();
        file.extend_from_slice(wasm_hash);
        file.extend_from_slice(tag(key, wasm_hash, artifact).as_bytes());
        file.extend_from_slice(artifact);
        file
    }

    #[test]
    fn the_tag_rejects_corruption() {
        let wasm = *blake3::hash(b"wasm").as_bytes();
        let artifact = b"compiled code".to_vec();
        let file = entry(&KEY, &wasm, &artifact);
        assert_eq!(verified_artifact(&file, &KEY, &wasm), Some(&artifact[..]));

        let mut flipped = file.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert_eq!(verified_artifact(&flipped, &KEY, &wasm), None);
        assert_eq!(
            verified_artifact(&file[..file.len() - 1], &KEY, &wasm),
            None
        );
        assert_eq!(verified_artifact(b"WPCACHE3short", &KEY, &wasm), None);
        assert_eq!(
            verified_artifact(b"not a cache entry at all, wrong magic", &KEY, &wasm),
            None
        );
    }

    #[test]
    fn an_entry_of_other_wasm_is_rejected() {
        let wasm = *blake3::hash(b"wasm").as_bytes();
        let other = *blake3::hash(b"other wasm").as_bytes();
        let file = entry(&KEY, &other, b"compiled code");
        assert_eq!(verified_artifact(&file, &KEY, &wasm), None);
    }

    /// Whoever lacks the key cannot make an entry that is accepted, even
    /// with the right header and a self-consistent checksum.
    #[test]
    fn an_entry_signed_with_another_key_is_rejected() {
        let wasm = *blake3::hash(b"wasm").as_bytes();
        let forged = entry(&[9; key::KEY_LEN], &wasm, b"someone else's code");
        assert_eq!(verified_artifact(&forged, &KEY, &wasm), None);
    }
}
