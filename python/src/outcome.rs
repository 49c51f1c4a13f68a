//! A task's outcome as a Python object (`wasmproc.Outcome`'s data).

use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::PyBytes;
use wasmproc::{ExitStatus, Outcome};

use crate::convert::from_json;

/// How one task ended: its status (a name from the exit-status table), the
/// exit code, its result (JSON), message, backtrace and captured output.
#[pyclass(frozen, module = "wasmproc._native", name = "Outcome")]
pub(crate) struct NativeOutcome {
    outcome: Outcome,
}

impl NativeOutcome {
    pub(crate) fn new(outcome: Outcome) -> Self {
        NativeOutcome { outcome }
    }

    /// Whether it succeeded (`Exited(0)`).
    pub(crate) fn ok(&self) -> bool {
        self.outcome.success()
    }

    /// The result as a Python value (`None` for a task without one).
    pub(crate) fn value<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        from_json(py, self.outcome.result.as_deref().unwrap_or(b"null"))
    }
}

#[pymethods]
impl NativeOutcome {
    /// Whether the task succeeded (status `exited`, code 0).
    #[getter]
    fn success(&self) -> bool {
        self.ok()
    }

    /// The status's name: `exited`, `timed_out`, `memory_exceeded`, ...
    #[getter]
    fn status(&self) -> &'static str {
        self.outcome.status.name()
    }

    /// The exit code from the table (0-125 the guest's own).
    #[getter]
    fn exit_code(&self) -> u8 {
        self.outcome.status.code()
    }

    /// The trap's kind for a trapped task (`unreachable`, ...).
    #[getter]
    fn trap(&self) -> Option<&'static str> {
        match self.outcome.status {
            ExitStatus::Trapped(kind) => Some(kind.name()),
            _ => None,
        }
    }

    /// Why it failed, when it did.
    #[getter]
    fn message(&self) -> Option<&str> {
        self.outcome.message.as_deref()
    }

    /// The guest's backtrace, when it trapped or panicked.
    #[getter]
    fn backtrace(&self) -> Option<&str> {
        self.outcome.backtrace.as_deref()
    }

    /// What the task wrote to stdout (captured, bounded).
    #[getter]
    fn stdout<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.outcome.stdout.bytes)
    }

    /// What the task wrote to stderr (captured, bounded).
    #[getter]
    fn stderr<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.outcome.stderr.bytes)
    }

    /// How long it ran, in seconds.
    #[getter]
    fn duration(&self) -> f64 {
        Duration::as_secs_f64(&self.outcome.duration)
    }

    /// The peak of its linear memory, in bytes.
    #[getter]
    fn peak_memory(&self) -> u64 {
        self.outcome.peak_memory_bytes
    }

    /// Its result as a Python value (`None` when it has none).
    #[getter(result)]
    fn result_value<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.value(py)
    }

    fn __repr__(&self) -> String {
        format!("<Outcome {}>", self.outcome.status)
    }
}
