//! Per-task limits and their documented defaults.

use std::time::Duration;

use crate::error::{Error, ErrorKind};

/// The default memory limit: 4 GiB, all that a wasm32 memory can address,
/// and the most any task may have (the instance pool reserves 4 GiB for
/// each memory, memory64 ones too). It is per task, over all the task's
/// memories together: a pool of N workers may use N times as much.
pub const DEFAULT_MAX_MEMORY: u64 = 4 << 30;

/// The default cap on each captured output stream (stdout, stderr): 1 MiB.
/// Bytes past it are dropped and the capture is marked truncated; the guest
/// is not stopped.
pub const DEFAULT_MAX_OUTPUT: usize = 1 << 20;

/// The default cap on each of a task's inputs: its serialized argument,
/// its argv and env together, and its stdin bytes: 64 MiB.
pub const DEFAULT_MAX_ARGS: usize = 64 << 20;

/// The default cap on a typed task's result: 64 MiB.
pub const DEFAULT_MAX_RESULT: usize = 64 << 20;

/// The most any size limit (input, result, output) may be set to: 1 GiB.
/// Everything a task sends or returns then fits one message to and from a
/// worker process.
pub const MAX_SIZE_LIMIT: usize = 1 << 30;

/// The largest memory a wasm32 module can address: 4 GiB.
const WASM32_MAX_MEMORY: u64 = 4 << 30;

/// The default wasm stack limit of a [`Runtime`](crate::Runtime): 1 MiB.
pub const DEFAULT_MAX_WASM_STACK: usize = 1 << 20;

/// Limits on one task. Every limit, when hit, ends the task with its own
/// exit status; none of them is advisory.
///
/// By default a task has no timeout and no fuel limit, may use
/// [`DEFAULT_MAX_MEMORY`], and its captured outputs are capped at
/// [`DEFAULT_MAX_OUTPUT`] each.
///
/// ```
/// use std::time::Duration;
/// use wasmproc::Limits;
///
/// let limits = Limits::default()
///     .timeout(Duration::from_millis(500))
///     .max_memory(64 << 20);
/// assert_eq!(limits.timeout, Some(Duration::from_millis(500)));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct Limits {
    /// The wall-clock limit, if any ([`Limits::timeout()`]).
    pub timeout: Option<Duration>,
    /// The fuel limit, if any ([`Limits::fuel()`]).
    pub fuel: Option<u64>,
    /// The memory limit in bytes ([`Limits::max_memory()`]).
    pub max_memory: u64,
    /// The cap on each captured output stream, in bytes
    /// ([`Limits::max_output()`]).
    pub max_output: usize,
    /// The cap on each of a task's inputs, in bytes ([`Limits::max_args()`]).
    pub max_args: usize,
    /// The cap on a typed task's result, in bytes ([`Limits::max_result()`]).
    pub max_result: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: None,
            fuel: None,
            max_memory: DEFAULT_MAX_MEMORY,
            max_output: DEFAULT_MAX_OUTPUT,
            max_args: DEFAULT_MAX_ARGS,
            max_result: DEFAULT_MAX_RESULT,
        }
    }
}

impl Limits {
    /// Ends the task with `TimedOut` once `timeout` of wall-clock time has
    /// passed since it started, also while the guest is blocked in a host
    /// call (sleeping, reading stdin). By default there is no timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Gives the task `fuel` units (about one per wasm instruction) and ends
    /// it with `FuelExhausted` when they run out. By default fuel is not
    /// metered, and tasks that do not ask for it pay nothing for it.
    pub fn fuel(mut self, fuel: u64) -> Self {
        self.fuel = Some(fuel);
        self
    }

    /// Ends the task with `MemoryExceeded` when its memories together (every
    /// linear memory of the module, or of each core instance of a
    /// component, and the GC heap) would grow past `bytes`. By default
    /// [`DEFAULT_MAX_MEMORY`], which is also the most it may be.
    pub fn max_memory(mut self, bytes: u64) -> Self {
        self.max_memory = bytes;
        self
    }

    /// Caps each captured output stream at `bytes`. By default
    /// [`DEFAULT_MAX_OUTPUT`].
    pub fn max_output(mut self, bytes: usize) -> Self {
        self.max_output = bytes;
        self
    }

    /// Caps each of a task's inputs at `bytes`: its serialized argument, its
    /// argv and env together, and its stdin bytes. A larger input is a
    /// `BadInvocation`, checked before the task is sent anywhere. By default
    /// [`DEFAULT_MAX_ARGS`]; at most [`MAX_SIZE_LIMIT`].
    pub fn max_args(mut self, bytes: usize) -> Self {
        self.max_args = bytes;
        self
    }

    /// Caps a typed task's result at `bytes`. A guest that hands back a
    /// larger one ends with `MemoryExceeded`: its result would not fit the
    /// memory the host sets aside for it. By default [`DEFAULT_MAX_RESULT`];
    /// at most [`MAX_SIZE_LIMIT`].
    pub fn max_result(mut self, bytes: usize) -> Self {
        self.max_result = bytes;
        self
    }

    /// Checks that the limits can be met and take effect: a zero timeout,
    /// zero fuel or a memory limit below one wasm page cannot run anything;
    /// a memory limit above 4 GiB or a size limit above
    /// [`MAX_SIZE_LIMIT`] could never be reached.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::BadInvocation`], naming the limit and a value that works.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |message: String| Err(Error::new(ErrorKind::BadInvocation, message));
        if self.timeout == Some(Duration::ZERO) {
            return bad("the timeout must be longer than zero (e.g. 500ms or 5s)".into());
        }
        if self.fuel == Some(0) {
            return bad("the fuel limit must be at least 1".into());
        }
        if self.max_memory < WASM_PAGE {
            return bad(format!(
                "the memory limit must be at least one wasm page (64KiB), not {} bytes",
                self.max_memory
            ));
        }
        if self.max_memory > WASM32_MAX_MEMORY {
            return bad(format!(
                "a memory limit of {} is more than wasmproc gives a task: its memories \
                 hold at most 4GiB together (the default, all that a wasm32 memory \
                 addresses), memory64 ones too; give at most 4GiB",
                human(self.max_memory)
            ));
        }
        for (what, value) in [
            ("argument", self.max_args),
            ("result", self.max_result),
            ("output", self.max_output),
        ] {
            if value > MAX_SIZE_LIMIT {
                return bad(format!(
                    "the {what} limit of {} is over the most wasmproc allows, 1GiB",
                    human(value as u64)
                ));
            }
        }
        Ok(())
    }
}

/// The size of a wasm page.
const WASM_PAGE: u64 = 64 << 10;

/// A size in binary units, as messages show it (`64 MiB`).
pub(crate) fn human(bytes: u64) -> String {
    bytesize::ByteSize(bytes).display().iec().to_string()
}
