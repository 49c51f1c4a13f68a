//! Loading: a module file or bytes checked, compiled (or read from the
//! cache) and prepared for instantiation; a snapshot compiled the same way.

use std::fs::File;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use wasmtime::component::Component;

use super::component::{ComponentInfo, describe_component, is_component, prepare_component};
use super::describe::{describe, nothing};
use super::{Code, Module, ModuleInner, Origin, Prepared, Remake};
use crate::cache::{CacheStatus, Identity, KnownFile, ReadStart, Session};
use crate::error::{Error, ErrorKind};
use crate::limits::human;
use crate::runtime::{LinkedEngine, Runtime};
use crate::store::{instantiate_pre, unknown_imports};

impl Runtime {
    /// Loads a module file (binary `.wasm` or text `.wat`), or a component
    /// (`wasm32-wasip2`), from the cache when it was compiled before.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotFound`] when the file does not exist,
    /// [`ErrorKind::CannotRun`] when it is not a valid core module or
    /// component.
    pub fn load(&self, path: impl AsRef<Path>) -> Result<Module, Error> {
        self.load_file(path.as_ref(), None)
    }

    /// Loads the module file `path`, which must be the module `expected`
    /// when given (a worker process loading its pool's module).
    ///
    /// An unchanged binary core module file that a load hashed before is
    /// not read again: its identity comes from the cache's signed record
    /// of the file (`cache/files.rs`), its code from the cache, and its
    /// wasm is read only when something needs it (`Module::wasm`).
    pub(crate) fn load_file(
        &self,
        path: &Path,
        expected: Option<Identity>,
    ) -> Result<Module, Error> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        let file = open_module(path)?;
        if let Some(module) = self.load_known(&name, path, &file, expected)? {
            return Ok(module);
        }
        let start = ReadStart::of(&file);
        let bytes = read_module(&file, path, &name, self.settings().max_module_size)?;
        let module = self.load_owned(&name, bytes, Some((&file, start)))?;
        if expected.is_some_and(|expected| expected != module.inner.identity) {
            return Err(changed(path));
        }
        Ok(module.with_source(path))
    }

    /// The module in `file`, when the cache knows the file unchanged since
    /// a load hashed it and holds its compiled code; `None` otherwise (the
    /// caller reads the file).
    fn load_known(
        &self,
        name: &str,
        path: &Path,
        file: &File,
        expected: Option<Identity>,
    ) -> Result<Option<Module>, Error> {
        let settings = self.settings();
        let Some(known) = self.cache().known_file(file) else {
            return Ok(None);
        };
        if expected.is_some_and(|expected| expected != known.identity) {
            return Err(changed(path));
        }
        // Limits lowered since: the full load says what is over them.
        let size = file.metadata().map_or(u64::MAX, |meta| meta.len());
        if known.functions > settings.max_module_functions || size > settings.max_module_size as u64
        {
            return Ok(None);
        }
        self.load_compiled(name, path, known.identity)
    }

    /// The core module `identity` from its compiled code in the cache
    /// alone, its wasm to be read from `path` only if needed (checked
    /// against `identity` then); `None` when the cache does not hold it.
    ///
    /// A worker process loads its pool's module this way: it needs neither
    /// the file nor the wasm, so a file rewritten or removed since the
    /// pool's load does not stop the pool from starting workers, and they
    /// run the pool's module, not the file's new one.
    pub(crate) fn load_compiled(
        &self,
        name: &str,
        path: &Path,
        identity: Identity,
    ) -> Result<Option<Module>, Error> {
        let linked = self.engine(false)?;
        let Some(compiled) = self
            .cache()
            .load_cached::<wasmtime::Module>(&linked.engine, &identity)
        else {
            return Ok(None);
        };
        let plain = prepare(linked, name, &[], Ok((compiled, CacheStatus::Hit)))?;
        Ok(Some(
            self.build(name, identity, None, plain, None, None)
                .with_source(path),
        ))
    }

    /// Loads a module from bytes; `name` is its `argv[0]` and appears in
    /// messages.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::CannotRun`] when the bytes are not a valid core module
    /// or component.
    pub fn load_bytes(&self, name: &str, bytes: &[u8]) -> Result<Module, Error> {
        let settings = self.settings();
        if bytes.len() > settings.max_module_size {
            return Err(too_large(name, settings.max_module_size));
        }
        self.load_owned(name, bytes.to_vec(), None)
    }

    /// Loads a module from its bytes, read from `file` (when it was) from
    /// the moment given: a binary core module file is then remembered as
    /// holding this module (`cache/files.rs`).
    fn load_owned(
        &self,
        name: &str,
        bytes: Vec<u8>,
        file: Option<(&File, ReadStart)>,
    ) -> Result<Module, Error> {
        let settings = self.settings();
        if bytes.len() > settings.max_module_size {
            return Err(too_large(name, settings.max_module_size));
        }
        let binary = bytes.starts_with(b"\0asm");
        let wasm = to_binary(name, bytes)?;
        let functions = check_function_count(name, &wasm, settings.max_module_functions)?;
        let linked = self.engine(false)?;
        let identity = Identity::of_wasm(&wasm);
        let compiler = |functions| self.snapshot_compiler(false, functions);
        if is_component(&wasm) {
            let compiled = self
                .cache()
                .load_or_compile(&linked.engine, &identity, &wasm, compiler);
            let (plain, info) = prepare_component_code(linked, name, &wasm, compiled)?;
            return Ok(self.build(name, identity, Some(wasm), plain, None, Some(info)));
        }
        let compiled = self
            .cache()
            .load_or_compile(&linked.engine, &identity, &wasm, compiler);
        let plain = prepare(linked, name, &wasm, compiled)?;
        if let Some((file, start)) = file.filter(|_| binary)
            && plain.cache_status != CacheStatus::Uncached
        {
            let known = KnownFile {
                identity,
                functions,
            };
            self.cache().remember_file(file, known, start);
        }
        Ok(self.build(name, identity, Some(wasm), plain, None, None))
    }

    pub(super) fn build(
        &self,
        name: &str,
        identity: Identity,
        wasm: Option<Vec<u8>>,
        plain: Prepared,
        origin: Option<Origin>,
        component: Option<ComponentInfo>,
    ) -> Module {
        let info = match plain.core() {
            Some(module) => describe(module),
            None => nothing(),
        };
        let known = OnceLock::new();
        if let Some(wasm) = wasm {
            let _ = known.set(Ok(wasm));
        }
        Module {
            inner: Arc::new(ModuleInner {
                runtime: self.clone(),
                name: name.to_owned(),
                identity,
                wasm: known,
                source: None,
                plain,
                fuel: OnceLock::new(),
                info,
                component,
                signatures: OnceLock::new(),
                origin,
            }),
        }
    }
}

