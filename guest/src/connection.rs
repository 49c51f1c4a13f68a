//! The connection a `#[handler]` serves: the guest's stdin and stdout, as
//! one `Read + Write` stream (the host's `wasmproc serve`, or any host that
//! hands a task a connection).

use std::io::{self, Read, Write};

/// A client's connection: reads give what the peer sent (end of file once
/// it closed its side), writes go to the peer at once. The host hangs it up
/// when the handler returns.
///
/// It is the guest's stdin and stdout: a WASI command gets the same
/// connection by reading stdin and writing stdout, in any language.
#[derive(Debug)]
pub struct Connection {
    _only_from_the_runner: (),
}

impl Connection {
    #[doc(hidden)]
    pub fn __new() -> Self {
        Connection {
            _only_from_the_runner: (),
        }
    }
}

impl Read for Connection {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        io::stdin().read(buf)
    }
}

impl Write for Connection {
    /// Writes and sends at once: a connection is not line-buffered as
    /// stdout is (wrap it in a `BufWriter` to gather small writes).
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut out = io::stdout().lock();
        let n = out.write(buf)?;
        out.flush()?;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stdout().flush()
    }
}
