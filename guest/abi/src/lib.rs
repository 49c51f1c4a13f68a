//! The contract between the wasmproc host and guests built with `wasmproc-guest`.
//!
//! Both sides depend on this crate, so a name or a code is written once.
//! The contract, version 1:
//!
//! - A typed task is an exported function named [`TASK_EXPORT_PREFIX`] + the
//!   task's name, of type `() -> i32`. It returns the guest's exit code (0–125).
//! - The task pulls its argument (JSON bytes) with the imports
//!   [`INPUT_LEN`] and [`INPUT_READ`], and hands its result (JSON bytes) back
//!   with [`OUTPUT_WRITE`]. A failure is reported with [`FAIL`] and one of the
//!   [`failure`] kinds before the task returns or exits.
//! - All imports live in the module [`IMPORT_MODULE`]; a breaking change to
//!   this contract changes that name.
//! - A reactor module's `_initialize` export, if present, runs before the task.
//! - An initializer is an exported function named [`INIT_EXPORT_PREFIX`] +
//!   its name, of the same type and with the same imports as a task. The
//!   host runs it once and snapshots the instance (its memories and
//!   globals); tasks then start from that snapshot, which no longer exports
//!   `_initialize` nor the initializer that ran.
//! - Queues, the task's pipe and shared regions are reached through the
//!   imports in [`share`]; locks and the like over regions follow [`sync`].
//!
//! A component (wasm32-wasip2) follows the same contract through the WIT
//! package `wasmproc:guest@1.0.0` (`guest/wit/wasmproc.wit`): it imports
//! [`WIT_HOST_INTERFACE`] (the same functions, guest pointers made lists
//! and strings) and exports [`WIT_TASKS_INTERFACE`], whose [`WIT_RUN_TASK`]
//! and [`WIT_RUN_INIT`] run a task or an initializer by name, returning
//! its exit code (-1: no such name).
#![no_std]

pub mod share;
pub mod sync;

/// The import module that the host provides to SDK guests.
pub const IMPORT_MODULE: &str = "wasmproc_v1";

/// The WIT interface a component imports the contract from.
pub const WIT_HOST_INTERFACE: &str = "wasmproc:guest/host@1.0.0";

/// The WIT interface an SDK component exports its tasks through.
pub const WIT_TASKS_INTERFACE: &str = "wasmproc:guest/tasks@1.0.0";

/// `run-task: func(name: string) -> s32`, in [`WIT_TASKS_INTERFACE`].
pub const WIT_RUN_TASK: &str = "run-task";

/// `run-init: func(name: string) -> s32`, in [`WIT_TASKS_INTERFACE`].
pub const WIT_RUN_INIT: &str = "run-init";

/// What [`WIT_RUN_TASK`] and [`WIT_RUN_INIT`] return for a name the
/// component does not have.
pub const WIT_NO_SUCH_NAME: i32 = -1;

/// Every typed task is exported under this prefix followed by its name.
pub const TASK_EXPORT_PREFIX: &str = "wasmproc_task:";

/// Every initializer is exported under this prefix followed by its name.
pub const INIT_EXPORT_PREFIX: &str = "wasmproc_init:";

/// `input_len() -> i32`: the length in bytes of the task's argument.
pub const INPUT_LEN: &str = "input_len";

/// `input_read(ptr: i32)`: copies the whole argument to guest memory at `ptr`.
pub const INPUT_READ: &str = "input_read";

/// `output_write(ptr: i32, len: i32)`: sets the task's result (JSON bytes).
pub const OUTPUT_WRITE: &str = "output_write";

/// `fail(kind: i32, ptr: i32, len: i32)`: reports why the task failed, with a
/// UTF-8 message.
pub const FAIL: &str = "fail";

/// The kinds of failure a guest reports with [`FAIL`].
pub mod failure {
    /// The task returned an error; its exit code is the task's return value.
    pub const TASK_ERROR: i32 = 1;
    /// The task panicked; the guest exits with [`super::PANIC_EXIT_CODE`].
    pub const PANIC: i32 = 2;
    /// The argument did not decode into the task's parameter type.
    pub const BAD_INPUT: i32 = 3;
}

/// The message of a [`failure::BAD_INPUT`] failure: this, what was called
/// (`task` or `initializer`), [`MISFIT_DETAIL`], then the decoder's own
/// words. Hosts find those words by these two strings, to explain the
/// mistake with the task's signature.
pub const MISFIT_START: &str = "the argument does not fit the ";

/// See [`MISFIT_START`].
pub const MISFIT_DETAIL: &str = "'s parameter type: ";

/// The exit code of a task that panicked, as for a native Rust program.
pub const PANIC_EXIT_CODE: u8 = 101;

/// The highest exit code a guest owns; the host owns 126–255.
pub const MAX_GUEST_EXIT_CODE: u8 = 125;

/// The name of a task's export: [`TASK_EXPORT_PREFIX`] followed by `name`.
///
/// Returns `None` when `export` is not a task export.
pub fn task_name(export: &str) -> Option<&str> {
    export.strip_prefix(TASK_EXPORT_PREFIX)
}

/// The name of an initializer's export: [`INIT_EXPORT_PREFIX`] followed by
/// `name`.
///
/// Returns `None` when `export` is not an initializer export.
pub fn init_name(export: &str) -> Option<&str> {
    export.strip_prefix(INIT_EXPORT_PREFIX)
}

/// Whether `name` can name a task: a Rust-style identifier
/// (`[A-Za-z_][A-Za-z0-9_]*`), so it reads the same in code, on the command
/// line and in JSON.
pub fn is_valid_task_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}
