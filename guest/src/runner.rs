//! What a task export does around the user's function: decode the argument,
//! call, encode the result, and report failures and panics to the host; and
//! what an initializer export does around one, which is the same but for the
//! result and what it leaves for the snapshot.

use std::sync::Once;

use serde::Serialize;
use serde::de::DeserializeOwned;
use wasmproc_abi::{PANIC_EXIT_CODE, failure};

use crate::{Failure, ffi};

/// Runs one task invocation; the `#[task]` macro's export calls this.
///
/// Returns the guest's exit code. `call` gets the decoded argument; a
/// decoding error is reported as bad input, which the host turns into
/// `BadInvocation`.
#[doc(hidden)]
pub fn run_task<A, R>(call: impl FnOnce(A) -> Result<R, Failure>) -> i32
where
    A: DeserializeOwned,
    R: Serialize,
{
    install_panic_hook();
    let Some(arg) = read_argument("task") else {
        return 1;
    };
    match call(arg) {
        Ok(result) => match serde_json::to_vec(&result) {
            Ok(bytes) => {
                ffi::write_output(&bytes);
                0
            }
            Err(error) => {
                ffi::fail(
                    failure::TASK_ERROR,
                    &format!("the task's result could not be serialized: {error}"),
                );
                1
            }
        },
        Err(failure) => {
            ffi::fail(failure::TASK_ERROR, failure.message());
            i32::from(failure.code())
        }
    }
}

/// Runs an initializer; the `#[init]` macro's export calls this.
///
/// As [`run_task`], without a result. Before returning it leaves the
/// instance fit to snapshot: standard output flushed (bytes buffered now
/// would be printed again by every task) and wasi-libc's table of granted
/// directories cleared (each task finds its own).
#[doc(hidden)]
pub fn run_init<A>(call: impl FnOnce(A) -> Result<(), Failure>) -> i32
where
    A: DeserializeOwned,
{
    install_panic_hook();
    let Some(arg) = read_argument("initializer") else {
        return 1;
    };
    let code = match call(arg) {
        Ok(()) => 0,
        Err(failure) => {
            ffi::fail(failure::TASK_ERROR, failure.message());
            i32::from(failure.code())
        }
    };
    let _ = std::io::Write::flush(&mut std::io::stdout());
    ffi::forget_preopens();
    code
}

/// The call's argument, decoded; `None` when it does not fit (the failure is
/// reported to the host).
fn read_argument<A: DeserializeOwned>(what: &str) -> Option<A> {
    let input = ffi::read_input();
    match serde_json::from_slice(&input) {
        Ok(arg) => Some(arg),
        Err(error) => {
            ffi::fail(
                failure::BAD_INPUT,
                &format!(
                    "{}{what}{}{error}",
                    wasmproc_abi::MISFIT_START,
                    wasmproc_abi::MISFIT_DETAIL
                ),
            );
            None
        }
    }
}

/// Ends the task at once with `failure`'s exit code and message, from
/// anywhere inside it.
///
/// Prefer returning `Err(Failure)` from the task; this is for deep call
/// stacks where threading a `Result` through is not worth it.
pub fn exit_with(failure: Failure) -> ! {
    ffi::fail(failure::TASK_ERROR, failure.message());
    ffi::exit(i32::from(failure.code()))
}

/// Reports panics to the host and exits with code 101.
///
/// wasm32-wasip1 builds abort on panic, so the message would otherwise be
/// lost in an `unreachable` trap. The hook runs before the abort.
fn install_panic_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let payload = info.payload();
            let text = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("Box<dyn Any>");
            let message = match info.location() {
                Some(at) => format!("{text} (at {}:{})", at.file(), at.line()),
                None => text.to_owned(),
            };
            eprintln!("task panicked: {message}");
            ffi::fail(failure::PANIC, &message);
            ffi::exit(i32::from(PANIC_EXIT_CODE));
        }));
    });
}
