//! The compiled-module cache on disk.
//!
//! Every module has an identity (`Identity`): the BLAKE3 hash of its wasm,
//! or for a snapshot, a hash of what made it (`snapshot.rs`). An entry's
//! name is a hash of that identity and of the engine's compatibility hash
//! (wasmtime version and every setting that changes the generated code), so
//! a changed module, initializer, wasmtime or setting never finds a stale
//! entry. The file is the artifact (the compiled code, as wasmtime writes
//! it) followed by a trailer: the identity, a tag, and a magic number.
//! Besides compiled modules and snapshots, two kinds of entry only make a
//! module's snapshots faster: its instrumented copy (`instrumented.rs`)
//! and its compiled functions, of its own compile, then of its latest
//! snapshot's (`functions.rs`: not a wasmtime artifact, but signed the
//! same way).
//! Keeping the artifact first lets wasmtime map the file itself: a
//! snapshot's memory image is then mapped copy-on-write from the file,
//! never copied.
//!
//! # Trust
//!
//! Loading an entry runs its native code, so an entry is used only when its
//! tag checks out: a keyed BLAKE3 hash (a MAC) of the identity and the
//! artifact, under a per-user secret key kept outside the cache, in a file
//! only its owner may read (`key`). Damage, an entry made from other wasm
//! or by another build, and an entry forged by anyone without the key
//! (another user who can write the directory, say) all fail the check: the
//! module is compiled again and the entry rewritten. Without a usable key
//! the cache is off, and says why. The check reads the open file that
//! wasmtime then maps, so a file renamed into place meanwhile is not the
//! one loaded.
//!
//! A module file loaded before need not be read again to be known: a
//! record signed with the same key ties the unchanged file (device, inode,
//! size, modification and change times) to its identity (`files.rs`), so
//! a 100 MB module's second load maps its entry without hashing it. The
//! record cannot be forged without the key, and a file changed in any way
//! has another record: it is read and hashed again.
//!
//! Entries are written to a temporary file and renamed into place, so
//! concurrent writers and crashes leave whole files only; the directory is
//! made readable by its owner only. The cache keeps to a size budget,
//! removing the least recently used entries (`budget.rs`).

mod budget;
mod checked;
mod compiled;
mod files;
mod functions;
mod instrumented;
mod key;
mod regular;
mod snapshot;

use std::fs::File;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use wasmtime::Engine;

use crate::error::{Error, ErrorKind};

pub(crate) use budget::parse_budget;
pub use budget::{CACHE_MAX_ENV, CacheEntry, DEFAULT_CACHE_MAX, EntryKind};
pub(crate) use compiled::Compiled;
pub(crate) use files::{KnownFile, ReadStart};
pub(crate) use functions::Session;
pub(crate) use key::default_key_file;
pub(crate) use wasmtime::CacheStore;

/// The last bytes of every entry; bump the digit when the layout changes.
/// The extension of compiled modules' and components' entries.
const COMPILED: &str = EntryKind::Compiled.extension();

const MAGIC: &[u8; 8] = b"WPCACHE4";
const HASH_LEN: usize = 32;
/// The trailer after the artifact: identity, tag, magic.
const TRAILER_LEN: usize = HASH_LEN + HASH_LEN + MAGIC.len();

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

/// What a module is, for the cache: the hash of its wasm, or of what made
/// a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Identity(blake3::Hash);

impl Identity {
    /// The identity of a module loaded from `wasm`. A large module is
    /// hashed on every core: its hash is most of its load from the cache
    /// (the hash is the same either way).
    pub(crate) fn of_wasm(wasm: &[u8]) -> Self {
        if wasm.len() < 1 << 20 {
            return Identity(blake3::hash(wasm));
        }
        let mut hasher = blake3::Hasher::new();
        hasher.update_rayon(wasm);
        Identity(hasher.finalize())
    }

    /// The hash, as bytes (what a worker process is told).
    pub(crate) fn as_bytes(&self) -> &[u8; HASH_LEN] {
        self.0.as_bytes()
    }

    /// The identity whose hash is `bytes`.
    pub(crate) fn from_bytes(bytes: [u8; HASH_LEN]) -> Self {
        Identity(blake3::Hash::from_bytes(bytes))
    }
}

