//! The flood soak: a server whose handler writes without end, and clients
//! that connect and never read, in process isolation. The server's memory
//! must stay within a bound the whole time (each relay holds a window, not
//! what the guest writes), and once those clients go, a client that reads
//! is served. Linux only (resident memory comes from `/proc`).
//!
//! Run: `cargo bench -p wasmproc-tests --bench flood` (add `-- --seconds N
//! --clients N`; defaults 30 and 64). CI runs it with the dev profile.

use std::io::Read;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use wasmproc::serve::{Listen, Server};
use wasmproc::{Entry, Isolation, ProcessOptions, Runtime};
use wasmproc_tests::guests;

/// What the server process may hold: the program, the compiled module,
/// and each connection's relay window, with room to spare.
const BOUND: u64 = 64 << 20;

fn main() {
    // The worker processes are this very binary.
    wasmproc::run_worker_if_requested();
    let seconds = wasmproc_tests::bench_option("--seconds", 30);
    let clients = wasmproc_tests::bench_option("--clients", 64);
    let Some(before) = resident() else {
        println!("flood soak: skipped (no /proc/self/status on this system)");
        return;
    };
    let cache = tempfile::tempdir().expect("a temporary directory");
    let runtime = Runtime::builder()
        .cache_dir(cache.path())
        .cache_key_file(cache.path().with_extension("key"))
        .max_instances(u32::try_from(clients).unwrap_or(u32::MAX))
        .build()
        .expect("runtime");
    let module = runtime.load(guests::WASI_CMD).expect("wasi-cmd loads");
    let server = Server::builder(&module, Listen::parse("127.0.0.1:0").expect("an address"))
        .entry(Entry::Command)
        // 4 GB each: no client ever sees the end.
        .args(["flood", "4000000000"])
        .max_connections(clients)
        // Every client comes from 127.0.0.1.
        .max_per_peer(None)
        .idle_timeout(None)
        .isolation(Isolation::Process(ProcessOptions::default()))
        .bind()
        .expect("the server binds");
    let addr = server.local_addr().to_string();
    let stopper = server.stopper();
    let serving = std::thread::spawn(move || server.run());
    println!(
        "flood soak: {clients} clients that never read, a handler that writes without end, \
         process isolation, {seconds} s; server at {before_mib} MiB before",
        before_mib = before >> 20
    );

    let stuck: Vec<TcpStream> = (0..clients)
        .map(|_| TcpStream::connect(&addr).expect("a client connects"))
        .collect();
    let started = Instant::now();
    let mut peak = 0u64;
    let mut last_report = Instant::now();
    while started.elapsed() < Duration::from_secs(seconds as u64) {
        let now = resident().unwrap_or(0);
        peak = peak.max(now);
        if last_report.elapsed() >= Duration::from_secs(5) {
            println!(
                "  {:>3} s: server at {} MiB (peak {} MiB)",
                started.elapsed().as_secs(),
                now >> 20,
                peak >> 20
            );
            last_report = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    drop(stuck);

    // A client that reads: served once the stuck connections are gone.
    let waited = Instant::now();
    let served = TcpStream::connect(&addr)
        .and_then(|mut reader| {
            reader.set_read_timeout(Some(Duration::from_secs(60)))?;
            let mut first = vec![0u8; 1 << 20];
            reader.read_exact(&mut first)?;
            Ok(first.iter().all(|b| *b == b'y'))
        })
        .unwrap_or(false);
    let waited = waited.elapsed();
    stopper.stop_now();
    let _ = serving.join();

    println!(
        "flood soak: peak {} MiB (bound {} MiB); a reading client served after {waited:.2?}: {}",
        peak >> 20,
        BOUND >> 20,
        if served { "yes" } else { "NO" }
    );
    if peak >= BOUND || !served {
        eprintln!("flood soak: FAILED");
        std::process::exit(1);
    }
    println!("flood soak: memory stayed bounded; the server went on serving");
}

/// This process's resident memory, in bytes.
fn resident() -> Option<u64> {
    #[cfg(unix)]
    {
        wasmproc_tests::unix::resident_bytes(std::process::id())
    }
    #[cfg(not(unix))]
    {
        None
    }
}
