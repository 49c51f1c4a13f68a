//! A minimal HTTP/1.1 responder, one fresh sandbox per connection:
//!
//! ```sh
//! cargo build --release -p wasmproc-guest --example http --target wasm32-wasip1
//! wasmproc serve target/wasm32-wasip1/release/examples/http.wasm --listen 127.0.0.1:8080
//! curl -i http://127.0.0.1:8080/hello
//! ```
//!
//! It reads the request head, answers `200 OK` with a line naming the
//! request, and closes (`Connection: close`): the host hangs up when the
//! handler returns. The same logic in C is `examples/c/http.c`.

use std::io::{self, Read, Write};

use wasmproc_guest::Connection;

/// The most a request head may take; a longer one gets `431`.
const MAX_HEAD: usize = 8 << 10;

#[wasmproc_guest::handler]
fn http(connection: &mut Connection) -> io::Result<()> {
    let Some(head) = read_head(connection)? else {
        return respond(
            connection,
            "431 Request Header Fields Too Large",
            "the request head is over 8 KiB\n",
        );
    };
    let request_line = head.lines().next().unwrap_or_default();
    let mut words = request_line.split(' ');
    match (words.next(), words.next(), words.next()) {
        (Some(method), Some(target), Some(version)) if version.starts_with("HTTP/1.") => {
            let body = format!("Hello from a wasmproc sandbox: {method} {target}\n");
            respond(connection, "200 OK", &body)
        }
        _ => respond(
            connection,
            "400 Bad Request",
            "not an HTTP/1.x request line\n",
        ),
    }
}

/// The request head up to its blank line, or `None` when it is too long.
/// A peer that closes early gives what it sent.
fn read_head(connection: &mut Connection) -> io::Result<Option<String>> {
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() > MAX_HEAD {
            return Ok(None);
        }
        let n = connection.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&chunk[..n]);
    }
    Ok(Some(String::from_utf8_lossy(&head).into_owned()))
}

/// Writes the whole response in one piece.
fn respond(connection: &mut Connection, status: &str, body: &str) -> io::Result<()> {
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    connection.write_all(response.as_bytes())
}
