//! The README's typed tasks: small functions over numbers and a record, run
//! with `wasmproc run`, `map`, `inspect` and a cluster's `map --nats`.
//!
//! ```sh
//! cargo build --release -p wasmproc-guest --examples --target wasm32-wasip1
//! wasmproc run target/wasm32-wasip1/release/examples/squares.wasm --task square --args 7
//! wasmproc run target/wasm32-wasip1/release/examples/squares.wasm --task polar --args '{"x": 3.0, "y": 4.0}'
//! ```

use serde::{Deserialize, Serialize};
use wasmproc_guest::{Failure, task};

/// `x * x`.
#[task]
fn square(x: u64) -> u64 {
    x * x
}

/// `a + b`: a task with two parameters takes a JSON array, `[a, b]`.
#[task]
fn add(a: u64, b: u64) -> u64 {
    a + b
}

/// A port number from text, or exit code 64 with the reason.
#[task]
fn parse_port(text: String) -> Result<u16, Failure> {
    text.trim()
        .parse()
        .map_err(|e| Failure::new(64, format!("not a port: {e}")))
}

/// A point in the plane, in cartesian coordinates.
#[derive(Deserialize, wasmproc_guest::Describe)]
pub struct Point {
    /// Along the horizontal axis.
    pub x: f64,
    /// Along the vertical axis.
    pub y: f64,
}

/// The same point in polar coordinates.
#[derive(Serialize, wasmproc_guest::Describe)]
pub struct Polar {
    /// The distance from the origin.
    pub r: f64,
    /// The angle from the horizontal axis, in radians.
    pub theta: f64,
}

/// `p` in polar coordinates.
#[task]
fn polar(p: Point) -> Polar {
    Polar {
        r: p.x.hypot(p.y),
        theta: p.y.atan2(p.x),
    }
}
