//! Python values to a task's JSON argument and a result's JSON back, and
//! the library's errors as Python exceptions.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};

/// The JSON bytes of one argument (a dict, list, str, int, float, bool or
/// None, nested).
pub(crate) fn to_json(value: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    let value = json_value(value, "a task's argument")?;
    serde_json::to_vec(&value).map_err(|error| PyValueError::new_err(error.to_string()))
}

/// `value` as JSON text by the rule a task's argument follows
/// ([`json_value`]), for the Python layer: a Python function's arguments
/// cross by the same rule as a Wasm task's. `what` names the value in the
/// error.
#[pyfunction]
pub(crate) fn json_text(value: &Bound<'_, PyAny>, what: &str) -> PyResult<String> {
    let value = json_value(value, what)?;
    serde_json::to_string(&value).map_err(|error| PyValueError::new_err(error.to_string()))
}

/// How deep a value may nest; deeper is refused, as a list that contains
/// itself would recurse without end.
const MAX_DEPTH: usize = 512;

/// `value` as JSON, strictly: a dict with str keys, list, tuple, str, int
/// within 64 bits, finite float, bool or None, nested. Anything else is
/// refused with its name (a `TypeError` for a type, a `ValueError` for a
/// value), never changed on the way: a set does not become a list, NaN does
/// not become null, a dict's int key does not become a str. `what` names
/// the value in the error (`a task's argument`).
pub(crate) fn json_value(value: &Bound<'_, PyAny>, what: &str) -> PyResult<serde_json::Value> {
    json_at(value, what, 0)
}

fn json_at(value: &Bound<'_, PyAny>, what: &str, depth: usize) -> PyResult<serde_json::Value> {
    use serde_json::Value;
    if depth > MAX_DEPTH {
        return Err(PyValueError::new_err(format!(
            "{what} nests more than {MAX_DEPTH} levels deep (does it contain itself?)"
        )));
    }
    if value.is_none() {
        return Ok(Value::Null);
    }
    if let Ok(flag) = value.cast::<PyBool>() {
        return Ok(Value::Bool(flag.is_true()));
    }
    if let Ok(int) = value.cast::<PyInt>() {
        if let Ok(n) = int.extract::<i64>() {
            return Ok(n.into());
        }
        if let Ok(n) = int.extract::<u64>() {
            return Ok(n.into());
        }
        return Err(PyValueError::new_err(format!(
            "{what} holds the int {int}, past the 64 bits JSON carries exactly here: send it \
             as a str"
        )));
    }
    if let Ok(float) = value.cast::<PyFloat>() {
        let float = float.value();
        return serde_json::Number::from_f64(float)
            .map(Value::Number)
            .ok_or_else(|| {
                PyValueError::new_err(format!(
                    "{what} holds the float {float}, which JSON cannot carry (NaN and the \
                     infinities are not JSON): send None or a str instead"
                ))
            });
    }
    if let Ok(text) = value.cast::<PyString>() {
        return Ok(Value::String(text.to_cow()?.into_owned()));
    }
    if let Ok(list) = value.cast::<PyList>() {
        return json_array(list.iter(), what, depth);
    }
    if let Ok(tuple) = value.cast::<PyTuple>() {
        return json_array(tuple.iter(), what, depth);
    }
    if let Ok(dict) = value.cast::<PyDict>() {
        let mut object = serde_json::Map::with_capacity(dict.len());
        for (key, item) in dict.iter() {
            let Ok(name) = key.cast::<PyString>() else {
                return Err(PyTypeError::new_err(format!(
                    "{what} must be JSON-compatible: a dict's keys must be str, as JSON's are, \
                     not {} ({})",
                    type_name(&key),
                    key.repr().map_or_else(|_| "?".into(), |r| r.to_string())
                )));
            };
            object.insert(
                name.to_cow()?.into_owned(),
                json_at(&item, what, depth + 1)?,
            );
        }
        return Ok(Value::Object(object));
    }
    Err(PyTypeError::new_err(format!(
        "{what} must be JSON-compatible (dict with str keys, list, tuple, str, int, float, \
         bool, None), not {}",
        type_name(value)
    )))
}

/// A list's or a tuple's items as a JSON array.
fn json_array<'py>(
    items: impl Iterator<Item = Bound<'py, PyAny>>,
    what: &str,
    depth: usize,
) -> PyResult<serde_json::Value> {
    items
        .map(|item| json_at(&item, what, depth + 1))
        .collect::<PyResult<_>>()
        .map(serde_json::Value::Array)
}

fn type_name(value: &Bound<'_, PyAny>) -> String {
    value
        .get_type()
        .name()
        .map_or_else(|_| "this value".into(), |name| name.to_string())
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
/// for its status (`wasmproc._error_for`, which owns the classes). An
/// initializer's failure is a run's: its exception carries the run's trap
/// kind, backtrace and captured output too (`wasmproc._task_error`).
pub(crate) fn error(py: Python<'_>, error: wasmproc::Error) -> PyErr {
    let made = py
        .import("wasmproc")
        .and_then(|package| match wasmproc::FailedRun::of(&error) {
            Some(failed) => {
                let mut outcome = failed.clone();
                outcome.message = Some(error.message().to_owned());
                let outcome = Py::new(py, crate::outcome::NativeOutcome::new(outcome))?;
                package.getattr("_task_error")?.call1((outcome, py.None()))
            }
            None => {
                let status = error.exit_status();
                package.getattr("_error_for")?.call1((
                    status.name(),
                    status.code(),
                    error.message(),
                ))
            }
        });
    match made {
        Ok(exception) => PyErr::from_value(exception),
        Err(failed) => failed,
    }
}
