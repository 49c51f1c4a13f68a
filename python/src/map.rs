//! A map over a Python iterable: a feeder thread pulls the items (taking
//! the GIL only for that) and sends them as tasks; a collector thread reads
//! the pool's results and passes them on through a channel, which the
//! Python side reads without the GIL. Dropping the map before its end
//! (`break` out of `imap`, `close()`, a `map` raising its first failure)
//! cancels its tasks still queued or running at once, through the map's
//! own canceller (the collector, which holds the results, may be waiting
//! for a long task's outcome); the pool's other work goes on.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use pyo3::exceptions::PyStopIteration;
use pyo3::prelude::*;
use pyo3::types::PyIterator;
use wasmproc::{CancelToken, Outcome, Pool, Task, TaskSender};

use crate::convert::{args_to_json, to_json};
use crate::outcome::NativeOutcome;
use crate::wait::{deadline, wait_for};

/// How many items the feeder pulls per hold of the GIL.
const FEED_BATCH: usize = 64;

/// How many ended tasks wait for the reader before the collector blocks
/// (the pool's own window bounds the tasks in flight).
const READ_AHEAD: usize = 1024;

/// What a map runs: the task, and the items it pulls its arguments from.
pub(crate) struct Input {
    task: String,
    items: Py<PyIterator>,
    /// Each item is a tuple of arguments (`starmap`).
    star: bool,
    /// The error an item raised after others in its batch.
    failed: Option<PyErr>,
}

impl Input {
    pub(crate) fn new(task: &str, items: &Bound<'_, PyAny>, star: bool) -> PyResult<Input> {
        Ok(Input {
            task: task.to_owned(),
            items: items.try_iter()?.unbind(),
            star,
            failed: None,
        })
    }

    /// The next tasks (up to [`FEED_BATCH`]), with the GIL; empty at the
    /// end. An item that fails (the iterable raised, an argument is not
    /// JSON) ends the input with that error, after the tasks before it.
    fn pull(&mut self, py: Python<'_>) -> PyResult<Vec<Task>> {
        if let Some(failed) = self.failed.take() {
            return Err(failed);
        }
        let mut tasks = Vec::with_capacity(FEED_BATCH);
        let items = self.items.bind(py);
        for _ in 0..FEED_BATCH {
            let task = match items.clone().next() {
                None => break,
                Some(item) => item.and_then(|item| {
                    let json = if self.star {
                        args_to_json(&item)?
                    } else {
                        to_json(&item)?
                    };
                    Ok(Task::call_json(&self.task, json))
                }),
            };
            match task {
                Ok(task) => tasks.push(task),
                Err(failed) if tasks.is_empty() => return Err(failed),
                Err(failed) => {
                    // The tasks before it go first; the error, next pull.
                    self.failed = Some(failed);
                    break;
                }
            }
        }
        Ok(tasks)
    }
}

/// A running map: its outcomes as `(input index, outcome)`, and the error
/// that ended its input early, if one did.
pub(crate) struct MapRun {
    outcomes: Receiver<(usize, Outcome)>,
    input_error: Arc<Mutex<Option<PyErr>>>,
    /// The map's canceller: its tasks end when it is dropped before its end.
    cancel: CancelToken,
}

impl Drop for MapRun {
    /// Nobody reads the rest: the collector would notice only at the next
    /// outcome, which a long task may hold up for minutes. A map that has
    /// ended has nothing left to cancel.
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// How a map runs: its results in input order or as tasks end, and how
/// many consecutive tasks share an instance.
pub(crate) struct MapShape {
    pub(crate) ordered: bool,
    pub(crate) chunksize: usize,
}

/// A map's results as `(input index, outcome)`, whatever their order.
type Outcomes<'p> = Box<dyn Iterator<Item = (usize, Outcome)> + Send + 'p>;

/// Starts the pool's map of `shape`: its sender, results and canceller.
fn stream<'p>(pool: &'p Pool, shape: &MapShape) -> (TaskSender, Outcomes<'p>, CancelToken) {
    let chunksize = shape.chunksize.max(1);
    if shape.ordered {
        let (sender, results) = pool.map_stream();
        let results = results.chunksize(chunksize);
        let cancel = results.cancel_token();
        (sender, Box::new(results.enumerate()), cancel)
    } else {
        let (sender, results) = pool.map_stream_unordered();
        let results = results.chunksize(chunksize);
        let cancel = results.cancel_token();
        (sender, Box::new(results), cancel)
    }
}

impl MapRun {
    /// The next outcome within `slice`: `Some(None)` once the map has
    /// ended, `None` if nothing came in time.
    pub(crate) fn next_within(&self, slice: Duration) -> Option<Option<(usize, Outcome)>> {
        match self.outcomes.recv_timeout(slice) {
            Ok(next) => Some(Some(next)),
            Err(RecvTimeoutError::Disconnected) => Some(None),
            Err(RecvTimeoutError::Timeout) => None,
        }
    }