impl Module {
    /// A snapshot of this module, `identity`, left by `origin.init`:
    /// compiled for the plain engine (from the cache, or from `wasm`). It
    /// keeps this module's name.
    pub(crate) fn snapshot(
        &self,
        identity: Identity,
        compiled: Result<(wasmtime::Module, CacheStatus), wasmtime::Error>,
        wasm: Option<Vec<u8>>,
        origin: Origin,
    ) -> Result<Module, Error> {
        let name = self.name();
        let linked = self.runtime().engine(false)?;
        let plain = prepare(linked, name, wasm.as_deref().unwrap_or_default(), compiled).map_err(
            |error| {
                Error::new(
                    ErrorKind::CannotRun,
                    format!(
                        "the snapshot of `{name}` does not load: {}",
                        error.message()
                    ),
                )
            },
        )?;
        Ok(self
            .runtime()
            .build(name, identity, wasm, plain, Some(origin), None))
    }

    /// A component snapshot of this component, `identity`, left by
    /// `origin.init`: compiled for the plain engine (from the cache, or
    /// from `wasm`). It keeps this component's name, and its SDK records
    /// (a snapshot found in the cache comes without its wasm, where they
    /// are).
    pub(crate) fn component_snapshot(
        &self,
        identity: Identity,
        compiled: Result<(Component, CacheStatus), wasmtime::Error>,
        wasm: Option<Vec<u8>>,
        origin: Origin,
    ) -> Result<Module, Error> {
        let name = self.name();
        let linked = self.runtime().engine(false)?;
        let base = self.inner.component.as_ref();
        let (plain, info) = prepare_component_described(
            linked,
            name,
            wasm.as_deref().unwrap_or_default(),
            compiled,
            |info| {
                if let Some(base) = base.filter(|base| base.sdk) {
                    info.sdk = true;
                    info.functions = base.functions.clone();
                    info.initializers = base.initializers.clone();
                    info.signatures = base.signatures.clone();
                }
            },
        )?;
        Ok(self
            .runtime()
            .build(name, identity, wasm, plain, Some(origin), Some(info)))
    }

