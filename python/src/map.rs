//! A map over a Python iterable: a feeder thread pulls the items (taking
//! the GIL only for that) and sends them as tasks; a collector thread reads
//! the pool's results and passes them on through a channel, which the
//! Python side reads without the GIL. Dropping the map before its end
//! (`break` out of `imap`, `close()`, a `map` raising its first failure)
//! cancels the tasks still queued or running: at once when the map is the
//! pool's only work (see [`crate::activity`]), else when its next task ends.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError};
use pyo3::exceptions::PyStopIteration;
use pyo3::prelude::*;
use pyo3::types::PyIterator;
use wasmproc::{Executor, MapOptions, Outcome, Pool, Task, TaskSender};

use crate::activity::{Activity, Busy};
use crate::convert::{args_to_json, to_json};
use crate::outcome::NativeOutcome;
use crate::wait::wait_for;

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
    /// To cancel the map's tasks when it is dropped before its end.
    pool: Arc<Pool>,
    activity: Arc<Activity>,
    /// The map's id in `activity` (live while its collector runs).
    id: u64,
}

impl Drop for MapRun {
    /// Nobody reads the rest: the collector would notice only at the next
    /// outcome, which a long task may hold up for minutes. A map that has
    /// ended is no longer live, so this cancels nothing then.
    fn drop(&mut self) {
        self.activity.cancel_if_alone(self.id, &self.pool);
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
    activity: &Arc<Activity>,
    options: MapOptions,
    mut input: Input,
) -> PyResult<MapRun> {
    let (to_reader, outcomes) = crossbeam_channel::bounded(READ_AHEAD);
    let input_error = Arc::new(Mutex::new(None));
    let (senders, receive_sender) = crossbeam_channel::bounded::<TaskSender>(1);
    // Live until the collector has dropped the library's results.
    let busy: Busy = activity.begin();
    let id = busy.id();
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
                let (sender, results) =
                    pool.map_stream_with(options, Box::new(|_, outcome| outcome));
                if senders.send(sender).is_err() {
                    return;
                }
                for next in results {
                    // The reader is gone: dropping the results cancels the rest.
                    if to_reader.send(next).is_err() {
                        break;
                    }
                }
                // The loop has dropped the results: the map is live until
                // the library has cancelled what was left.
                drop(busy);
            }),
        )
    })?;
    let Ok(sender) = py.detach(|| receive_sender.recv()) else {
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
        pool: Arc::clone(pool),
        activity: Arc::clone(activity),
        id,
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

#[pymethods]
impl NativeMap {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&mut self, py: Python<'_>) -> PyResult<(usize, NativeOutcome)> {
        let Some(run) = &self.run else {
            return Err(PyStopIteration::new_err(()));
        };
        let next = wait_for(py, None, |slice| run.next_within(slice))?;
        match next.flatten() {
            Some((index, outcome)) => Ok((index, NativeOutcome::new(outcome))),
            None => {
                let ended = self.run.take().expect("checked above");
                ended.input_error(py)?;
                Err(PyStopIteration::new_err(()))
            }
        }
    }

    /// Stops the map: the tasks still queued or running are cancelled.
    fn close(&mut self) {
        self.run = None;
    }
}
