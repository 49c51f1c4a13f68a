//! The pool's and a run's keyword arguments as the library's settings:
//! limits (`timeout`, `max_memory`, `fuel`) and grants (`dirs`, `env`).

use std::collections::BTreeMap;
use std::time::Duration;

use bytesize::ByteSize;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use wasmproc::{Capabilities, DirGrant, Limits};

/// `max_memory`: bytes as an int, or a size such as `"64MiB"`.
#[derive(FromPyObject)]
pub(crate) enum Size {
    Bytes(u64),
    Text(String),
}

impl Size {
    fn bytes(&self) -> PyResult<u64> {
        match self {
            Size::Bytes(bytes) => Ok(*bytes),
            Size::Text(text) => text.trim().parse::<ByteSize>().map(|size| size.0).map_err(
                |error| {
                    PyValueError::new_err(format!(
                        "max_memory={text:?} is not a size ({error}): give bytes as an int or a \
                     size such as \"64MiB\""
                    ))
                },
            ),
        }
    }
}

/// The limits every task gets: the library's defaults, then these.
pub(crate) fn limits(
    timeout: Option<f64>,
    max_memory: Option<Size>,
    fuel: Option<u64>,
) -> PyResult<Limits> {
    let mut limits = Limits::default();
    if let Some(seconds) = timeout {
        let duration = Duration::try_from_secs_f64(seconds)
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or_else(|| {
                PyValueError::new_err(format!(
                    "timeout={seconds} is not a time limit: give a positive number of seconds, \
                     or None for no limit"
                ))
            })?;
        limits = limits.timeout(duration);
    }
    if let Some(size) = max_memory {
        limits = limits.max_memory(size.bytes()?);
    }
    if let Some(fuel) = fuel {
        limits = limits.fuel(fuel);
    }
    limits
        .validate()
        .map_err(|error| PyValueError::new_err(error.message().to_owned()))?;
    Ok(limits)
}

/// What every task may touch: `dirs` maps host directories to guest
/// paths, `env` names the variables the guest sees.
pub(crate) fn capabilities(
    dirs: Option<BTreeMap<String, String>>,
    env: Option<BTreeMap<String, String>>,
) -> PyResult<Capabilities> {
    let mut caps = Capabilities::default();
    for (host, guest) in dirs.unwrap_or_default() {
        if !std::path::Path::new(&host).is_dir() {
            return Err(PyValueError::new_err(format!(
                "dirs: `{host}` is not a directory here: dirs maps host directories to the \
                 paths the guest sees, e.g. dirs={{\"data\": \"/data\"}}"
            )));
        }
        caps = caps.dir(DirGrant::new(host, guest));
    }
    for (key, value) in env.unwrap_or_default() {
        caps = caps.env(key, value);
    }
    Ok(caps)
}

/// A worker command `[executable, *args]` for process isolation.
pub(crate) fn worker_command(command: Vec<String>) -> PyResult<(String, Vec<String>)> {
    let mut parts = command.into_iter();
    let executable = parts.next().ok_or_else(|| {
        PyTypeError::new_err("worker_command must name an executable, then its arguments")
    })?;
    Ok((executable, parts.collect()))
}
