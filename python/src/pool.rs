//! The pool (`wasmproc.Pool`'s engine), its task handles, and the blocking
//! waits, which release the GIL and still let Ctrl-C through.

use std::collections::BTreeMap;
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};
use wasmproc::{Initializer, Isolation, Outcome, Pool, ProcessOptions, Shutdown, Task, TaskHandle};

use crate::convert::{args_to_json, error};
use crate::map::{Input, MapShape, NativeMap, start_map};
use crate::module::NativeModule;
use crate::options::{Size, capabilities, limits, worker_command};
use crate::outcome::NativeOutcome;
use crate::pipe::NativePipeEnd;
use crate::queue::NativeQueue;
use crate::region::NativeRegion;
use crate::sync::{NativeBarrier, NativeEvent, NativeLock, NativeSemaphore};
use crate::wait::{deadline, wait_for};

/// A map's gathered results, or its first failure in input order with
/// that input's index.
type Gathered<'py> = (Option<Bound<'py, PyList>>, Option<(usize, NativeOutcome)>);

/// A pool of workers running one module's tasks.
#[pyclass(frozen, module = "wasmproc._native", name = "Pool")]
pub(crate) struct NativePool {
    /// Taken by `Drop` only.
    pool: Option<Arc<Pool>>,
}

impl NativePool {
    fn pool(&self) -> &Arc<Pool> {
        self.pool.as_ref().expect("taken only when dropped")
    }
}

impl Drop for NativePool {
    /// Dropping the last reference shuts the pool down and waits for its
    /// workers, which may themselves wait for the GIL (to call an
    /// `apply_async` callback): the wait must not hold it.
    fn drop(&mut self) {
        let mut pool = self.pool.take();
        Python::try_attach(|py| {
            let pool = pool.take();
            py.detach(move || drop(pool));
        });
        drop(pool);
    }
}

