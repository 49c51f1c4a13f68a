//! A plain WASI command for the test suite: `wasi-cmd VERB ARGS...`. Built
//! for wasm32-wasip1 (a core module) and wasm32-wasip2 (a component).

use std::io::{Read, Write};
use std::process::exit;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let verb = args.get(1).map(String::as_str).unwrap_or("");
    let rest = &args[2.min(args.len())..];
    match verb {
        "args" => println!("{}", args.join("|")),
        "env" => {
            for (key, value) in std::env::vars() {
                println!("{key}={value}");
            }
        }
        "cat" => {
            let mut input = Vec::new();
            std::io::stdin()
                .read_to_end(&mut input)
                .expect("stdin reads");
            std::io::stdout().write_all(&input).expect("stdout writes");
        }
        "exit" => exit(rest[0].parse().expect("an exit code")),
        "expect" => {
            let mut input = String::new();
            std::io::stdin()
                .read_to_string(&mut input)
                .expect("stdin reads");
            if input != rest[0] {
                eprintln!("expected {:?}, read {input:?}", rest[0]);
                exit(1)
            }
        }
        "read" => match std::fs::read_to_string(&rest[0]) {
            Ok(text) => print!("{text}"),
            Err(error) => {
                eprintln!("cannot read {}: {error}", rest[0]);
                exit(2)
            }
        },
        "write" => match std::fs::write(&rest[0], &rest[1]) {
            Ok(()) => println!("wrote {}", rest[0]),
            Err(error) => {
                eprintln!("cannot write {}: {error}", rest[0]);
                exit(2)
            }
        },
        // The one stable symlink call on wasm32-wasip1.
        #[allow(deprecated)]
        "symlink" => match std::fs::soft_link(&rest[0], &rest[1]) {
            Ok(()) => println!("linked {} -> {}", rest[1], rest[0]),
            Err(error) => {
                eprintln!("cannot link {}: {error}", rest[1]);
                exit(2)
            }
        },
        "list" => match std::fs::read_dir(&rest[0]) {
            Ok(entries) => {
                let mut names: Vec<String> = entries
                    .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                    .collect();
                names.sort();
                println!("{}", names.join("\n"));
            }
            Err(error) => {
                eprintln!("cannot list {}: {error}", rest[0]);
                exit(2)
            }
        },
        "sleep" => {
            let ms: u64 = rest[0].parse().expect("milliseconds");
            std::thread::sleep(std::time::Duration::from_millis(ms));
            println!("slept {ms}ms");
        }
        // Leaves a mark (a file) then sleeps: a test sees from outside that
        // the task runs.
        "announce" => {
            std::fs::write(&rest[0], b"running").expect("the mark is written");
            let ms: u64 = rest[1].parse().expect("milliseconds");
            std::thread::sleep(std::time::Duration::from_millis(ms));
            println!("slept {ms}ms");
        }
        // Takes MIB mebibytes of memory, touched: a memory limit's test.
        "alloc" => {
            let mib: usize = rest[0].parse().expect("mebibytes");
            let block = vec![1u8; mib << 20];
            println!("{}", block.iter().map(|&b| u64::from(b)).sum::<u64>() >> 20);
        }
        "spin" => {
            let mut x = 0u64;
            loop {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        }
        "flood" => {
            let bytes: usize = rest[0].parse().expect("a byte count");
            let line = [b'y'; 1024];
            let mut out = std::io::stdout().lock();
            for _ in 0..bytes / 1024 {
                out.write_all(&line).expect("stdout writes");
            }
            println!("done");
        }
        "stderr" => eprintln!("{}", rest.join(" ")),
        // The benchmark's CPU-bound command; built natively too, to compare.
        "kernel" => println!(
            "{}",
            kernel::sha256_rounds(rest[0].parse().expect("a round count"))
        ),
        "say" => {
            println!("{}", rest.join(" "));
            eprintln!("{}", rest.join(" "));
        }
        "panic" => panic!("wasi-cmd was told to panic"),
        _ => {
            eprintln!(
                "usage: wasi-cmd args|env|cat|exit N|expect TEXT|read F|write F T|symlink T L|list D|sleep MS|alloc MIB|spin|flood N|stderr T|say T|kernel ROUNDS|panic"
            );
            exit(64)
        }
    }
}
