//! `wasmproc.Queue`: the library's queue of JSON values, shared by name
//! with a pool's tasks (`Pool(share={"jobs": queue})`) and used from Python
//! with `multiprocessing.Queue`'s methods.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use wasmproc::{ErrorKind, Queue};

use crate::convert::{error, from_json};
use crate::wait::{deadline, wait_for};

/// The capacity of a queue made with `maxsize=0` ("no bound" in
/// `multiprocessing`): the library's queues are always bounded.
pub(crate) const UNBOUNDED_CAPACITY: usize = 1 << 16;

/// A bounded queue of JSON values (see the module docs).
#[pyclass(frozen, module = "wasmproc._native", name = "Queue")]
pub(crate) struct NativeQueue {
    pub(crate) queue: Queue<serde_json::Value>,
}

/// What a blocking put or get found.
enum Waited<T> {
    Done(T),
    /// Full (put) or empty (get) when the deadline came.
    TimedOut,
}

#[pymethods]
impl NativeQueue {
    #[new]
    #[pyo3(signature = (maxsize=0))]
    fn new(maxsize: usize) -> Self {
        let capacity = if maxsize == 0 {
            UNBOUNDED_CAPACITY
        } else {
            maxsize
        };
        NativeQueue {
            queue: Queue::new(capacity),
        }
    }

    /// Puts `value`, waiting up to `timeout` seconds (`None`: as long as
    /// it takes) while the queue is full; `False` if it stayed full.
    #[pyo3(signature = (value, timeout=None))]
    fn put(
        &self,
        py: Python<'_>,
        value: &Bound<'_, PyAny>,
        timeout: Option<f64>,
    ) -> PyResult<bool> {
        let value = crate::convert::json_value(value, "a value put on a queue")?;
        let until = deadline(timeout)?;
        let waited = wait_for(py, until, |slice| {
            match self.queue.put_timeout(&value, slice) {
                Ok(true) => Some(Ok(Waited::Done(()))),
                Ok(false) if until.is_some_and(|d| d <= std::time::Instant::now()) => {
                    Some(Ok(Waited::TimedOut))
                }
                Ok(false) => None,
                Err(failed) => Some(Err(failed)),
            }
        })?;
        match waited {
            Some(Ok(Waited::Done(()))) => Ok(true),
            Some(Ok(Waited::TimedOut)) | None => Ok(false),
            Some(Err(failed)) => Err(self::queue_error(py, failed)),
        }
    }

    /// Takes the next value, waiting up to `timeout` seconds (`None`: as
    /// long as it takes); `(False, None)` if none came, `(True, value)`
    /// otherwise. Raises `ValueError` once the queue is closed and drained.
    #[pyo3(signature = (timeout=None))]
    fn get<'py>(
        &self,
        py: Python<'py>,
        timeout: Option<f64>,
    ) -> PyResult<(bool, Bound<'py, PyAny>)> {
        let until = deadline(timeout)?;
        let waited = wait_for(py, until, |slice| match self.queue.get_timeout(slice) {
            Ok(Some(value)) => Some(Ok(Waited::Done(value))),
            Ok(None) if until.is_some_and(|d| d <= std::time::Instant::now()) => {
                Some(Ok(Waited::TimedOut))
            }
            Ok(None) => None,
            Err(failed) => Some(Err(failed)),
        })?;
        match waited {
            Some(Ok(Waited::Done(value))) => {
                let bytes =
                    serde_json::to_vec(&value).map_err(|e| PyValueError::new_err(e.to_string()))?;
                Ok((true, from_json(py, &bytes)?))
            }
            Some(Ok(Waited::TimedOut)) | None => Ok((false, py.None().into_bound(py))),
            Some(Err(failed)) => Err(self::queue_error(py, failed)),
        }
    }

    /// How many values wait in it.
    fn qsize(&self) -> usize {
        self.queue.len()
    }

    /// Closes it: puts fail, gets drain what is left, then fail; a task
    /// waiting on it wakes.
    fn close(&self) {
        self.queue.close();
    }

    /// Whether it is closed.
    #[getter]
    fn closed(&self) -> bool {
        self.queue.is_closed()
    }
}

/// A closed queue is `ValueError` (as a closed `multiprocessing.Queue`);
/// anything else keeps its status's exception.
fn queue_error(py: Python<'_>, failed: wasmproc::Error) -> PyErr {
    if matches!(failed.kind(), ErrorKind::Closed) {
        return PyValueError::new_err(failed.message().to_owned());
    }
    error(py, failed)
}
