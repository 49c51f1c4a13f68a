//! Connection handlers for the `serve` tests, one per behaviour; the tests
//! pick one with `--task` (or `Entry::Task`).

use std::io::{self, Read, Write};

use wasmproc_guest::Connection;

/// Sends back every byte as it arrives; returns at the peer's end of file.
#[wasmproc_guest::handler]
fn echo(connection: &mut Connection) -> io::Result<()> {
    let mut buffer = vec![0u8; 64 << 10];
    loop {
        let n = connection.read(&mut buffer)?;
        if n == 0 {
            return Ok(());
        }
        connection.write_all(&buffer[..n])?;
    }
}

/// Reads everything the peer sends, then answers with how many bytes it
/// read and the bytes' sum, as `LEN SUM\n`: a client can send a large
/// payload and close its side before reading (half-close).
#[wasmproc_guest::handler]
fn count(connection: &mut Connection) -> io::Result<()> {
    let mut bytes = Vec::new();
    connection.read_to_end(&mut bytes)?;
    let sum: u64 = bytes.iter().map(|&b| u64::from(b)).sum();
    writeln!(connection, "{} {sum}", bytes.len())
}

/// Reads a decimal byte count as the first line, then sends that many
/// bytes of a known pattern (`i % 251`).
#[wasmproc_guest::handler]
fn send(connection: &mut Connection) -> io::Result<()> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while connection.read(&mut byte)? == 1 && byte[0] != b'\n' {
        line.push(byte[0]);
    }
    let len: usize = String::from_utf8_lossy(&line)
        .trim()
        .parse()
        .map_err(io::Error::other)?;
    let pattern: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    let mut out = io::BufWriter::with_capacity(64 << 10, &mut *connection);
    out.write_all(&pattern)?;
    out.flush()
}

/// Greets, then traps (an unreachable instruction).
#[wasmproc_guest::handler]
fn trap(connection: &mut Connection) -> io::Result<()> {
    connection.write_all(b"about to trap\n")?;
    std::process::abort()
}

/// Greets, then panics.
#[wasmproc_guest::handler]
fn panic(connection: &mut Connection) -> io::Result<()> {
    connection.write_all(b"about to panic\n")?;
    panic!("the handler was told to panic")
}

/// Greets, then loops without end.
#[wasmproc_guest::handler]
fn spin(connection: &mut Connection) -> io::Result<()> {
    connection.write_all(b"spinning\n")?;
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

/// Writes without end, whether or not the peer reads.
#[wasmproc_guest::handler]
fn flood(connection: &mut Connection) -> io::Result<()> {
    let block = vec![b'x'; 64 << 10];
    loop {
        connection.write_all(&block)?;
    }
}

/// Tries to reach what it was not granted: a file of the host, and a
/// socket; writes what happened to each, one line each.
#[wasmproc_guest::handler]
fn escape(connection: &mut Connection) -> io::Result<()> {
    let mut target = String::new();
    let mut byte = [0u8; 1];
    while connection.read(&mut byte)? == 1 && byte[0] != b'\n' {
        target.push(char::from(byte[0]));
    }
    let file = match std::fs::read("/etc/hostname") {
        Ok(_) => "file: opened".to_owned(),
        Err(error) => format!("file: refused ({error})"),
    };
    let socket = match std::net::TcpStream::connect(target.trim()) {
        Ok(_) => "socket: connected".to_owned(),
        Err(error) => format!("socket: refused ({error})"),
    };
    writeln!(connection, "{file}\n{socket}")
}

/// Reads its stdin through the connection and answers with the guest's
/// environment variable `GREETING` (to check that grants reach handlers).
#[wasmproc_guest::handler]
fn greet(connection: &mut Connection) -> io::Result<()> {
    let greeting = std::env::var("GREETING").unwrap_or_else(|_| "no greeting".into());
    writeln!(connection, "{greeting}")
}
