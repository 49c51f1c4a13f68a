//! `wasmproc.SharedRegion`: OS shared memory granted to tasks by name
//! (mapped into worker processes too), read and written from Python.

use std::sync::atomic::Ordering;

use pyo3::prelude::*;
use pyo3::types::PyBytes;
use wasmproc::SharedRegion;

use crate::convert::error;

/// A shared region of `size` bytes, zeroed.
#[pyclass(frozen, module = "wasmproc._native", name = "SharedRegion")]
pub(crate) struct NativeRegion {
    pub(crate) region: SharedRegion,
}

#[pymethods]
impl NativeRegion {
    #[new]
    fn new(py: Python<'_>, size: usize) -> PyResult<Self> {
        let region = SharedRegion::new(size).map_err(|e| error(py, e))?;
        Ok(NativeRegion { region })
    }

    /// Its size in bytes.
    #[getter]
    fn size(&self) -> usize {
        self.region.len()
    }

    /// `len` bytes from `offset` (by default: all of it).
    #[pyo3(signature = (offset=0, len=None))]
    fn read<'py>(
        &self,
        py: Python<'py>,
        offset: usize,
        len: Option<usize>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let len = len.unwrap_or_else(|| self.region.len().saturating_sub(offset));
        let mut bytes = vec![0; len];
        self.region
            .read(offset, &mut bytes)
            .map_err(|e| error(py, e))?;
        Ok(PyBytes::new(py, &bytes))
    }

    /// Writes `data` at `offset`.
    fn write(&self, py: Python<'_>, offset: usize, data: &[u8]) -> PyResult<()> {
        self.region.write(offset, data).map_err(|e| error(py, e))
    }

    /// The little-endian u64 at `offset` (8-aligned), read atomically.
    fn load_u64(&self, py: Python<'_>, offset: usize) -> PyResult<u64> {
        let word = self.region.u64_at(offset).map_err(|e| error(py, e))?;
        Ok(word.load(Ordering::SeqCst))
    }

    /// Stores `value` at `offset` (8-aligned) atomically.
    fn store_u64(&self, py: Python<'_>, offset: usize, value: u64) -> PyResult<()> {
        let word = self.region.u64_at(offset).map_err(|e| error(py, e))?;
        word.store(value, Ordering::SeqCst);
        Ok(())
    }

    /// Adds `value` at `offset` (8-aligned) atomically; the value before.
    fn add_u64(&self, py: Python<'_>, offset: usize, value: u64) -> PyResult<u64> {
        let word = self.region.u64_at(offset).map_err(|e| error(py, e))?;
        Ok(word.fetch_add(value, Ordering::SeqCst))
    }
}
