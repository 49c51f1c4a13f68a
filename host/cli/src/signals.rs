//! Ctrl-C and SIGTERM, the same way for every command: the first asks the
//! command to stop gently (what that means is the command's: cancel a run,
//! stop taking connections), a second exits at once with 130 (a server
//! first ends its connections in flight, and exits at a third).
//!
//! A command that must end within a bound whatever it is doing (a run
//! whose output nobody reads is blocked in a write that no cancellation
//! reaches) also arms a timer with the first signal: when the bound
//! passes, the process exits with 130.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use wasmproc::ExitStatus;

/// How long a run or a map may take to end after the first signal before
/// the process exits without waiting for it.
pub(crate) const STOP_WITHIN: Duration = Duration::from_secs(2);

/// Installs the handler: `first` runs on the first signal; with `bound`,
/// the process exits with 130 that long after it, should it still be
/// running; a second signal exits at once. `what` says, in a warning, what
/// will not happen when no handler can be installed.
pub(crate) fn on_interrupt(first: impl Fn() + Send + 'static, bound: Option<Duration>, what: &str) {
    on_interrupts(first, || exit_now(), bound, what);
}

/// As [`on_interrupt`], with `second` run on the second signal instead
/// of exiting (a server ends its connections in flight); a third exits.
pub(crate) fn on_interrupts(
    first: impl Fn() + Send + 'static,
    second: impl Fn() + Send + 'static,
    bound: Option<Duration>,
    what: &str,
) {
    let signals = AtomicUsize::new(0);
    let installed = ctrlc::set_handler(move || match signals.fetch_add(1, Ordering::SeqCst) {
        0 => {
            first();
            if let Some(bound) = bound {
                let armed = std::thread::Builder::new()
                    .name("wasmproc-stop-timer".into())
                    .spawn(move || {
                        std::thread::sleep(bound);
                        exit_now();
                    });
                if armed.is_err() {
                    exit_now();
                }
            }
        }
        1 => second(),
        _ => exit_now(),
    });
    if let Err(error) = installed {
        say!("wasmproc: warning: Ctrl-C and SIGTERM will not {what}: {error}");
    }
}

/// Writes `line` to stderr, from a signal handler: a closed stderr (its
/// reader gone) must not end the handler, which would leave the next
/// signal unheard.
pub(crate) fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Exits with 130 now, without flushing the standard streams: a flush
/// could block on the very pipe that nobody reads.
pub(crate) fn exit_now() -> ! {
    let code = i32::from(ExitStatus::Cancelled.code());
    #[cfg(unix)]
    {
        // SAFETY: `_exit` takes a plain integer and has no preconditions;
        // it ends the process without running anything else, which is the
        // point (no buffered stream is flushed, no lock is taken).
        unsafe { libc::_exit(code) }
    }
    #[cfg(not(unix))]
    {
        std::process::exit(code)
    }
}
