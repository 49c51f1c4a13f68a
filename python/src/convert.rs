//! Python values to a task's JSON argument and a result's JSON back, and
//! the library's errors as Python exceptions.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};

/// The JSON bytes of one argument (a dict, list, str, int, float, bool or
/// None, nested).
pub(crate) fn to_json(value: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    let value: serde_json::Value = pythonize::depythonize(value).map_err(|error| {
        PyTypeError::new_err(format!(
            "a task's argument must be JSON-compatible (dict with str keys, list, tuple, str, \
             int, float, bool, None), not this {}: {error}",
            value
                .get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_else(|_| "value".into())
        ))
    })?;
    serde_json::to_vec(&value).map_err(|error| PyValueError::new_err(error.to_string()))
}

/// The JSON bytes of a task's arguments given as a sequence (`run(task,
/// *args)`, `starmap`'s tuples): none is `null`, one is itself, several are
/// an array, as the guest SDK decodes them.
pub(crate) fn args_to_json(args: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    let items: Vec<Bound<'_, PyAny>> = if let Ok(tuple) = args.cast::<PyTuple>() {
        tuple.iter().collect()
    } else if let Ok(list) = args.cast::<PyList>() {
        list.iter().collect()
    } else {
        args.try_iter()?.collect::<PyResult<_>>()?
    };
    match items.as_slice() {
        [] => Ok(b"null".to_vec()),
        [one] => to_json(one),
        many => to_json(&PyList::new(args.py(), many)?.into_any()),
    }
}

/// A result's JSON as a Python value.
pub(crate) fn from_json<'py>(py: Python<'py>, bytes: &[u8]) -> PyResult<Bound<'py, PyAny>> {
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|error| {
        PyValueError::new_err(format!("the task's result is not JSON: {error}"))
    })?;
    pythonize::pythonize(py, &value)
        .map_err(|error| PyValueError::new_err(format!("the task's result: {error}")))
}

/// A library error as a Python exception: the package's exception class
/// for its status (`wasmproc._error_for`, which owns the classes).
pub(crate) fn error(py: Python<'_>, error: wasmproc::Error) -> PyErr {
    let status = error.exit_status();
    let made = py
        .import("wasmproc")
        .and_then(|package| package.getattr("_error_for"))
        .and_then(|make| make.call1((status.name(), status.code(), error.message())));
    match made {
        Ok(exception) => PyErr::from_value(exception),
        Err(failed) => failed,
    }
}
