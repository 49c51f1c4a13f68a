//! The command line's fuzz entry points (`wasmproc_cli::fuzzing`, fuzzed
//! for real with `cargo fuzz`, see `tests/fuzz`) over seeds and thousands
//! of their mutations: none may panic.

use wasmproc_cli::fuzzing;
use wasmproc_tests::mutations::mutations;

#[test]
fn input_lines_never_panic() {
    let seeds: Vec<Vec<u8>> = [
        &b"3\n4\n\n{\"a\": [1, 2.5e3, null]}\n\"text\\u0000\"\r\n"[..],
        b"[\"-c\", \"needle\"]\n[]\n[1, 2]\n\xff\xfe\n",
        &[b'x'; 3000],
    ]
    .iter()
    .map(|s| s.to_vec())
    .collect();
    for input in seeds.iter().cloned().chain(mutations(&seeds, 5_000, 19)) {
        fuzzing::input_lines(&input);
    }
}

#[test]
fn command_lines_never_panic() {
    let lines: [&[&str]; 6] = [
        &[
            "run",
            "--timeout",
            "500ms",
            "m.wasm",
            "--task",
            "t",
            "--args",
            "[1]",
            "--timout",
            "5s",
        ],
        &[
            "run",
            "m.wasm",
            "--max-memory",
            "64MiB",
            "--",
            "--json",
            "-x",
        ],
        &[
            "map",
            "-j",
            "4",
            "--unordered",
            "--chunksize",
            "10",
            "m.wasm",
            "in.ndjson",
            "--env",
            "A=1",
            "--dir",
            "a::/b",
        ],
        &[
            "run",
            "--dir",
            "::",
            "--env",
            "=x",
            "--fuel",
            "-1",
            "--max-output",
            "lots",
            "m.wasm",
        ],
        &["replay", "--json", "b.json"],
        &["inspect", "--json", "m.wasm"],
    ];
    // Arguments separated by NUL, as `command_line` splits them.
    let seeds: Vec<Vec<u8>> = lines
        .iter()
        .map(|line| line.join("\0").into_bytes())
        .collect();
    for input in seeds.iter().cloned().chain(mutations(&seeds, 3_000, 23)) {
        fuzzing::command_line(&input);
    }
}
