//! Blocking waits that release the GIL and still let Ctrl-C through.

use std::time::{Duration, Instant};

use pyo3::prelude::*;

/// How long a wait runs without the GIL before it looks for signals
/// (Ctrl-C), which Python only delivers on its main thread, with the GIL.
pub(crate) const SIGNAL_CHECK: Duration = Duration::from_millis(100);

/// Waits for `poll` to give a value, in slices of [`SIGNAL_CHECK`] without
/// the GIL; between slices, a pending signal's exception (Ctrl-C's
/// `KeyboardInterrupt`) ends the wait. `deadline` ends it with `None` (after one poll, however
/// little time is left).
pub(crate) fn wait_for<T: Send>(
    py: Python<'_>,
    deadline: Option<Instant>,
    mut poll: impl FnMut(Duration) -> Option<T> + Send,
) -> PyResult<Option<T>> {
    loop {
        let (slice, last) = match deadline {
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                (left.min(SIGNAL_CHECK), left <= SIGNAL_CHECK)
            }
            None => (SIGNAL_CHECK, false),
        };
        // Polled at least once, also with no time left (`wait(0)`).
        if let Some(value) = py.detach(|| poll(slice)) {
            return Ok(Some(value));
        }
        py.check_signals()?;
        if last {
            return Ok(None);
        }
    }
}

/// A deadline `seconds` from now (`None`: no deadline).
pub(crate) fn deadline(seconds: Option<f64>) -> PyResult<Option<Instant>> {
    let Some(seconds) = seconds else {
        return Ok(None);
    };
    let timeout = Duration::try_from_secs_f64(seconds.max(0.0)).map_err(|_| {
        pyo3::exceptions::PyValueError::new_err(format!(
            "timeout={seconds} is not a number of seconds"
        ))
    })?;
    Ok(Some(Instant::now() + timeout))
}
