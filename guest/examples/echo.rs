//! A WASI command that copies stdin to stdout, for `wasmproc serve`: each
//! connection's bytes come back (upper-cased with `--upper`, the argv
//! given after `--`).
//!
//! ```sh
//! cargo build --release -p wasmproc-guest --examples --target wasm32-wasip1
//! wasmproc serve target/wasm32-wasip1/release/examples/echo.wasm --listen 127.0.0.1:7000 -- --upper
//! ```

use std::io::{Read, Write};

fn main() -> std::io::Result<()> {
    let upper = std::env::args().skip(1).any(|arg| arg == "--upper");
    let (mut input, mut output) = (std::io::stdin().lock(), std::io::stdout().lock());
    let mut buffer = [0u8; 8192];
    loop {
        let read = input.read(&mut buffer)?;
        if read == 0 {
            return Ok(());
        }
        let chunk = &mut buffer[..read];
        if upper {
            chunk.make_ascii_uppercase();
        }
        output.write_all(chunk)?;
        output.flush()?;
    }
}
