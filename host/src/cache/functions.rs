//! Compiled functions kept across the compiles of one module: Cranelift's
//! incremental compilation cache (wasmtime's `CacheStore`), used while the
//! module itself compiles, while its instrumented copy compiles for its
//! first snapshot, and while a snapshot compiles.
//!
//! Every snapshot of a module has the module's code; only its memory image
//! and globals' starting values differ. Compiling a snapshot whole (tens of
//! seconds for the Python-function runner's 38 MB) would redo the same
//! work for every initializer argument. So the functions Cranelift compiles
//! for a module are written to one entry per module and engine
//! (`.functions`), and the module's next compile of that code (its
//! instrumented copy's, a snapshot's) compiles against it: a function whose
//! Cranelift input is unchanged is taken from there, not compiled again.
//! Cranelift keys each function by a hash of its whole input and of the
//! compiler's settings, so a hit is the very code a compile would make. The
//! entry holds the functions of the latest compile only (the module's own,
//! then each snapshot's), so it stays the size of one module's code. Its
//! first write is the module's own compile, for any module: which modules
//! will be initialized is not known when they load, and the entry costs
//! one more file of the module's code size (the least recently used go
//! first when the cache is full) against a first snapshot that compiles
//! the module's code once instead of twice.
//!
//! The entry holds native code, so it is signed and checked like every
//! entry (`mod.rs`, "Trust"). Each compile of that code has its own store
//! (`Session`), handed to the engine that compiles it, so that compiles
//! in other threads or runtimes neither wait for it nor see its functions.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use wasmtime::{CacheStore, Engine};

use super::{EntryKind, Identity, ModuleCache, budget, store, verified_artifact};
use crate::mutex::Mutex;

/// Bump when the entry's layout changes.
const FUNCTIONS_FORMAT: &str = "wasmproc functions entry 1";

/// One session's functions, as Cranelift sees them.
struct SessionStore(Mutex<Functions>);

impl std::fmt::Debug for SessionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionStore")
    }
}

/// The functions of one session: Cranelift's key of each, and its
/// compiled form as Cranelift serialized it.
#[derive(Default)]
struct Functions {
    /// Those of the module's earlier compile (its own, or a snapshot's), or
    /// of this session's earlier compile, not (yet) used.
    earlier: HashMap<Vec<u8>, Vec<u8>>,
    /// Those this session's compile found or made: what the entry holds
    /// next, so that it stays one compile's worth however many come.
    used: HashMap<Vec<u8>, Vec<u8>>,
    /// How many the latest compile made.
    added: usize,
    /// How many it found.
    found: usize,
    /// Whether an earlier compile of the session made any (offered to the
    /// latest, they are not in the entry yet).
    made_before: bool,
}

impl CacheStore for SessionStore {
    fn get(&self, key: &[u8]) -> Option<Cow<'_, [u8]>> {
        let mut functions = self.0.lock();
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
        let mut functions = self.0.lock();
        functions.used.insert(key.to_vec(), value);
        functions.added += 1;
        true
    }
}

/// The functions of a module's compile (its own, its instrumented copy's
/// and its first snapshot's, or a later snapshot's): found in its entry,
/// and kept there for the next one by [`Session::close`].
pub(crate) struct Session<'c> {
    cache: &'c ModuleCache,
    identity: Identity,
    /// The tasks' engine, whose compatibility names the entry (the
    /// compiling engine's is the same).
    engine: &'c Engine,
    store: Arc<SessionStore>,
}

impl ModuleCache {
    /// Opens a session of the module `base` for `engine`, with the
    /// functions of its latest compile (its own, or a snapshot's); none
    /// when the cache is off.
    pub(crate) fn functions_of<'c>(
        &'c self,
        engine: &'c Engine,
        base: &Identity,
    ) -> Option<Session<'c>> {
        let (_, key) = self.on.as_ref()?;
        let identity = Identity::of_functions(base);
        let path = self.entry_path(engine, &identity, EntryKind::Functions.extension())?;
        // Read whole, then checked and decoded from that one copy: a write
        // to the file after the check cannot reach Cranelift.
        let earlier = super::regular::read(&path)
            .ok()
            .and_then(|bytes| {
                budget::mark_used(&path);
                let functions = verified_artifact(&bytes, key, identity.as_bytes());
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
        let functions = Functions {
            earlier,
            ..Functions::default()
        };
        Some(Session {
            cache: self,
            identity,
            engine,
            store: Arc::new(SessionStore(Mutex::new(functions))),
        })
    }
}

impl Session<'_> {
    /// The store to compile with (`Config::enable_incremental_compilation`).
    pub(crate) fn store(&self) -> Arc<dyn CacheStore> {
        self.store.clone()
    }

    /// Hands what the session's compile so far used (found or made) to
    /// its next compile as if it came from the entry: only what that one
    /// uses is kept. A first snapshot's instrumented copy and the snapshot
    /// have the same code, so the snapshot finds most functions its
    /// instrumented copy compiled. `compile` names the one that ended, for
    /// the log.
    pub(crate) fn offer_to_next_compile(&self, compile: &str) {
        let mut guard = self.store.0.lock();
        let functions = &mut *guard;
        log_counts(compile, functions);
        functions.earlier.extend(functions.used.drain());
        functions.made_before |= functions.added > 0;
        functions.added = 0;
        functions.found = 0;
    }

    /// Ends the session after `compile` (named for the log), whose entry
    /// is `written`: if its compiles made any function, the entry is
    /// replaced by the functions the latest used (found or made). The
    /// cache's budget then keeps the compile's entry, written just before:
    /// when the two do not fit, the functions go, not the code. Best
    /// effort.
    pub(crate) fn close(self, compile: &str, written: &Identity, extension: &str) {
        let functions = std::mem::take(&mut *self.store.0.lock());
        log_counts(compile, &functions);
        if functions.added == 0 && !functions.made_before {
            return;
        }
        let (Some(path), Some((_, key))) = (
            self.cache.entry_path(
                self.engine,
                &self.identity,
                EntryKind::Functions.extension(),
            ),
            &self.cache.on,
        ) else {
            return;
        };
        let bytes = encode(&functions.used);
        if store(&path, key, self.identity.as_bytes(), &bytes).is_ok()
            && let Some(dir) = path.parent()
        {
            let written = self.cache.entry_path(self.engine, written, extension);
            let keep: Vec<&Path> = written.as_deref().into_iter().collect();
            budget::evict(dir, self.cache.max, &keep);
        }
    }
}

/// Logs (debug) how many functions `compile` found and how many it made.
fn log_counts(compile: &str, functions: &Functions) {
    tracing::debug!(
        target: "wasmproc::cache",
        "{compile}: {} functions found compiled (by an earlier compile of the module's code \
         or within this one), {} compiled",
        functions.found,
        functions.added
    );
}

impl Identity {
    /// The identity of the functions entry of the module `base` (its own
    /// compile's, then its snapshots'): a hash in a domain of its own, so
    /// that no wasm hashes to it.
    fn of_functions(base: &Identity) -> Self {
        let mut hasher = blake3::Hasher::new_derive_key(FUNCTIONS_FORMAT);
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