#[pymethods]
impl NativePool {
    /// Starts the pool (and runs the initializer, if any, once).
    #[new]
    #[pyo3(signature = (module, *, processes=None, timeout=None, max_memory=None, fuel=None, dirs=None, env=None, worker_command=None, initializer=None, initargs=None, share=None, pipe=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        module: &NativeModule,
        processes: Option<usize>,
        timeout: Option<f64>,
        max_memory: Option<Size>,
        fuel: Option<u64>,
        dirs: Option<BTreeMap<String, String>>,
        env: Option<BTreeMap<String, String>>,
        worker_command: Option<Vec<String>>,
        initializer: Option<String>,
        initargs: Option<Bound<'_, PyTuple>>,
        share: Option<BTreeMap<String, Bound<'_, PyAny>>>,
        pipe: Option<PyRef<'_, NativePipeEnd>>,
    ) -> PyResult<Self> {
        let mut builder = Pool::builder(&module.module)
            .limits(limits(timeout, max_memory, fuel)?)
            .capabilities(capabilities(dirs, env)?);
        for (name, object) in share.unwrap_or_default() {
            builder = if let Ok(queue) = object.cast::<NativeQueue>() {
                builder.share(&name, &queue.get().queue)
            } else if let Ok(region) = object.cast::<NativeRegion>() {
                builder.share(&name, &region.get().region)
            } else if let Ok(lock) = object.cast::<NativeLock>() {
                builder.share(&name, &*lock.get().lock)
            } else if let Ok(event) = object.cast::<NativeEvent>() {
                builder.share(&name, &event.get().event)
            } else if let Ok(semaphore) = object.cast::<NativeSemaphore>() {
                builder.share(&name, &semaphore.get().semaphore)
            } else if let Ok(barrier) = object.cast::<NativeBarrier>() {
                builder.share(&name, &barrier.get().barrier)
            } else {
                return Err(pyo3::exceptions::PyTypeError::new_err(format!(
                    "share={{{name:?}: ...}}: a Queue, SharedRegion, Lock, Event, Semaphore or \
                     Barrier can be shared"
                )));
            };
        }
        if let Some(end) = pipe {
            builder = builder.pipe(end.end.clone());
        }
        if let Some(workers) = processes {
            builder = builder.workers(workers);
        }
        if let Some(command) = worker_command {
            let (executable, args) = self::worker_command(command)?;
            let options = ProcessOptions::default().executable(executable).args(args);
            builder = builder.isolation(Isolation::Process(options));
        }
        if let Some(name) = initializer {
            let json = match &initargs {
                Some(args) => args_to_json(args.as_any())?,
                None => b"null".to_vec(),
            };
            builder = builder.initializer_with(Initializer::call_json(&name, json));
        }
        let pool = py.detach(|| builder.build()).map_err(|e| error(py, e))?;
        Ok(NativePool {
            pool: Some(Arc::new(pool)),
        })
    }

    /// How many workers the pool has.
    #[getter]
    fn processes(&self) -> usize {
        self.pool().workers()
    }

    /// Queues `task` with `args` (a tuple, as `run`'s); returns its handle.
    fn submit(
        &self,
        py: Python<'_>,
        task: &str,
        args: &Bound<'_, PyAny>,
    ) -> PyResult<NativeHandle> {
        let task = Task::call_json(task, args_to_json(args)?);
        let pool = Arc::clone(self.pool());
        let handle = py
            .detach(move || pool.submit(task))
            .map_err(|e| error(py, e))?;
        Ok(NativeHandle { handle })
    }

    /// Runs `task` on each item of `items` (each the argument, or with
    /// `star` a tuple of arguments), in input order, and gathers the
    /// results: `(results, None)`, or `(None, (index, outcome))` with the
    /// first failed outcome in input order (the tasks after it are
    /// cancelled).
    #[pyo3(signature = (task, items, *, chunksize=1, star=false))]
    fn map<'py>(
        &self,
        py: Python<'py>,
        task: &str,
        items: &Bound<'py, PyAny>,
        chunksize: usize,
        star: bool,
    ) -> PyResult<Gathered<'py>> {
        let shape = MapShape {
            ordered: true,
            chunksize,
        };
        let input = Input::new(task, items, star)?;
        let run = start_map(py, self.pool(), shape, input)?;
        let mut outcomes: Vec<Outcome> = Vec::new();
        loop {
            let next = wait_for(py, None, |slice| run.next_within(slice))?;
            match next.flatten() {
                Some((index, outcome)) if !outcome.success() => {
                    return Ok((None, Some((index, NativeOutcome::new(outcome)))));
                }
                Some((_, outcome)) => outcomes.push(outcome),
                None => break,
            }
        }
        run.input_error(py)?;
        let values = outcomes
            .into_iter()
            .map(|outcome| NativeOutcome::new(outcome).value(py))
            .collect::<PyResult<Vec<_>>>()?;
        Ok((Some(PyList::new(py, values)?), None))
    }

    /// Starts a map whose outcomes are read as they come (`imap`,
    /// `imap_unordered`): an iterator of `(input index, outcome)`.
    #[pyo3(signature = (task, items, *, ordered=true, chunksize=1, star=false))]
    fn imap(
        &self,
        py: Python<'_>,
        task: &str,
        items: &Bound<'_, PyAny>,
        ordered: bool,
        chunksize: usize,
        star: bool,
    ) -> PyResult<NativeMap> {
        let shape = MapShape { ordered, chunksize };
        let input = Input::new(task, items, star)?;
        Ok(NativeMap::new(start_map(py, self.pool(), shape, input)?))
    }

    /// Takes no new tasks; queued ones still run.
    fn close(&self) {
        self.pool().close();
    }

    /// Closes the pool and waits for every task and worker to end.
    fn join(&self, py: Python<'_>) {
        let pool = Arc::clone(self.pool());
        py.detach(move || pool.join());
    }

    /// Cancels every queued and running task (each ends `Cancelled`) and
    /// stops the workers.
    fn terminate(&self, py: Python<'_>) {
        let pool = Arc::clone(self.pool());
        py.detach(move || pool.shutdown(Shutdown::Cancel));
    }
}

/// One submitted task: wait for it, cancel it, or be called when it ends.
#[pyclass(frozen, module = "wasmproc._native", name = "Handle")]
pub(crate) struct NativeHandle {
    handle: TaskHandle,
}

#[pymethods]
impl NativeHandle {
    /// Waits up to `timeout` seconds (`None`: until it ends) without the
    /// GIL; the outcome, or `None` if it has not ended by then.
    #[pyo3(signature = (timeout=None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<NativeOutcome>> {
        let outcome = wait_for(py, deadline(timeout)?, |slice| {
            self.handle.wait_timeout(slice).cloned()
        })?;
        Ok(outcome.map(NativeOutcome::new))
    }

    /// Whether the task has ended.
    fn ready(&self) -> bool {
        self.handle.is_finished()
    }

    /// Cancels the task (it ends `Cancelled`, unless it ended first).
    fn cancel(&self) {
        self.handle.cancel();
    }

    /// Calls `callback(outcome)` once the task has ended, on the pool
    /// thread that ends it (or here, if it has). Its exceptions are
    /// printed, as `multiprocessing` does with a callback's.
    fn on_done(&self, callback: Py<PyAny>) {
        self.handle.on_done(move |outcome| {
            let outcome = outcome.clone();
            // Not after the interpreter has begun to shut down.
            Python::try_attach(|py| {
                if let Err(raised) = callback.call1(py, (NativeOutcome::new(outcome),)) {
                    raised.print(py);
                }
            });
        });
    }
}
