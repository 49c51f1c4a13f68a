//! The serve benchmark: `wasmproc serve` running the HTTP example
//! (`guest/examples/http.rs`, a fresh sandbox per connection) driven by
//! `wrk` at 64 connections, side by side in one run with the same handler
//! logic in Python under `socketserver.ForkingTCPServer` and under a
//! pre-forked `multiprocessing` pool accepting on a shared listener
//! (`serve_peer.py`); then the server's memory over a longer run.
//!
//! Run: `cargo bench -p wasmproc-tests --bench serve` (needs `wrk`:
//! `apt-get install wrk`). Options after `--`: `--seconds N` per server
//! (default 10), `--connections C` (default 64), `--soak S` for the memory
//! run (default 60; 0 skips it), `--only wasmproc|python|soak`,
//! `--wasmproc PATH` to measure that binary instead of building one,
//! `--baseline PATH` to measure that binary too (an earlier build: its
//! thread-isolation row runs just before ours, and the ratio is printed),
//! `--max-connections N` for the servers' bound (default: wrk's
//! connections).
//!
//! The binary and the guest are built with the benchmark's own profile
//! (`--profile dev` builds them as dev, with whatever
//! `CARGO_PROFILE_DEV_OPT_LEVEL` says), release otherwise.

#[cfg(unix)]
fn main() {
    unix::main();
}

#[cfg(not(unix))]
fn main() {
    println!("the serve benchmark drives servers with wrk, which needs a Unix system");
}

#[cfg(unix)]
mod unix {
    use std::net::{TcpListener, TcpStream};
    use std::os::unix::process::CommandExt;
    use std::path::Path;
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    use wasmproc_tests::{bench_section_wanted, release_build};

    /// What wrk measured.
    struct Measured {
        per_second: f64,
        p50_ms: f64,
        p99_ms: f64,
        errors: u64,
    }

    /// A server under test, in a process group of its own (so that a
    /// pre-forked server goes with all its processes).
    struct Running {
        child: Child,
        port: u16,
    }

    impl Running {
        fn start(program: &Path, args: &[&str]) -> Running {
            let port = free_port();
            let args: Vec<String> = args
                .iter()
                .map(|a| a.replace("{port}", &port.to_string()))
                .collect();
            let child = Command::new(program)
                .args(&args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn()
                .unwrap_or_else(|e| panic!("{} starts: {e}", program.display()));
            let running = Running { child, port };
            let deadline = Instant::now() + Duration::from_secs(60);
            while TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(
                    Instant::now() < deadline,
                    "{} never listened",
                    program.display()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
            running
        }

        fn url(&self) -> String {
            format!("http://127.0.0.1:{}/bench", self.port)
        }
    }

    impl Drop for Running {
        fn drop(&mut self) {
            let group = format!("-{}", self.child.id());
            let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
            let _ = self.child.wait();
        }
    }

    fn free_port() -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
        listener.local_addr().expect("an address").port()
    }

    /// Runs wrk against `url` and reads its report.
    fn wrk(url: &str, connections: usize, seconds: u64) -> Measured {
        let output = Command::new("wrk")
            .args(["-t2", "--latency"])
            .arg(format!("-c{connections}"))
            .arg(format!("-d{seconds}s"))
            .arg(url)
            .output()
            .expect("wrk runs");
        let report = String::from_utf8_lossy(&output.stdout);
        let number_after = |label: &str| -> Option<f64> {
            let line = report.lines().find(|l| l.trim_start().starts_with(label))?;
            line.trim_start()[label.len()..]
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        };
        let latency = |label: &str| -> f64 {
            let line = report.lines().find(|l| l.trim_start().starts_with(label));
            line.and_then(|l| l.split_whitespace().nth(1))
                .map_or(f64::NAN, milliseconds)
        };
        let errors = report
            .lines()
            .filter(|l| l.contains("Socket errors") || l.contains("Non-2xx"))
            .flat_map(|l| l.split(|c: char| !c.is_ascii_digit()))
            .filter_map(|n| n.parse::<u64>().ok())
            .sum();
        Measured {
            per_second: number_after("Requests/sec:").unwrap_or(0.0),
            p50_ms: latency("50%"),
            p99_ms: latency("99%"),
            errors,
        }
    }

    /// wrk's `123.45us`, `9.13ms` or `1.02s`, in milliseconds.
    fn milliseconds(text: &str) -> f64 {
        let split = text
            .find(|c: char| c.is_ascii_alphabetic())
            .unwrap_or(text.len());
        let value: f64 = text[..split].parse().unwrap_or(f64::NAN);
        match &text[split..] {
            "us" => value / 1000.0,
            "ms" => value,
            "s" => value * 1000.0,
            "m" => value * 60_000.0,
            _ => f64::NAN,
        }
    }

    /// A process's resident memory, in KiB.
    fn rss_kib(pid: u32) -> u64 {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|status| {
                let line = status.lines().find(|l| l.starts_with("VmRSS:"))?.to_owned();
                line.split_whitespace().nth(1)?.parse().ok()
            })
            .unwrap_or(0)
    }

    fn argument(name: &str, default: u64) -> u64 {
        wasmproc_tests::bench_option(name, default as usize) as u64
    }

    /// Builds with the profile this benchmark was built with (the name of
    /// the directory its executable is in, under `target/`): `path` in
    /// that profile's directory.
    fn profile_build(args: &[&str], path: &str) -> std::path::PathBuf {
        let dir = wasmproc_tests::bench_target_dir();
        if dir == "release" {
            return release_build(args, &format!("release/{path}"));
        }
        let profile = if dir == "debug" { "dev" } else { dir.as_str() };
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            .current_dir(&root)
            .args(["build", "--quiet", "--profile", profile])
            .args(args)
            .env_remove("CARGO_TARGET_DIR")
            .status()
            .expect("cargo runs");
        assert!(status.success(), "cargo build {args:?} failed (see above)");
        root.join("target").join(&dir).join(path)
    }

