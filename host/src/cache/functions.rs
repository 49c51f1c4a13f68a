//! Compiled functions kept across snapshots of one module: Cranelift's
//! incremental compilation cache (wasmtime's `CacheStore`), used while a
//! snapshot compiles.
//!
//! Every snapshot of a module has the module's code; only its memory image
//! and globals' starting values differ. Compiling a snapshot whole (tens of
//! seconds for the Python-function runner's 38 MB) would redo the same
//! work for every initializer argument. So the functions Cranelift compiles
//! for a module's snapshot are written to one entry per module and engine
//! (`.functions`), and the module's next snapshot compiles against it: a
//! function whose Cranelift input is unchanged is taken from there, not
//! compiled again. Cranelift keys each function by a hash of its whole
//! input and of the compiler's settings, so a hit is the very code a compile
//! would make. The entry holds the functions of the latest snapshot only,
//! so it stays the size of one module's code.
//!
//! The entry holds native code, so it is signed and checked like every
//! entry (`mod.rs`, "Trust"). The store acts only inside a `Session`
//! (one at a time per process); outside one, every lookup misses and
//! nothing is kept.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::File;
use std::sync::Arc;

use wasmtime::{CacheStore, Engine};

use super::{Identity, ModuleCache, budget, store, verified_artifact};
use crate::mutex::{Mutex, MutexGuard};

/// The entries' file extension.
const EXTENSION: &str = "functions";

/// Bump when the entry's layout changes.
const FUNCTIONS_FORMAT: &[u8] = b"wasmproc functions 1";

/// The store every engine of this process compiles with.
pub(crate) fn function_store() -> Arc<dyn CacheStore> {
    Arc::new(FunctionStore)
}

/// Cranelift's view of [`OPEN`]: the open session's functions, or nothing.
#[derive(Debug)]
struct FunctionStore;

/// The open session's functions.
static OPEN: Mutex<Option<Functions>> = Mutex::new(None);

/// Held by the open session: one at a time.
static SESSION: Mutex<()> = Mutex::new(());

/// The functions of one session: Cranelift's key of each, and its
/// compiled form as Cranelift serialized it.
#[derive(Default)]
struct Functions {
    /// Those of the module's earlier snapshots not (yet) used.
    earlier: HashMap<Vec<u8>, Vec<u8>>,
    /// Those this session's compile found or made: what the entry holds
    /// next, so that it stays one snapshot's worth however many come.
    used: HashMap<Vec<u8>, Vec<u8>>,
    /// How many the compile made (the entry is then written again).
    added: usize,
    /// How many it found.
    found: usize,
}

impl CacheStore for FunctionStore {
    fn get(&self, key: &[u8]) -> Option<Cow<'_, [u8]>> {
        let mut open = OPEN.lock();
        let functions = open.as_mut()?;
        let code = match functions.used.get(key) {
            Some(code) => code.clone(),
            None => {
                let code = functions.earlier.remove(key)?;
                functions.used.insert(key.to_vec(), code.clone());
                code
            }
        };
        functions.found += 1;
        Some(Cow::Owned(code))
    }

    fn insert(&self, key: &[u8], value: Vec<u8>) -> bool {
        let mut open = OPEN.lock();
        let Some(functions) = open.as_mut() else {
            return false;
        };
        functions.used.insert(key.to_vec(), value);
        functions.added += 1;
        true
    }
}

/// While it lives, compiles find the functions of earlier snapshots of one
/// module and keep the ones they make; [`Session::close`] writes them back.
pub(crate) struct Session<'c> {
    cache: &'c ModuleCache,
    identity: Identity,
    engine: &'c Engine,
    _one_at_a_time: MutexGuard<'static, ()>,
}

