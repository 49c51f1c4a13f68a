//! `load(path)` and the loaded module: its tasks, and one task run here.

use pyo3::prelude::*;
use pyo3::types::PyTuple;
use std::collections::BTreeMap;
use wasmproc::{Module, Task};

use crate::convert::{args_to_json, error};
use crate::options::{Size, capabilities, limits};
use crate::outcome::NativeOutcome;
use crate::runtime::runtime;

/// A loaded module (compiled once; the compiled code is cached on disk).
#[pyclass(frozen, module = "wasmproc._native", name = "Module")]
pub(crate) struct NativeModule {
    pub(crate) module: Module,
}

/// Loads and compiles the module at `path` (or reads its cached compile),
/// without holding the GIL.
#[pyfunction]
pub(crate) fn load(py: Python<'_>, path: std::path::PathBuf) -> PyResult<NativeModule> {
    let loaded = py.detach(|| runtime().and_then(|runtime| runtime.load(&path)));
    match loaded {
        Ok(module) => Ok(NativeModule { module }),
        Err(failure) => Err(error(py, failure)),
    }
}

#[pymethods]
impl NativeModule {
    /// The module's name (its file name).
    #[getter]
    fn name(&self) -> &str {
        self.module.name()
    }

    /// The typed tasks it exports, by name.
    #[getter]
    fn tasks(&self) -> Vec<String> {
        self.module.tasks().to_vec()
    }

    /// Runs `task` once with `args` (none: `null`, one: itself, several:
    /// an array) in a fresh instance, here, without the GIL.
    #[pyo3(signature = (task, args, *, timeout=None, max_memory=None, fuel=None, dirs=None, env=None))]
    #[allow(clippy::too_many_arguments)]
    fn run(
        &self,
        py: Python<'_>,
        task: &str,
        args: &Bound<'_, PyTuple>,
        timeout: Option<f64>,
        max_memory: Option<Size>,
        fuel: Option<u64>,
        dirs: Option<BTreeMap<String, String>>,
        env: Option<BTreeMap<String, String>>,
    ) -> PyResult<NativeOutcome> {
        let task = Task::call_json(task, args_to_json(args.as_any())?)
            .limits(limits(timeout, max_memory, fuel)?)
            .capabilities(capabilities(dirs, env)?);
        let outcome = py.detach(|| self.module.run(&task));
        Ok(NativeOutcome::new(outcome))
    }

    fn __repr__(&self) -> String {
        format!("<wasmproc.Module {:?}>", self.module.name())
    }
}
