//! `wasmproc.Pipe()`: the library's two-way pipe of JSON values; one end
//! stays here, the other is given to a pool's tasks (`Pool(pipe=end)`).

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use wasmproc::{ErrorKind, PipeEnd};

use crate::convert::{error, from_json};
use crate::wait::{deadline, wait_for};

/// One end of a pipe.
#[pyclass(frozen, module = "wasmproc._native", name = "PipeEnd")]
pub(crate) struct NativePipeEnd {
    pub(crate) end: PipeEnd,
}

/// A new pipe: its two ends.
#[pyfunction]
pub(crate) fn pipe() -> (NativePipeEnd, NativePipeEnd) {
    let (here, there) = wasmproc::pipe();
    (NativePipeEnd { end: here }, NativePipeEnd { end: there })
}

#[pymethods]
impl NativePipeEnd {
    /// Sends `value` to the other end, waiting (without the GIL) while the
    /// pipe is full.
    fn send(&self, py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let value = crate::convert::json_value(value, "a value sent on a pipe")?;
        py.detach(|| self.end.send(&value))
            .map_err(|failed| pipe_error(py, failed))
    }

    /// The next value from the other end, waiting up to `timeout` seconds
    /// (`None`: as long as it takes): `(True, value)`, or `(False, None)`
    /// if none came. `EOFError` once the other end is gone and nothing is
    /// left.
    #[pyo3(signature = (timeout=None))]
    fn recv<'py>(
        &self,
        py: Python<'py>,
        timeout: Option<f64>,
    ) -> PyResult<(bool, Bound<'py, PyAny>)> {
        let until = deadline(timeout)?;
        let got = wait_for(py, until, |slice| {
            match self.end.recv_timeout::<serde_json::Value>(slice) {
                Ok(Some(value)) => Some(Ok(value)),
                Ok(None) => None,
                Err(failed) => Some(Err(failed)),
            }
        })?;
        match got {
            Some(Ok(value)) => {
                let bytes =
                    serde_json::to_vec(&value).map_err(|e| PyValueError::new_err(e.to_string()))?;
                Ok((true, from_json(py, &bytes)?))
            }
            Some(Err(failed)) => Err(pipe_error(py, failed)),
            None => Ok((false, py.None().into_bound(py))),
        }
    }
}

/// A pipe whose other end is gone is `EOFError`, as a
/// `multiprocessing.Connection`'s; anything else keeps its status's
/// exception.
fn pipe_error(py: Python<'_>, failed: wasmproc::Error) -> PyErr {
    if matches!(failed.kind(), ErrorKind::Closed) {
        return pyo3::exceptions::PyEOFError::new_err(failed.message().to_owned());
    }
    error(py, failed)
}