impl ModuleCache {
    /// Opens the session of snapshots of the module `base`, compiled by
    /// `engine` (which must compile with [`function_store`]); none when
    /// the cache is off.
    pub(crate) fn functions_of<'c>(
        &'c self,
        engine: &'c Engine,
        base: &Identity,
    ) -> Option<Session<'c>> {
        let (_, key) = self.on.as_ref()?;
        let identity = Identity::of_functions(base);
        let path = self.entry_path(engine, &identity, EXTENSION)?;
        let one_at_a_time = SESSION.lock();
        let earlier = File::open(&path)
            .ok()
            .and_then(|file| {
                budget::mark_used(&path);
                // SAFETY: as for a module's entry (`ModuleCache::load`): the
                // map is only read, here; entries are replaced by rename,
                // never written in place, and a change anyway fails the
                // tag's check.
                let map = unsafe { memmap2::Mmap::map(&file) }.ok()?;
                let functions = verified_artifact(&map, key, identity.as_bytes());
                if functions.is_none() {
                    tracing::info!(
                        target: "wasmproc::cache",
                        "the cache entry {} failed its check: its functions are compiled again",
                        path.display()
                    );
                }
                decode(functions?)
            })
            .unwrap_or_default();
        *OPEN.lock() = Some(Functions {
            earlier,
            ..Functions::default()
        });
        Some(Session {
            cache: self,
            identity,
            engine,
            _one_at_a_time: one_at_a_time,
        })
    }
}

impl<'c> Session<'c> {
    /// The engine the session's compiles use.
    pub(crate) fn compiler(&self) -> &'c Engine {
        self.engine
    }

    /// Ends the session: if its compile made any function, the entry is
    /// replaced by the functions it used (found or made). Best effort.
    pub(crate) fn close(self) {
        let Some(functions) = OPEN.lock().take() else {
            return;
        };
        tracing::debug!(
            target: "wasmproc::cache",
            "functions of earlier snapshots: {} reused, {} compiled",
            functions.found,
            functions.added
        );
        if functions.added == 0 {
            return;
        }
        let (Some(path), Some((_, key))) = (
            self.cache
                .entry_path(self.engine, &self.identity, EXTENSION),
            &self.cache.on,
        ) else {
            return;
        };
        if store(
            &path,
            key,
            self.identity.as_bytes(),
            &encode(&functions.used),
        )
        .is_ok()
            && let Some(dir) = path.parent()
        {
            budget::evict(dir, self.cache.max, &path);
        }
    }
}

impl Drop for Session<'_> {
    /// A session dropped without [`close`](Session::close) (a failed
    /// compile) keeps nothing.
    fn drop(&mut self) {
        OPEN.lock().take();
    }
}

impl Identity {
    /// The identity of the functions entry of snapshots of `base`.
    fn of_functions(base: &Identity) -> Self {
        let mut hasher = blake3::Hasher::new();
        hasher.update(FUNCTIONS_FORMAT);
        hasher.update(base.as_bytes());
        Identity(hasher.finalize())
    }
}

/// The entry's bytes: each function's key and value, each length-prefixed
/// (little-endian `u32`).
fn encode(by_key: &HashMap<Vec<u8>, Vec<u8>>) -> Vec<u8> {
    let size = by_key.iter().map(|(k, v)| 8 + k.len() + v.len()).sum();
    let mut bytes = Vec::with_capacity(size);
    for (key, value) in by_key {
        for part in [key, value] {
            bytes.extend_from_slice(&(part.len() as u32).to_le_bytes());
            bytes.extend_from_slice(part);
        }
    }
    bytes
}

/// The functions in an entry's bytes; none if they are not whole (the tag
/// checked out, so only a bug could make them so).
fn decode(mut bytes: &[u8]) -> Option<HashMap<Vec<u8>, Vec<u8>>> {
    let mut by_key = HashMap::new();
    while !bytes.is_empty() {
        let key = take(&mut bytes)?;
        by_key.insert(key, take(&mut bytes)?);
    }
    Some(by_key)
}

/// The length-prefixed part at the start of `bytes`, taken off them.
fn take(bytes: &mut &[u8]) -> Option<Vec<u8>> {
    let (len, rest) = bytes.split_first_chunk::<4>()?;
    let len = u32::from_le_bytes(*len) as usize;
    let part = rest.get(..len)?.to_vec();
    *bytes = &rest[len..];
    Some(part)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn functions_come_back_as_they_went() {
        let by_key: HashMap<Vec<u8>, Vec<u8>> = [
            (b"one".to_vec(), vec![1, 2, 3]),
            (b"two".to_vec(), Vec::new()),
        ]
        .into();
        assert_eq!(decode(&encode(&by_key)), Some(by_key.clone()));
        let bytes = encode(&by_key);
        // Cut inside a function: refused; between two: the whole ones.
        for cut in 1..bytes.len() {
            let decoded = decode(&bytes[..cut]);
            assert!(decoded.is_none_or(|some| some.len() == 1), "{cut}");
        }
    }
}
