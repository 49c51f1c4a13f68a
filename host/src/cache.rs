//! The compiled-module cache on disk.
//!
//! An entry's name is the BLAKE3 hash of the wasm bytes and of the engine's
//! compatibility hash (wasmtime version and every setting that changes the
//! generated code), so a changed module, wasmtime or setting never finds a
//! stale entry. The file holds a magic header, the BLAKE3 hash of the wasm
//! it was compiled from, a BLAKE3 checksum of the artifact, and the
//! artifact: an entry that is truncated, corrupted, made from other wasm or
//! by an incompatible build is detected, recompiled and rewritten, never
//! trusted. Entries are written to a temporary file and renamed into place,
//! so concurrent writers and crashes leave whole files only.
//!
//! The checksum detects damage, not tampering: whoever can write the cache
//! directory can run native code as the host, as with any compiler cache.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

use wasmtime::Engine;

/// The first bytes of every entry; bump the digit when the layout changes.
const MAGIC: &[u8; 8] = b"WPCACHE2";
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
    dir: Option<PathBuf>,
}

impl ModuleCache {
    pub(crate) fn disabled() -> Self {
        ModuleCache { dir: None }
    }

    pub(crate) fn in_dir(dir: PathBuf) -> Self {
        ModuleCache { dir: Some(dir) }
    }

    pub(crate) fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// The entry's path for these wasm bytes under this engine.
    pub(crate) fn entry_path(&self, engine: &Engine, wasm: &[u8]) -> Option<PathBuf> {
        let dir = self.dir.as_ref()?;
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
        let Some(path) = self.entry_path(engine, wasm) else {
            return Ok((wasmtime::Module::new(engine, wasm)?, CacheStatus::Uncached));
        };
        let wasm_hash = blake3::hash(wasm);
        let mut existed = false;
        if let Ok(file) = std::fs::read(&path) {
            existed = true;
            if let Some(artifact) = verified_artifact(&file, wasm_hash.as_bytes()) {
                // SAFETY: `Module::deserialize` requires bytes produced by
                // `Engine::precompile_module` of a compatible engine. The
                // entry names the very wasm we hold and its checksum
                // matches, so these are exactly the bytes this cache wrote
                // after compiling that wasm (a torn or corrupted file fails
                // the check), and wasmtime itself rejects an artifact of
                // another version or configuration with an error. The cache
                // directory is trusted as the host's own files are.
                if let Ok(module) = unsafe { wasmtime::Module::deserialize(engine, artifact) } {
                    return Ok((module, CacheStatus::Hit));
                }
            }
        }
        let module = wasmtime::Module::new(engine, wasm)?;
        let stored = module
            .serialize()
            .and_then(|artifact| Ok(store(&path, wasm_hash.as_bytes(), &artifact)?));
        let status = match stored {
            Ok(()) if existed => CacheStatus::Rebuilt,
            Ok(()) => CacheStatus::Compiled,
            Err(_) => CacheStatus::Uncached,
        };
        Ok((module, status))
    }
}

/// The artifact inside an entry, if the entry was made from the wasm that
/// hashes to `wasm_hash` and its checksum is intact.
fn verified_artifact<'f>(file: &'f [u8], wasm_hash: &[u8; HASH_LEN]) -> Option<&'f [u8]> {
    let rest = file.strip_prefix(MAGIC.as_slice())?;
    let rest = rest.strip_prefix(wasm_hash.as_slice())?;
    if rest.len() < HASH_LEN {
        return None;
    }
    let (checksum, artifact) = rest.split_at(HASH_LEN);
    (blake3::hash(artifact).as_bytes() == checksum).then_some(artifact)
}

fn store(path: &Path, wasm_hash: &[u8; HASH_LEN], artifact: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    file.write_all(MAGIC)?;
    file.write_all(wasm_hash)?;
    file.write_all(blake3::hash(artifact).as_bytes())?;
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

    fn entry(wasm_hash: &[u8; HASH_LEN], artifact: &[u8]) -> Vec<u8> {
        let mut file = MAGIC.to_vec();
        file.extend_from_slice(wasm_hash);
        file.extend_from_slice(blake3::hash(artifact).as_bytes());
        file.extend_from_slice(artifact);
        file
    }

    #[test]
    fn checksum_rejects_corruption() {
        let wasm = *blake3::hash(b"wasm").as_bytes();
        let artifact = b"compiled code".to_vec();
        let file = entry(&wasm, &artifact);
        assert_eq!(verified_artifact(&file, &wasm), Some(&artifact[..]));

        let mut flipped = file.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert_eq!(verified_artifact(&flipped, &wasm), None);
        assert_eq!(verified_artifact(&file[..file.len() - 1], &wasm), None);
        assert_eq!(verified_artifact(b"WPCACHE2short", &wasm), None);
        assert_eq!(
            verified_artifact(b"not a cache entry at all, wrong magic", &wasm),
            None
        );
    }

    #[test]
    fn entry_of_other_wasm_is_rejected() {
        let wasm = *blake3::hash(b"wasm").as_bytes();
        let other = *blake3::hash(b"other wasm").as_bytes();
        let file = entry(&other, b"compiled code");
        assert_eq!(verified_artifact(&file, &wasm), None);
    }
}
