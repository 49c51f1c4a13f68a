//! How a task says it failed: a message and the exit code of the guest.

use std::fmt;

/// A task's failure: the message the host reports and the guest's exit code.
///
/// A task returning `Result<R, E>` fails with exit code 1 and `E`'s
/// `Display` text, for any `E: Display` (`String`, `&str`, `std::io::Error`,
/// your own error types). Return a `Failure` to choose the exit code:
///
/// ```
/// use wasmproc_guest::Failure;
///
/// fn parse_port(text: String) -> Result<u16, Failure> {
///     text.trim().parse().map_err(|e| Failure::new(64, format!("not a port: {e}")))
/// }
/// assert_eq!(parse_port("x".into()).unwrap_err().code(), 64);
/// ```
///
/// `Failure` deliberately does not implement `Display`, so that every
/// `Display` type converts into it with `?`.
pub struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    /// A failure with exit code `code` and a message.
    ///
    /// The guest owns exit codes 1–125 for failures (0 means success, so a
    /// `code` of 0 becomes 1). A code above 125 belongs to the host: the
    /// task then ends as a `host_error` trap whose message names the code,
    /// as for any guest that exits with such a code.
    pub fn new(code: u8, message: impl Into<String>) -> Self {
        Failure {
            code: code.max(1),
            message: message.into(),
        }
    }

    /// The exit code the guest ends with.
    pub fn code(&self) -> u8 {
        self.code
    }

    /// The message reported to the host.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Debug for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Failure(code {}): {}", self.code, self.message)
    }
}

impl<E: fmt::Display> From<E> for Failure {
    fn from(error: E) -> Self {
        Failure::new(1, error.to_string())
    }
}
