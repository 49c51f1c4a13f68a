//! What the cache holds: compiled core modules and compiled components,
//! each compiled, serialized and loaded back its own way.

use std::fs::File;

use wasmtime::Engine;
use wasmtime::component::Component;

/// Compiled code the cache can store and load: a core module or a
/// component.
pub(crate) trait Compiled: Sized {
    /// Compiles `wasm` for `engine`.
    fn compile(engine: &Engine, wasm: &[u8]) -> wasmtime::Result<Self>;

    /// Compiles `wasm` for `engine` into the artifact to store, without
    /// loading it: the same bytes as [`Compiled::serialize`] of
    /// [`Compiled::compile`]'s result, without the copy into executable
    /// memory and the copy back out (a snapshot's tens of megabytes each).
    fn precompile(engine: &Engine, wasm: &[u8]) -> wasmtime::Result<Vec<u8>>;

    /// The artifact to store.
    fn serialize(&self) -> wasmtime::Result<Vec<u8>>;

    /// Loads the artifact at the start of `file`, which ends with a trailer
    /// of `trailer_len` bytes that is not part of it.
    ///
    /// # Safety
    ///
    /// The artifact must have been made by [`Compiled::serialize`] or
    /// [`Compiled::precompile`] of this kind, for an engine compatible with
    /// `engine` (wasmtime runs its native code), and the file must not
    /// change while it is loaded.
    unsafe fn from_entry(engine: &Engine, file: File, trailer_len: usize)
    -> wasmtime::Result<Self>;

    /// Loads the artifact `bytes`, copied.
    ///
    /// # Safety
    ///
    /// As for [`Compiled::from_entry`]: `bytes` must have been made by
    /// [`Compiled::serialize`] or [`Compiled::precompile`] of this kind,
    /// for an engine compatible with `engine`.
    unsafe fn from_bytes(engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Self>;
}

impl Compiled for wasmtime::Module {
    fn compile(engine: &Engine, wasm: &[u8]) -> wasmtime::Result<Self> {
        wasmtime::Module::new(engine, wasm)
    }

    fn precompile(engine: &Engine, wasm: &[u8]) -> wasmtime::Result<Vec<u8>> {
        engine.precompile_module(wasm)
    }

    fn serialize(&self) -> wasmtime::Result<Vec<u8>> {
        wasmtime::Module::serialize(self)
    }

    unsafe fn from_entry(engine: &Engine, file: File, _: usize) -> wasmtime::Result<Self> {
        // SAFETY: the caller's promise; wasmtime maps the file (a memory
        // image copy-on-write from it) and ignores the trailer after the
        // artifact's sections.
        unsafe { wasmtime::Module::deserialize_open_file(engine, file) }
    }

    unsafe fn from_bytes(engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Self> {
        // SAFETY: the caller's promise.
        unsafe { wasmtime::Module::deserialize(engine, bytes) }
    }
}

impl Compiled for Component {
    fn compile(engine: &Engine, wasm: &[u8]) -> wasmtime::Result<Self> {
        Component::new(engine, wasm)
    }

    fn precompile(engine: &Engine, wasm: &[u8]) -> wasmtime::Result<Vec<u8>> {
        engine.precompile_component(wasm)
    }

    fn serialize(&self) -> wasmtime::Result<Vec<u8>> {
        Component::serialize(self)
    }

    unsafe fn from_entry(
        engine: &Engine,
        file: File,
        trailer_len: usize,
    ) -> wasmtime::Result<Self> {
        // wasmtime 48 maps a component only from a path, which could be
        // renamed over after the check. Where the open file itself has a
        // path (Linux's /proc/self/fd), it is mapped through that: the
        // component's code and memory images are then the file's pages,
        // not copies (a Python-function snapshot's 56 MB are copied to
        // anonymous memory at every load otherwise). Elsewhere, or should
        // that fail, the checked open file is read through a map and its
        // artifact copied by `deserialize`.
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            let own_path = format!("/proc/self/fd/{}", file.as_raw_fd());
            // SAFETY: the caller's promise; the path opens the very file
            // checked (the same open file description's inode, whatever
            // was renamed since), and wasmtime ignores the trailer after
            // the artifact's sections, as for a module.
            if let Ok(component) = unsafe { Component::deserialize_file(engine, &own_path) } {
                return Ok(component);
            }
        }
        // SAFETY: the map is only read and dropped before returning; the
        // cache directory is its owner's only and entries are replaced by
        // rename, never written in place, so the bytes do not change under
        // it (the caller's promise).
        let map = unsafe { memmap2::Mmap::map(&file) }?;
        let artifact_len = map
            .len()
            .checked_sub(trailer_len)
            .ok_or_else(|| wasmtime::format_err!("the cache entry is shorter than its trailer"))?;
        // SAFETY: the caller's promise: the artifact is `serialize`'s or `precompile`'s, for a
        // compatible engine.
        unsafe { Component::deserialize(engine, &map[..artifact_len]) }
    }

    unsafe fn from_bytes(engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Self> {
        // SAFETY: the caller's promise.
        unsafe { Component::deserialize(engine, bytes) }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::io::Write;

    use super::*;

    /// A component's entry is mapped from the open file, trailer and all,
    /// not copied: its path shows in the process's mappings.
    #[test]
    fn a_components_entry_is_mapped_not_copied() {
        let engine = Engine::default();
        let wasm = wat::parse_str(
            r#"(component
                 (core module $m (memory 1) (data (i32.const 0) "state"))
                 (core instance (instantiate $m)))"#,
        )
        .unwrap();
        let artifact = Component::compile(&engine, &wasm)
            .unwrap()
            .serialize()
            .unwrap();
        let mut entry = tempfile::NamedTempFile::new().unwrap();
        entry.write_all(&artifact).unwrap();
        entry.write_all(&[0xA5; 72]).unwrap();
        let file = File::open(entry.path()).unwrap();
        // SAFETY: the artifact was serialized just now by this engine.
        let component = unsafe { Component::from_entry(&engine, file, 72) }.unwrap();
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        let path = entry.path().canonicalize().unwrap();
        assert!(
            maps.contains(path.to_str().unwrap()),
            "{} is not mapped:\n{maps}",
            path.display()
        );
        drop(component);
    }
}