pub(crate) struct ModuleCache {
    /// The directory and the key that signs its entries; `None` when off.
    on: Option<(PathBuf, [u8; key::KEY_LEN])>,
    /// The most bytes the entries may take.
    max: u64,
    /// Why the cache is off, when it was asked for but cannot be used.
    off_because: Option<Error>,
}

impl ModuleCache {
    pub(crate) fn disabled() -> Self {
        ModuleCache {
            on: None,
            max: DEFAULT_CACHE_MAX,
            off_because: None,
        }
    }

    /// A cache in `dir` of at most `max` bytes, its entries signed with
    /// the key in `key_file`; off (with the reason) when there is no usable
    /// key.
    pub(crate) fn in_dir(dir: PathBuf, key_file: Option<&Path>, max: u64) -> Self {
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
                max,
                off_because: None,
            },
            Err(why) => ModuleCache {
                on: None,
                max,
                off_because: Some(why),
            },
        }
    }

    pub(crate) fn dir(&self) -> Option<&Path> {
        self.on.as_ref().map(|(dir, _)| dir.as_path())
    }

    /// The entries, least recently used first.
    pub(crate) fn entries(&self) -> std::io::Result<Vec<CacheEntry>> {
        match self.dir() {
            Some(dir) => budget::entries(dir),
            None => Ok(Vec::new()),
        }
    }

    /// Removes every entry (and the records of module files already
    /// hashed); returns how many entries and their bytes.
    pub(crate) fn clear(&self) -> std::io::Result<(usize, u64)> {
        let (mut count, mut bytes) = (0, 0);
        for entry in self.entries()? {
            if budget::remove(&entry.path) {
                count += 1;
                bytes += entry.bytes;
            }
        }
        if let Some(dir) = self.dir() {
            match std::fs::remove_dir_all(dir.join(files::FILES_DIR)) {
                Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(error),
                _ => {}
            }
        }
        Ok((count, bytes))
    }

    /// The module that the open module `file` holds, when a load hashed it
    /// before and it has not changed since (`files.rs`).
    pub(crate) fn known_file(&self, file: &File) -> Option<KnownFile> {
        let (dir, key) = self.on.as_ref()?;
        files::known(dir, key, file)
    }

    /// Records that the open module `file`, read from `start` on, holds
    /// `known` (best effort).
    pub(crate) fn remember_file(&self, file: &File, known: KnownFile, start: ReadStart) {
        if let Some((dir, key)) = &self.on {
            files::remember(dir, key, file, known, start);
        }
    }

    /// The module or component `identity` from the cache, if it is there
    /// and its tag checks out; nothing is compiled.
    pub(crate) fn load_cached<C: Compiled>(
        &self,
        engine: &Engine,
        identity: &Identity,
    ) -> Option<C> {
        let found = self.load(engine, identity, COMPILED);
        if found.is_some() {
            tracing::debug!(target: "wasmproc::cache", "cache hit: compiled code read from the cache, the module file known unchanged");
        }
        found
    }

    /// Writes the compiled module or component `compiled` (the module
    /// `identity`) back to the cache when its entry is gone (evicted by the
    /// budget, cleared): a worker process that loads the module from the cache by
    /// its identity then finds it, though the module file may have
    /// changed since. Best effort; whether the entry is there now.
    pub(crate) fn restore<C: Compiled>(
        &self,
        engine: &Engine,
        identity: &Identity,
        compiled: &C,
    ) -> bool {
        self.restore_entry(engine, identity, COMPILED, compiled)
    }

    /// [`restore`](Self::restore) for an entry of any kind (`extension`).
    fn restore_entry<C: Compiled>(
        &self,
        engine: &Engine,
        identity: &Identity,
        extension: &str,
        compiled: &C,
    ) -> bool {
        let (Some(path), Some((_, key))) = (self.entry_path(engine, identity, extension), &self.on)
        else {
            return false;
        };
        if path.exists() {
            return true;
        }
        let Ok(artifact) = compiled.serialize() else {
            return false;
        };
        let Ok(written) = store(&path, key, identity.as_bytes(), &artifact) else {
            return false;
        };
        tracing::info!(
            target: "wasmproc::cache",
            "the cache entry of a module in use was gone: written back for its worker processes"
        );
        if let Some(dir) = path.parent() {
            budget::evict(dir, self.max, &[&path]);
        }
        checked::mark_checked(&path, &written, key, identity.as_bytes());
        true
    }

    /// Why the cache is off though a directory was given for it.
    pub(crate) fn off_because(&self) -> Option<&str> {
        self.off_because.as_ref().map(Error::message)
    }

    /// The entry's path for the module `identity` under this engine; its
    /// extension says what it holds (`EntryKind::extension`).
    fn entry_path(&self, engine: &Engine, identity: &Identity, extension: &str) -> Option<PathBuf> {
        let (dir, _) = self.on.as_ref()?;
        let mut key = Blake3Hasher(blake3::Hasher::new());
        key.0.update(identity.as_bytes());
        engine.precompile_compatibility_hash().hash(&mut key);
        let key = key.0.finalize().to_hex();
        Some(dir.join(format!("{}.{extension}", &key[..40])))
    }

    /// Loads the module or component `identity` (`wasm`'s) from the cache,
    /// or compiles it and stores it, with the engine `compiler` makes over
    /// the module's functions session (`functions.rs`) when it makes one:
    /// the module's first snapshot then finds the functions compiled for
    /// the module itself.
    pub(crate) fn load_or_compile<C: Compiled>(
        &self,
        engine: &Engine,
        identity: &Identity,
        wasm: &[u8],
        compiler: impl FnOnce(Arc<dyn CacheStore>) -> Option<Engine>,
    ) -> Result<(C, CacheStatus), wasmtime::Error> {
        if let Some(module) = self.load(engine, identity, COMPILED) {
            tracing::debug!(target: "wasmproc::cache", "cache hit: compiled code read from the cache");
            return Ok((module, CacheStatus::Hit));
        }
        let started = std::time::Instant::now();
        let session = self.functions_of(engine, identity);
        let compiler = session
            .as_ref()
            .and_then(|session| compiler(session.store()));
        let compiled = match (session, compiler) {
            (Some(session), Some(compiler)) => {
                let compiled = self.compile_with(&compiler, engine, identity, COMPILED, wasm);
                if compiled.is_ok() {
                    session.close("the module's compile", identity, COMPILED);
                }
                compiled
            }
            _ => self.compile(engine, identity, COMPILED, wasm),
        };
        if let Ok((_, status)) = &compiled {
            tracing::info!(
                target: "wasmproc::cache",
                "cache miss: compiled {} bytes of wasm in {:.0?} ({status:?})",
                wasm.len(),
                started.elapsed()
            );
        }
        compiled
    }

    /// The module `identity` compiled for `engine`, if the cache holds it
    /// and its tag checks out.
    fn load<C: Compiled>(
        &self,
        engine: &Engine,
        identity: &Identity,
        extension: &str,
    ) -> Option<C> {
        let path = self.entry_path(engine, identity, extension)?;
        let (_, key) = self.on.as_ref()?;
        let file = regular::open(&path, false).ok()?;
        budget::mark_used(&path);
        if !checked::was_checked(&path, &file, key, identity.as_bytes()) {
            // SAFETY: the map is only read, here, and dropped before the
            // file is handed on. The cache directory is its owner's only,
            // and entries are replaced by rename, never written in place:
            // the bytes cannot change under the map. Were they changed by
            // the owner anyway, the check below would read whatever is
            // there (the tag fails) and nothing but this read is affected.
            let map = unsafe { memmap2::Mmap::map(&file) }.ok()?;
            if verified_artifact(&map, key, identity.as_bytes()).is_none() {
                tracing::info!(
                    target: "wasmproc::cache",
                    "the cache entry {} failed its check (damaged, or made by another build or \
                     with another key): it is made again",
                    path.display()
                );
                return None;
            }
            checked::mark_checked(&path, &file, key, identity.as_bytes());
        }
        // SAFETY: `file` is the open entry whose tag was just verified
        // against `identity` under this user's key, or was verified before
        // and is unchanged since (`was_checked`).
        unsafe { Self::from_checked_entry(engine, file) }
    }

    /// The compiled code in the entry open as `file`, whose tag checked
    /// out (now, or before and unchanged since), or which this process
    /// just wrote.
    ///
    /// # Safety
    ///
    /// `file` must be such an entry: its artifact is then one this user's
    /// wasmproc serialized, which wasmtime may map and run.
    unsafe fn from_checked_entry<C: Compiled>(engine: &Engine, file: File) -> Option<C> {
        // SAFETY: `from_entry` requires a file produced by `serialize` (or
        // `precompile`) of the same kind (module or component) and a
        // compatible engine. Its tag is a MAC, under this user's secret key,
        // of the very identity we hold and of the artifact: only this
        // user's wasmproc, having compiled that module,
        // could have made it (a torn, corrupted or forged file fails the
        // check; or checked before, and unchanged since: `checked.rs`; or
        // this process wrote it just now from the module it compiled).
        // wasmtime ignores the trailer after the artifact's sections and
        // rejects an artifact of another version or configuration with an
        // error. The file is the one just checked (the open handle, not a
        // path that could have been renamed over). A module and a component
        // never share an identity (the hash of different wasm), and wasmtime
        // refuses an artifact of the other kind with an error.
        unsafe { C::from_entry(engine, file, TRAILER_LEN) }.ok()
    }

    /// Compiles `wasm` (the module `identity`) and stores it. When stored,
    /// the module is loaded back from its entry, so that its memory image
    /// maps the file rather than a copy.
    fn compile<C: Compiled>(
        &self,
        engine: &Engine,
        identity: &Identity,
        extension: &str,
        wasm: &[u8],
    ) -> Result<(C, CacheStatus), wasmtime::Error> {
        self.compile_with(engine, engine, identity, extension, wasm)
    }

    /// [`compile`](Self::compile) with another engine, `compiler`, whose
    /// code `engine` can load (the same settings): what it compiles reaches
    /// `engine` through the entry, or, when none is written, as its artifact
    /// loaded. With the cache off and no other compiler, `engine` compiles
    /// it itself.
    fn compile_with<C: Compiled>(
        &self,
        compiler: &Engine,
        engine: &Engine,
        identity: &Identity,
        extension: &str,
        wasm: &[u8],
    ) -> Result<(C, CacheStatus), wasmtime::Error> {
        let mut phase = Phases::start();
        let entry = self
            .entry_path(engine, identity, extension)
            .zip(self.on.as_ref());
        if entry.is_none() && Engine::same(compiler, engine) {
            let compiled = C::compile(compiler, wasm)?;
            phase.done("compile");
            return Ok((compiled, CacheStatus::Uncached));
        }
        // Compiled straight to the artifact: the code `engine` runs comes
        // from the entry (mapped), or from the artifact should no entry be
        // written, so a loaded copy here would be thrown away.
        let artifact = C::precompile(compiler, wasm)?;
        phase.done("compile");
        // Code `engine` runs when it does not come from the entry: the
        // artifact loaded. `compiler` has `engine`'s settings, so what makes
        // this fail (a module past the instance pool's limits, which only
        // `engine` has) would fail a compile by `engine` too: its error is
        // the answer.
        // SAFETY: `artifact` is what `precompile` made just now, in this
        // process, with `compiler`; wasmtime refuses it with an error if
        // `engine` is not compatible with `compiler`.
        let usable = || unsafe { C::from_bytes(engine, &artifact) };
        let Some((path, (_, key))) = entry else {
            return Ok((usable()?, CacheStatus::Uncached));
        };
        let existed = path.exists();
        let stored = store(&path, key, identity.as_bytes(), &artifact);
        phase.done("sign and write the cache entry");
        let Ok(written) = stored else {
            return Ok((usable()?, CacheStatus::Uncached));
        };
        if let Some(dir) = path.parent() {
            budget::evict(dir, self.max, &[&path]);
        }
        phase.done("keep the cache in its budget");
        let status = if existed {
            CacheStatus::Rebuilt
        } else {
            CacheStatus::Compiled
        };
        // The entry just written is known good: it is recorded as checked
        // and mapped from the handle that wrote it, not hashed again (a
        // snapshot's tens of megabytes).
        checked::mark_checked(&path, &written, key, identity.as_bytes());
        // SAFETY: `written` is the handle this process just wrote the
        // artifact `precompile` made to.
        let loaded = unsafe { Self::from_checked_entry(engine, written) };
        phase.done("map the entry");
        match loaded {
            Some(mapped) => Ok((mapped, status)),
            // An entry `engine` cannot load goes, or every load would map
            // it, fail and write it again.
            None => {
                budget::remove(&path);
                Ok((usable()?, CacheStatus::Uncached))
            }
        }
    }
}

