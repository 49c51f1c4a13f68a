//! `wasmproc.Lock`, `Event`, `Semaphore` and `Barrier`: the library's
//! robust lock and its other primitives, each in a small shared region of its own, granted to tasks by
//! name and used from Python with `multiprocessing`'s methods. Waits
//! release the GIL and let Ctrl-C through.

use std::sync::{Arc, Mutex};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use self_cell::self_cell;
use wasmproc::{Barrier, Event, Lock, LockGuard, Semaphore};

use crate::convert::error;
use crate::wait::{deadline, wait_for};

self_cell!(
    /// A lock held from Python: its guard, which borrows the lock.
    struct Held {
        owner: Arc<Lock>,
        #[covariant]
        dependent: LockGuard,
    }
);

/// A lock that tasks take by name (`Lock::open("lock")` in a guest).
#[pyclass(frozen, module = "wasmproc._native", name = "Lock")]
pub(crate) struct NativeLock {
    pub(crate) lock: Arc<Lock>,
    held: Mutex<Option<Held>>,
}

#[pymethods]
impl NativeLock {
    #[new]
    fn new(py: Python<'_>) -> PyResult<Self> {
        let lock = Lock::new().map_err(|e| error(py, e))?;
        Ok(NativeLock {
            lock: Arc::new(lock),
            held: Mutex::new(None),
        })
    }

    /// Takes the lock, waiting up to `timeout` seconds (`None`: as long as
    /// it takes; 0: not at all); whether it was taken. A lock whose holder
    /// ended without releasing it (a task that trapped) is taken all the
    /// same: the lock is robust.
    #[pyo3(signature = (timeout=None))]
    fn acquire(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let until = deadline(timeout)?;
        let taken = wait_for(py, until, |slice| {
            Held::try_new(Arc::clone(&self.lock), |lock| {
                match lock.lock_timeout(slice) {
                    Some(Ok(guard)) => Ok(guard),
                    Some(Err(died)) => Ok(died.into_guard()),
                    None => Err(()),
                }
            })
            .ok()
        })?;
        match taken {
            Some(held) => {
                *self.held.lock().unwrap_or_else(|p| p.into_inner()) = Some(held);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Releases it (from any thread, as `multiprocessing.Lock`);
    /// `ValueError` if this side does not hold it.
    fn release(&self) -> PyResult<()> {
        let held = self.held.lock().unwrap_or_else(|p| p.into_inner()).take();
        match held {
            Some(held) => {
                drop(held);
                Ok(())
            }
            None => Err(PyValueError::new_err("release of an unacquired lock")),
        }
    }
}

/// An event that tasks open by name (`Event::open("done")` in a guest).
#[pyclass(frozen, module = "wasmproc._native", name = "Event")]
pub(crate) struct NativeEvent {
    pub(crate) event: Event,
}

#[pymethods]
impl NativeEvent {
    #[new]
    fn new(py: Python<'_>) -> PyResult<Self> {
        let event = Event::new().map_err(|e| error(py, e))?;
        Ok(NativeEvent { event })
    }

    fn set(&self) {
        self.event.set();
    }

    fn clear(&self) {
        self.event.clear();
    }

    fn is_set(&self) -> bool {
        self.event.is_set()
    }

    /// Waits until it is set, up to `timeout` seconds (`None`: as long as
    /// it takes); whether it is set.
    #[pyo3(signature = (timeout=None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let until = deadline(timeout)?;
        let set = wait_for(py, until, |slice| {
            self.event.wait_timeout(slice).then_some(())
        })?;
        Ok(set.is_some())
    }
}

/// A counting semaphore that tasks open by name.
#[pyclass(frozen, module = "wasmproc._native", name = "Semaphore")]
pub(crate) struct NativeSemaphore {
    pub(crate) semaphore: Semaphore,
}

#[pymethods]
impl NativeSemaphore {
    #[new]
    fn new(py: Python<'_>, permits: u32) -> PyResult<Self> {
        let semaphore = Semaphore::new(permits).map_err(|e| error(py, e))?;
        Ok(NativeSemaphore { semaphore })
    }

    /// Takes a permit, waiting up to `timeout` seconds (`None`: as long as
    /// it takes); whether it got one.
    #[pyo3(signature = (timeout=None))]
    fn acquire(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let until = deadline(timeout)?;
        let taken = wait_for(py, until, |slice| {
            self.semaphore.acquire_timeout(slice).then_some(())
        })?;
        Ok(taken.is_some())
    }

    /// Gives a permit back.
    fn release(&self) {
        self.semaphore.release();
    }

    /// The permits free now.
    fn available(&self) -> u32 {
        self.semaphore.available()
    }
}

/// A barrier for `parties` waiters (this process's and tasks') that tasks
/// open by name.
#[pyclass(frozen, module = "wasmproc._native", name = "Barrier")]
pub(crate) struct NativeBarrier {
    pub(crate) barrier: Barrier,
}

#[pymethods]
impl NativeBarrier {
    #[new]
    fn new(py: Python<'_>, parties: u32) -> PyResult<Self> {
        let barrier = Barrier::new(parties).map_err(|e| error(py, e))?;
        Ok(NativeBarrier { barrier })
    }

    /// Waits for the others, up to `timeout` seconds (`None`: as long as
    /// it takes): `Some(true)` for the last to arrive, `Some(false)` for
    /// the others, `None` when the time ran out (the round is then broken).
    /// One wait without the GIL, not slices: a timed-out wait breaks the
    /// round, so Ctrl-C is seen only once it returns.
    #[pyo3(signature = (timeout=None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<bool>> {
        let Some(until) = deadline(timeout)? else {
            return Ok(Some(py.detach(|| self.barrier.wait())));
        };
        let left = until.saturating_duration_since(std::time::Instant::now());
        Ok(py.detach(|| self.barrier.wait_timeout(left)))
    }
}