    /// Raises the error that ended the input early, once.
    pub(crate) fn input_error(&self, _py: Python<'_>) -> PyResult<()> {
        let taken = self.input_error.lock().map(|mut slot| slot.take());
        match taken {
            Ok(Some(raised)) => Err(raised),
            _ => Ok(()),
        }
    }
}

/// Starts the feeder and the collector of a map over `input`.
pub(crate) fn start_map(
    py: Python<'_>,
    pool: &Arc<Pool>,
    shape: MapShape,
    mut input: Input,
) -> PyResult<MapRun> {
    let (to_reader, outcomes) = crossbeam_channel::bounded(READ_AHEAD);
    let input_error = Arc::new(Mutex::new(None));
    let (started, receive_started) = crossbeam_channel::bounded::<(TaskSender, CancelToken)>(1);
    let collector_pool = Arc::clone(pool);
    let spawn = |name: &str, work: Box<dyn FnOnce() + Send>| {
        std::thread::Builder::new()
            .name(name.into())
            .spawn(work)
            .map(drop)
            .map_err(|e| {
                pyo3::exceptions::PyRuntimeError::new_err(format!("cannot start a thread: {e}"))
            })
    };
    py.detach(|| {
        spawn(
            "wasmproc-py-collect",
            Box::new(move || {
                let pool = collector_pool;
                let (sender, results, cancel) = stream(&pool, &shape);
                if started.send((sender, cancel)).is_err() {
                    return;
                }
                for next in results {
                    // The reader is gone: dropping the results cancels the rest.
                    if to_reader.send(next).is_err() {
                        break;
                    }
                }
            }),
        )
    })?;
    let Ok((sender, cancel)) = py.detach(|| receive_started.recv()) else {
        return Err(pyo3::exceptions::PyRuntimeError::new_err(
            "the map's collector thread ended before it started",
        ));
    };
    let failed = Arc::clone(&input_error);
    py.detach(|| {
        spawn(
            "wasmproc-py-feed",
            Box::new(move || {
                loop {
                    // Not once the interpreter is shutting down.
                    let pulled = Python::try_attach(|py| input.pull(py)).unwrap_or(Ok(Vec::new()));
                    match pulled {
                        Ok(tasks) if tasks.is_empty() => break,
                        Ok(tasks) => {
                            // The map was dropped: nobody wants the rest.
                            if sender.send_all(tasks).is_err() {
                                break;
                            }
                        }
                        Err(raised) => {
                            if let Ok(mut slot) = failed.lock() {
                                *slot = Some(raised);
                            }
                            break;
                        }
                    }
                }
                // Dropping the sender ends the map once its tasks have ended.
                drop(sender);
                Python::try_attach(|_| drop(input));
            }),
        )
    })?;
    Ok(MapRun {
        outcomes,
        input_error,
        cancel,
    })
}

/// The outcomes of `imap` and `imap_unordered` as they come: an iterator
/// of `(input index, outcome)`.
#[pyclass(module = "wasmproc._native", name = "Map")]
pub(crate) struct NativeMap {
    run: Option<MapRun>,
}

impl NativeMap {
    pub(crate) fn new(run: MapRun) -> Self {
        NativeMap { run: Some(run) }
    }
}

impl NativeMap {
    /// The next outcome, waiting until `deadline` (`None`: as long as it
    /// takes): `None` if none came in time.
    fn next_before(
        &mut self,
        py: Python<'_>,
        deadline: Option<Instant>,
    ) -> PyResult<Option<(usize, NativeOutcome)>> {
        let Some(run) = &self.run else {
            return Err(PyStopIteration::new_err(()));
        };
        match wait_for(py, deadline, |slice| run.next_within(slice))? {
            None => Ok(None),
            Some(Some((index, outcome))) => Ok(Some((index, NativeOutcome::new(outcome)))),
            Some(None) => {
                let ended = self.run.take().expect("checked above");
                ended.input_error(py)?;
                Err(PyStopIteration::new_err(()))
            }
        }
    }
}

#[pymethods]
impl NativeMap {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&mut self, py: Python<'_>) -> PyResult<(usize, NativeOutcome)> {
        let next = self.next_before(py, None)?;
        Ok(next.expect("a wait with no deadline ends with an outcome or the map's end"))
    }

    /// The next `(index, outcome)` within `timeout` seconds (`None` if
    /// none came in time: the map goes on); `StopIteration` once the map
    /// has ended.
    fn next_within(
        &mut self,
        py: Python<'_>,
        timeout: f64,
    ) -> PyResult<Option<(usize, NativeOutcome)>> {
        let deadline = deadline(Some(timeout))?;
        self.next_before(py, deadline)
    }

    /// Stops the map: the tasks still queued or running are cancelled.
    fn close(&mut self) {
        self.run = None;
    }
}