/// The tag of an entry: a keyed hash of the identity and the artifact. A
/// snapshot's artifact holds its memory (tens of megabytes): every core
/// hashes a part.
fn tag(key: &[u8; key::KEY_LEN], identity: &[u8; HASH_LEN], artifact: &[u8]) -> blake3::Hash {
    let mut hasher = blake3::Hasher::new_keyed(key);
    hasher.update(identity);
    hasher.update_rayon(artifact);
    hasher.finalize()
}

/// The artifact of an entry, if the entry was made for `identity` and its
/// tag checks out under `key`.
fn verified_artifact<'f>(
    file: &'f [u8],
    key: &[u8; key::KEY_LEN],
    identity: &[u8; HASH_LEN],
) -> Option<&'f [u8]> {
    let artifact_len = file.len().checked_sub(TRAILER_LEN)?;
    let (artifact, trailer) = file.split_at(artifact_len);
    let (claimed_identity, rest) = trailer.split_at(HASH_LEN);
    let (claimed, magic) = rest.split_at(HASH_LEN);
    if magic != MAGIC || claimed_identity != identity {
        return None;
    }
    let claimed = blake3::Hash::from_bytes(claimed.try_into().ok()?);
    // `blake3::Hash` compares in constant time.
    (tag(key, identity, artifact) == claimed).then_some(artifact)
}

