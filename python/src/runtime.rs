//! The one runtime of this Python process (engines, the compiled-module
//! cache), made at the first load.

use std::sync::OnceLock;

use wasmproc::{Error, Runtime};

static RUNTIME: OnceLock<Runtime> = OnceLock::new();

/// The process's runtime, built on first use with the library's defaults
/// (the cache under the user's cache directory, `WASMPROC_CACHE_DIR`).
pub(crate) fn runtime() -> Result<&'static Runtime, Error> {
    if let Some(runtime) = RUNTIME.get() {
        return Ok(runtime);
    }
    let built = Runtime::new()?;
    // Two threads may both build one; the first kept wins.
    Ok(RUNTIME.get_or_init(|| built))
}