    /// Measures one server: a second of warm-up, then the run.
    fn measure(
        name: &str,
        program: &Path,
        args: &[&str],
        connections: usize,
        seconds: u64,
    ) -> (String, Measured) {
        let running = Running::start(program, args);
        wrk(&running.url(), connections, 1);
        let measured = wrk(&running.url(), connections, seconds);
        println!(
            "  {name:<44} {:>10.0} {:>9.2} {:>9.2} {:>8}",
            measured.per_second, measured.p50_ms, measured.p99_ms, measured.errors
        );
        (name.to_owned(), measured)
    }

    pub(super) fn main() {
        if Command::new("wrk").arg("--version").output().is_err() {
            println!("the serve benchmark needs wrk: apt-get install wrk");
            return;
        }
        let seconds = argument("--seconds", 10);
        let connections = argument("--connections", 64) as usize;
        let soak = argument("--soak", 60);
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        println!(
            "wasmproc serve benchmark: wrk, {connections} connections, {seconds}s per server, \
             {cpus} CPUs, one run"
        );
        let wasmproc = match std::env::args().skip_while(|a| a != "--wasmproc").nth(1) {
            Some(path) => std::path::PathBuf::from(path),
            None => profile_build(&["-p", "wasmproc-cli", "--bin", "wasmproc"], "wasmproc"),
        };
        println!("measuring {}", wasmproc.display());
        let http = release_build(
            &[
                "-p",
                "wasmproc-guest",
                "--example",
                "http",
                "--target",
                "wasm32-wasip1",
            ],
            "wasm32-wasip1/release/examples/http.wasm",
        );
        let http = http.to_str().expect("a UTF-8 path");
        let max = argument("--max-connections", connections as u64).to_string();
        let baseline = std::env::args()
            .skip_while(|a| a != "--baseline")
            .nth(1)
            .map(std::path::PathBuf::from);
        let serve_args = |isolation| {
            [
                "serve",
                "--listen",
                "127.0.0.1:{port}",
                "--max-connections",
                &max,
                // wrk's connections all come from 127.0.0.1.
                "--max-per-peer",
                "0",
                "--isolation",
                isolation,
                "--log",
                "/dev/null",
                http,
            ]
        };
        let peer = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/serve_peer.py");
        let peer = peer.to_str().expect("a UTF-8 path");
        let processes = cpus.to_string();
        let python = Path::new("python3");

        println!(
            "\n  {:<44} {:>10} {:>9} {:>9} {:>8}",
            "server (same handler logic)", "conn/s", "p50 ms", "p99 ms", "errors"
        );
        let mut rows = Vec::new();
        if bench_section_wanted("wasmproc") {
            if let Some(baseline) = &baseline {
                println!("  (baseline: {})", baseline.display());
                let args = serve_args("thread");
                let name = "baseline serve, thread isolation";
                rows.push(measure(name, baseline, &args, connections, seconds));
            }
            for isolation in ["thread", "process"] {
                let args = serve_args(isolation);
                let name = format!("wasmproc serve, {isolation} isolation");
                rows.push(measure(&name, &wasmproc, &args, connections, seconds));
            }
        }
        if bench_section_wanted("python") {
            let fork = [peer, "fork", "{port}"];
            rows.push(measure(
                "Python ForkingTCPServer",
                python,
                &fork,
                connections,
                seconds,
            ));
            let prefork = [peer, "prefork", "{port}", &processes];
            let name = format!("Python pre-forked pool ({cpus} processes)");
            rows.push(measure(&name, python, &prefork, connections, seconds));
        }
        let rate = |prefix: &str| {
            rows.iter()
                .find(|(name, _)| name.starts_with(prefix))
                .map(|(_, m)| m.per_second)
        };
        println!("\nratios (connections per second, measured side by side in this run)");
        let ours = rate("wasmproc serve, thread");
        if let (Some(ours), Some(before)) = (ours, rate("baseline serve")) {
            println!(
                "  wasmproc serve (threads) / the baseline's {:<30} {:>8.2}x",
                "",
                ours / before
            );
        }
        for (peer, prefix) in [
            ("ForkingTCPServer", "Python Forking"),
            ("pre-forked pool", "Python pre"),
        ] {
            if let (Some(ours), Some(theirs)) = (ours, rate(prefix)) {
                println!(
                    "  wasmproc serve (threads) / Python {peer:<36} {:>8.2}x",
                    ours / theirs
                );
            }
        }

        if soak > 0 && bench_section_wanted("soak") {
            println!("\nmemory of `wasmproc serve` (threads) under wrk for {soak}s (resident KiB)");
            let args = serve_args("thread");
            let running = Running::start(&wasmproc, &args);
            let url = running.url();
            wrk(&url, connections, 2);
            let load = std::thread::spawn(move || wrk(&url, connections, soak));
            let mut samples = Vec::new();
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(soak) {
                std::thread::sleep(Duration::from_secs(soak.min(10)));
                let kib = rss_kib(running.child.id());
                println!("  after {:>3}s: {kib:>8} KiB", started.elapsed().as_secs());
                samples.push(kib);
            }
            let measured = load.join().expect("wrk ends");
            println!(
                "  served {:.0} connections/s over the run, {} errors",
                measured.per_second, measured.errors
            );
            if let (Some(first), Some(last)) = (samples.first(), samples.last()) {
                println!(
                    "  growth from the first sample to the last: {:.2}x ({} connections)",
                    *last as f64 / (*first).max(1) as f64,
                    (measured.per_second * soak as f64) as u64
                );
            }
        }
    }
}
