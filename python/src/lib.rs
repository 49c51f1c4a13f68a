//! `wasmproc._native`: the wasmproc library embedded in Python through
//! PyO3. The Python package (`pysrc/wasmproc`) builds its
//! `multiprocessing`-shaped API on these few objects: loaded modules, a pool
//! with its handles and maps, and each task's outcome. Failed outcomes
//! become exceptions on the Python side, which owns the exception classes.

mod convert;
mod map;
mod module;
mod options;
mod outcome;
mod pipe;
mod pool;
mod queue;
mod region;
mod runtime;
mod sync;
mod wait;

use pyo3::prelude::*;

/// Serves as a worker process of a process pool and exits, when this
/// process was started as one (`python -m wasmproc._worker` with
/// `WASMPROC_WORKER=1`); raises otherwise.
#[pyfunction]
fn serve_as_worker() -> PyResult<()> {
    wasmproc::run_worker_if_requested();
    Err(pyo3::exceptions::PyRuntimeError::new_err(format!(
        "this process was not started as a wasmproc worker ({}=1 is not set): \
         the pool starts `python -m wasmproc._worker` itself",
        wasmproc::WORKER_ENV
    )))
}

/// The native module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(module::load, m)?)?;
    m.add_function(wrap_pyfunction!(serve_as_worker, m)?)?;
    m.add_function(wrap_pyfunction!(runtime::cache_dir, m)?)?;
    m.add_function(wrap_pyfunction!(convert::json_text, m)?)?;
    m.add_class::<module::NativeModule>()?;
    m.add_class::<pool::NativePool>()?;
    m.add_class::<pool::NativeHandle>()?;
    m.add_class::<map::NativeMap>()?;
    m.add_class::<outcome::NativeOutcome>()?;
    m.add_class::<queue::NativeQueue>()?;
    m.add_class::<region::NativeRegion>()?;
    m.add_class::<sync::NativeLock>()?;
    m.add_class::<sync::NativeEvent>()?;
    m.add_class::<sync::NativeSemaphore>()?;
    m.add_class::<sync::NativeBarrier>()?;
    m.add_class::<pipe::NativePipeEnd>()?;
    m.add_function(wrap_pyfunction!(pipe::pipe, m)?)?;
    Ok(())
}