    /// The component `wasm` (this component made ready for a snapshot by
    /// wizer) compiled for `linked` (or found compiled in the cache: one
    /// entry serves every initializer), and prepared: an initializer runs
    /// in it. A first snapshot's `session` keeps the functions compiled for
    /// the snapshot's own compile.
    pub(crate) fn prepare_instrumented(
        &self,
        linked: &LinkedEngine,
        wasm: &[u8],
        session: Option<&Session<'_>>,
    ) -> Result<Prepared, Error> {
        let runtime = self.runtime();
        let compiled = runtime.cache().load_or_compile_instrumented(
            &linked.engine,
            wasm,
            session,
            |functions| runtime.snapshot_compiler(linked.consume_fuel, functions),
        );
        prepare_component_code(linked, self.name(), wasm, compiled).map(|(prepared, _)| prepared)
    }

    /// The module prepared for the plain or the fuel-metering engine (the
    /// latter compiled on first use; a snapshot found in the cache whose
    /// fuel-metered code is not there too is made again with `remake`).
    pub(crate) fn prepared(&self, fuel: bool, remake: Remake) -> Result<&Prepared, Error> {
        if !fuel {
            return Ok(&self.inner.plain);
        }
        let inner = &*self.inner;
        inner
            .fuel
            .get_or_init(|| {
                let linked = inner.runtime.engine(true)?;
                let cache = inner.runtime.cache();
                if inner.component.is_some() {
                    // No functions session: nothing would read it (a
                    // component's fuel-metered snapshot compiles whole).
                    let wasm = self.wasm_or_remake(remake)?;
                    let compiled =
                        cache.load_or_compile(&linked.engine, &inner.identity, wasm, |_| None);
                    return prepare_component_code(linked, &inner.name, wasm, compiled)
                        .map(|(prepared, _)| prepared);
                }
                let compiled = match &inner.origin {
                    // Compiled over the module's fuel-metered functions
                    // session, which a fuel-metered snapshot's compile
                    // then finds.
                    None => cache.load_or_compile(
                        &linked.engine,
                        &inner.identity,
                        self.wasm_or_remake(remake)?,
                        |functions| inner.runtime.snapshot_compiler(true, functions),
                    ),
                    Some(origin) => match cache.load_snapshot(&linked.engine, &inner.identity) {
                        Some(module) => Ok((module, CacheStatus::Hit)),
                        None => cache.compile_snapshot(
                            &linked.engine,
                            |functions| inner.runtime.snapshot_compiler(true, functions),
                            cache.functions_of(&linked.engine, origin.base.identity()),
                            &inner.identity,
                            self.wasm_or_remake(remake)?,
                        ),
                    },
                };
                prepare(
                    linked,
                    &inner.name,
                    self.wasm_or_remake(remake).unwrap_or_default(),
                    compiled,
                )
            })
            .as_ref()
            .map_err(Error::clone)
    }
}

/// Opens a module file; a missing file or a directory is refused with
/// what to do.
pub(super) fn open_module(path: &Path) -> Result<File, Error> {
    let file = File::open(path).map_err(|error| cannot_read(path, error))?;
    if file
        .metadata()
        .map_err(|error| cannot_read(path, error))?
        .is_dir()
    {
        return Err(Error::new(
            ErrorKind::CannotRun,
            format!("`{}` is a directory, not a module file", path.display()),
        ));
    }
    Ok(file)
}

fn cannot_read(path: &Path, error: std::io::Error) -> Error {
    match error.kind() {
        std::io::ErrorKind::NotFound => Error::new(
            ErrorKind::NotFound,
            format!("module `{}` not found: check the path", path.display()),
        ),
        _ => Error::new(
            ErrorKind::CannotRun,
            format!("cannot read module `{}`: {error}", path.display()),
        ),
    }
}

/// The error of a module file that is no longer the module it was.
pub(super) fn changed(path: &Path) -> Error {
    Error::new(
        ErrorKind::CannotRun,
        format!(
            "the module file `{}` changed after it was loaded: load it again",
            path.display()
        ),
    )
}

