//! The one runtime of this Python process (engines, the compiled-module
//! cache), made at the first load.

use std::sync::OnceLock;

use pyo3::prelude::*;
use wasmproc::{Error, Runtime};

use crate::convert::error;

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

/// The directory of the library's module cache (`WASMPROC_CACHE_DIR`, else
/// the platform's cache directory), or `None` when the cache is off. The
/// Python side keeps what it builds (the Python runner component) beside it.
#[pyfunction]
pub(crate) fn cache_dir(py: Python<'_>) -> PyResult<Option<std::path::PathBuf>> {
    match runtime() {
        Ok(runtime) => Ok(runtime.cache_dir().map(std::path::Path::to_path_buf)),
        Err(failure) => Err(error(py, failure)),
    }
}
