//! Typed tasks for the test suite: rich types, failures, panics, traps and
//! every limit.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};

use serde::{Deserialize, Serialize};
use wasmproc_guest::{Failure, task};

#[task]
fn square(x: u64) -> u64 {
    x * x
}

#[task]
fn add(a: i64, b: i64) -> i64 {
    a + b
}

#[task]
fn nothing() {}

/// A character in, its upper case out.
#[task]
fn upper(c: char) -> String {
    c.to_uppercase().collect()
}

static CALLS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// How many times this instance ran it: 1 in a fresh instance.
#[task]
fn calls() -> u32 {
    CALLS.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1
}

#[task]
fn echo(value: serde_json::Value) -> serde_json::Value {
    value
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Shipping {
    Pickup,
    Courier { days: u8 },
    Post(String),
}

#[derive(Debug, Deserialize)]
struct Line {
    sku: String,
    qty: u32,
    price_cents: u64,
}

#[derive(Debug, Deserialize)]
struct Order {
    id: u64,
    customer: Option<String>,
    lines: Vec<Line>,
    tags: HashMap<String, String>,
    shipping: Shipping,
    discount: Option<f64>,
}

#[derive(Debug, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Delivery {
    InStore,
    Days { days: u8 },
    Address { to: String },
}

#[derive(Debug, Serialize)]
struct Summary {
    id: u64,
    customer: String,
    total_cents: u64,
    items: u32,
    per_sku: BTreeMap<String, u32>,
    delivery: Delivery,
    tag_keys: Vec<String>,
    discounted: Option<f64>,
}

/// Every serde shape at once: structs, enums of each kind, options,
/// vectors, maps, floats.
#[task]
fn summarize(order: Order) -> Summary {
    let total: u64 = order
        .lines
        .iter()
        .map(|l| u64::from(l.qty) * l.price_cents)
        .sum();
    let mut per_sku = BTreeMap::new();
    for line in &order.lines {
        *per_sku.entry(line.sku.clone()).or_insert(0) += line.qty;
    }
    let mut tag_keys: Vec<String> = order.tags.keys().cloned().collect();
    tag_keys.sort();
    Summary {
        id: order.id,
        customer: order.customer.unwrap_or_else(|| "anonymous".into()),
        total_cents: total,
        items: order.lines.iter().map(|l| l.qty).sum(),
        per_sku,
        delivery: match order.shipping {
            Shipping::Pickup => Delivery::InStore,
            Shipping::Courier { days } => Delivery::Days { days },
            Shipping::Post(to) => Delivery::Address { to },
        },
        tag_keys,
        discounted: order.discount.map(|d| total as f64 * (1.0 - d)),
    }
}

#[task]
fn parse_number(text: String) -> Result<u32, std::num::ParseIntError> {
    text.trim().parse()
}

#[task]
fn fail_with(code: u8, message: String) -> Result<(), Failure> {
    Err(Failure::new(code, message))
}

#[task]
fn exit_deep(code: u8) -> u32 {
    wasmproc_guest::exit_with(Failure::new(
        code,
        format!("exited from deep inside with {code}"),
    ))
}

#[task]
fn process_exit(code: i32) {
    std::process::exit(code)
}

#[task]
fn panics(message: String) -> u32 {
    panic!("{message}")
}

#[task]
fn unreachable() {
    core::arch::wasm32::unreachable()
}

#[task]
fn out_of_bounds() -> u8 {
    // An address past any 32-bit memory that could be allocated here.
    let address = std::hint::black_box(0xFFFF_FFF0usize) as *const u8;
    // SAFETY: not sound on purpose: the test wants the trap this load raises.
    unsafe { address.read_volatile() }
}

#[task]
fn allocate_mib(mib: usize) -> usize {
    let mut blocks = Vec::new();
    for _ in 0..mib {
        let block = vec![1u8; 1 << 20];
        blocks.push(std::hint::black_box(block));
    }
    blocks.iter().map(|b| b.len()).sum::<usize>() >> 20
}

/// Recursion on the wasm stack itself: no locals live in linear memory, and
/// the two operations after the call keep LLVM from turning it into a loop.
#[task]
fn recurse(depth: u64) -> u64 {
    #[inline(never)]
    fn down(n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            down(n - 1).wrapping_mul(n | 1).wrapping_sub(n)
        }
    }
    down(depth)
}

#[task]
fn spin() -> u64 {
    let mut x = 0u64;
    loop {
        x = std::hint::black_box(x.wrapping_add(1));
    }
}

#[task]
fn count_to(n: u64) -> u64 {
    let mut x = 0u64;
    for i in 0..n {
        x = std::hint::black_box(x.wrapping_add(i));
    }
    x
}

#[task]
fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(std::time::Duration::from_millis(ms));
    ms
}

/// Says it started, on the queue `started`, then sleeps `ms`: the host
/// waits for the word instead of guessing how long a start takes.
#[task]
fn announced_sleep_ms(ms: u64) -> Result<u64, wasmproc_guest::ShareError> {
    wasmproc_guest::queue::<u64>("started")?.put(&ms)?;
    std::thread::sleep(std::time::Duration::from_millis(ms));
    Ok(ms)
}

#[task]
fn read_stdin() -> String {
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .expect("stdin reads");
    text
}

#[task]
fn write_output(stdout_bytes: usize, stderr_text: String) -> usize {
    let chunk = [b'x'; 4096];
    let mut left = stdout_bytes;
    let mut out = std::io::stdout().lock();
    while left > 0 {
        let n = left.min(chunk.len());
        out.write_all(&chunk[..n]).expect("stdout writes");
        left -= n;
    }
    out.flush().expect("stdout flushes");
    eprint!("{stderr_text}");
    stdout_bytes
}

#[task]
fn env_var(name: String) -> Option<String> {
    std::env::var(name).ok()
}

#[task]
fn env_count() -> usize {
    std::env::vars().count()
}

#[task]
fn read_file(path: String) -> Result<String, String> {
    std::fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))
}

/// The benchmark's CPU kernel: SHA-256 rounds over 64 KiB.
#[task]
fn sha256_rounds(rounds: u32) -> String {
    kernel::sha256_rounds(rounds)
}