/// Reads a module file, refusing at once what cannot be a module (by its
/// first bytes) and what is larger than `max` (without reading past it):
/// `/dev/zero` or a runaway pipe costs nothing.
pub(super) fn read_module(
    file: &File,
    path: &Path,
    name: &str,
    max: usize,
) -> Result<Vec<u8>, Error> {
    use std::io::Read;
    let cannot_read = |error| cannot_read(path, error);
    // The size, where known, saves growing the buffer (100 MB modules).
    let size = file.metadata().map_or(0, |meta| meta.len() as usize);
    let mut bytes = Vec::with_capacity(size.min(max) + 1);
    let mut file = file.take(max as u64 + 1);
    let mut head = [0u8; 8];
    let head_len = read_up_to(&mut file, &mut head).map_err(cannot_read)?;
    bytes.extend_from_slice(&head[..head_len]);
    if !could_be_a_module(&bytes) {
        return Err(not_a_module(name));
    }
    file.read_to_end(&mut bytes).map_err(cannot_read)?;
    if bytes.len() > max {
        return Err(too_large(name, max));
    }
    Ok(bytes)
}

/// Reads until `buffer` is full or the stream ends; how much was read.
fn read_up_to(reader: &mut impl std::io::Read, buffer: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match reader.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(filled)
}

/// Whether a module's first bytes could begin binary wasm or wasm text.
fn could_be_a_module(head: &[u8]) -> bool {
    // Text: printable, and UTF-8 (a byte-order mark, a comment in any
    // language) may begin it; the whole file is parsed only if it is.
    head.starts_with(b"\0asm")
        || (!head.is_empty()
            && head
                .iter()
                .all(|b| b.is_ascii_graphic() || b.is_ascii_whitespace() || !b.is_ascii()))
}

fn not_a_module(name: &str) -> Error {
    Error::new(
        ErrorKind::CannotRun,
        format!(
            "`{name}` is not a WebAssembly module (no `\\0asm` header and not WebAssembly text)"
        ),
    )
}

fn too_large(name: &str, max: usize) -> Error {
    Error::new(
        ErrorKind::CannotRun,
        format!(
            "`{name}` is larger than the limit of {} on modules; raise it with \
             RuntimeBuilder::max_module_size",
            human(max as u64)
        ),
    )
}

/// Refuses a module that defines more than `max` functions, before any
/// compiling (reading the sections' counts costs next to nothing); the
/// count (the largest of a component's modules').
fn check_function_count(name: &str, wasm: &[u8], max: u32) -> Result<u32, Error> {
    let mut defined = 0u32;
    for payload in wasmparser::Parser::new(0).parse_all(wasm) {
        match payload {
            // A component's modules are each counted alone.
            Ok(wasmparser::Payload::FunctionSection(functions)) => {
                defined = defined.max(functions.count());
            }
            // Malformed modules get wasmtime's own message when compiled.
            Err(_) => return Ok(defined),
            Ok(_) => {}
        }
    }
    if defined > max {
        return Err(Error::new(
            ErrorKind::CannotRun,
            format!(
                "`{name}` defines {defined} functions, over the limit of {max}: compiling it \
                 would take time and memory outside every limit; raise the limit with \
                 RuntimeBuilder::max_module_functions (--max-functions)"
            ),
        ));
    }
    Ok(defined)
}

/// The module as binary wasm: binary is checked to be a core module or a
/// component, text is assembled.
fn to_binary(name: &str, bytes: Vec<u8>) -> Result<Vec<u8>, Error> {
    const CORE_VERSION: [u8; 4] = [1, 0, 0, 0];
    let cannot_run = |message: String| Error::new(ErrorKind::CannotRun, message);
    if bytes.starts_with(b"\0asm") {
        let core = bytes.get(4..8) == Some(&CORE_VERSION[..]);
        if core || is_component(&bytes) {
            return Ok(bytes);
        }
        return Err(cannot_run(format!(
            "`{name}` has an unknown WebAssembly version; wasmproc runs core modules \
             (wasm32-wasip1) and components (wasm32-wasip2)"
        )));
    }
    match std::str::from_utf8(&bytes) {
        Ok(text) if looks_like_wat(text) => {
            let text = text.strip_prefix('\u{feff}').unwrap_or(text);
            wat::parse_str(text).map_err(|error| {
                cannot_run(format!("`{name}` is not valid WebAssembly text: {error}"))
            })
        }
        _ => Err(not_a_module(name)),
    }
}