/// Writes the entry of `artifact` (the module `identity`) to `path`; the
/// file written, open.
fn store(
    path: &Path,
    key: &[u8; key::KEY_LEN],
    identity: &[u8; HASH_LEN],
    artifact: &[u8],
) -> std::io::Result<File> {
    let tag = tag(key, identity, artifact);
    write_whole(path, &[artifact, identity, tag.as_bytes(), MAGIC])
}

/// Writes `bytes` to `path` whole or not at all.
fn store_bytes(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_whole(path, &[bytes]).map(drop)
}

/// Writes `parts` to a temporary file in `path`'s directory (made private
/// if new) and renames it into place; the file, open (for reading too).
fn write_whole(path: &Path, parts: &[&[u8]]) -> std::io::Result<File> {
    let dir = path.parent().unwrap_or(Path::new("."));
    key::create_private_dir(dir)?;
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    for part in parts {
        file.write_all(part)?;
    }
    file.persist(path).map_err(|e| e.error)
}

/// Timings of the phases of a long job (an initialization, compiling and
/// storing a snapshot), logged at `-v`: where a first run's time goes.
pub(crate) struct Phases(std::time::Instant);

impl Phases {
    pub(crate) fn start() -> Phases {
        Phases(std::time::Instant::now())
    }

    /// Logs the time since the last phase as `what`'s.
    pub(crate) fn done(&mut self, what: &str) {
        let now = std::time::Instant::now();
        tracing::info!(target: "wasmproc::init", "{what}: {:.1?}", now - self.0);
        self.0 = now;
    }
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

    fn entry(key: &[u8; key::KEY_LEN], identity: &[u8; HASH_LEN], artifact: &[u8]) -> Vec<u8> {
        let mut file = artifact.to_vec();
        file.extend_from_slice(identity);
        file.extend_from_slice(tag(key, identity, artifact).as_bytes());
        file.extend_from_slice(MAGIC);
        file
    }

    #[test]
    fn the_tag_rejects_corruption() {
        let wasm = *blake3::hash(b"wasm").as_bytes();
        let artifact = b"compiled code".to_vec();
        let file = entry(&KEY, &wasm, &artifact);
        assert_eq!(verified_artifact(&file, &KEY, &wasm), Some(&artifact[..]));

        let mut flipped = file.clone();
        flipped[0] ^= 1;
        assert_eq!(verified_artifact(&flipped, &KEY, &wasm), None);
        assert_eq!(verified_artifact(&file[1..], &KEY, &wasm), None);
        assert_eq!(verified_artifact(b"WPCACHE4", &KEY, &wasm), None);
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