/// Whether `text` is meant as WebAssembly text: its first token, past a
/// byte-order mark, white space and comments (`;; a line`, `(; a block
/// ;)`), opens a form. The parser then says whether it is valid.
fn looks_like_wat(text: &str) -> bool {
    let mut rest = text.strip_prefix('\u{feff}').unwrap_or(text);
    loop {
        rest = rest.trim_start();
        if let Some(comment) = rest.strip_prefix(";;") {
            rest = comment.split_once('\n').map_or("", |(_, after)| after);
        } else if let Some(comment) = rest.strip_prefix("(;") {
            match comment.find(";)") {
                Some(end) => rest = &comment[end + 2..],
                None => return false,
            }
        } else {
            return rest.starts_with('(');
        }
    }
}

/// Prepares the instantiation of a module `compiled` (or not) for `linked`
/// from `wasm` (which names what was wrong when it did not compile).
fn prepare(
    linked: &LinkedEngine,
    name: &str,
    wasm: &[u8],
    compiled: Result<(wasmtime::Module, CacheStatus), wasmtime::Error>,
) -> Result<Prepared, Error> {
    let (module, cache_status) = compiled.map_err(|error| {
        // Valid wasm that still does not compile is over a limit of
        // the engine (its instance pool, say), not malformed.
        let message = match wasmtime::Module::validate(&linked.engine, wasm) {
            Ok(()) => format!(
                "`{name}` is valid WebAssembly but cannot run under wasmproc's limits: {error:#}"
            ),
            Err(_) => format!("`{name}` is not a valid WebAssembly module: {error:#}"),
        };
        Error::new(ErrorKind::CannotRun, message)
    })?;
    let stub = linked.stub_unknown_imports;
    let pre = instantiate_pre(&linked.linker, &module, stub).map_err(|error| {
        let unknown = unknown_imports(&linked.linker, &module, stub);
        let all = if unknown.len() > 1 {
            format!(
                " (it imports {} wasmproc does not provide: {})",
                unknown.len(),
                unknown.join(", ")
            )
        } else {
            String::new()
        };
        let stubbing = if stub {
            "an unknown function import is stubbed to trap (--stub-imports), but an unknown \
             global, memory or table import cannot be"
        } else {
            "an unknown function import can be stubbed to trap when called with \
             --stub-imports (RuntimeBuilder::stub_unknown_imports)"
        };
        Error::new(
            ErrorKind::CannotRun,
            format!(
                "`{name}` cannot be linked: {error:#}{all}. wasmproc provides WASI preview 1 \
                 (`wasi_snapshot_preview1`) and the wasmproc SDK (`{}`); {stubbing}; see \
                 `wasmproc inspect` for the imports",
                wasmproc_abi::IMPORT_MODULE
            ),
        )
        .caused_by(error)
    });
    Ok(Prepared {
        code: Code::Core { module, pre },
        cache_status,
    })
}

/// Prepares the instantiation of a component `compiled` (or not) for
/// `linked` from `wasm`; with the description of its imports and exports.
fn prepare_component_code(
    linked: &LinkedEngine,
    name: &str,
    wasm: &[u8],
    compiled: Result<(Component, CacheStatus), wasmtime::Error>,
) -> Result<(Prepared, ComponentInfo), Error> {
    prepare_component_described(linked, name, wasm, compiled, |info| info.describe_sdk(wasm))
}

/// [`prepare_component_code`], its SDK records read by `describe_sdk`.
fn prepare_component_described(
    linked: &LinkedEngine,
    name: &str,
    wasm: &[u8],
    compiled: Result<(Component, CacheStatus), wasmtime::Error>,
    describe_sdk: impl FnOnce(&mut ComponentInfo),
) -> Result<(Prepared, ComponentInfo), Error> {
    let (component, cache_status) = compiled.map_err(|error| {
        let message = match linked.engine.precompile_component(wasm) {
            Ok(_) => format!(
                "`{name}` is a valid component but cannot run under wasmproc's limits: {error:#}"
            ),
            Err(_) => format!("`{name}` is not a valid WebAssembly component: {error:#}"),
        };
        Error::new(ErrorKind::CannotRun, message)
    })?;
    let mut info = describe_component(&linked.engine, &component);
    describe_sdk(&mut info);
    let pre = prepare_component(linked, name, &component, &mut info);
    Ok((
        Prepared {
            code: Code::Component(pre),
            cache_status,
        },
        info,
    ))
}
