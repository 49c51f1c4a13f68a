//! `--init` on `run`, `map` and `compile`, and the initializers `inspect`
//! lists: tasks start from a snapshot, a failing initializer exits with a
//! task's status, and `compile --init` fills the cache once.

use std::path::Path;

use serde_json::{Value, json};
use wasmproc_tests::{code, guests, stderr, stdout};

use crate::{input_file, lines, wasmproc, wasmproc_run};

const INIT: &str = guests::INIT_TASKS;

/// The argument of the `table` initializer used throughout:
/// `TABLE[i] = i * i + 1` for `i < 10`.
const TABLE: &str = r#"{"len": 10, "seed": 1}"#;

/// Every initializer of the guest, in the order `inspect` gives them.
const INITIALIZERS: [&str; 11] = [
    "exits",
    "hogs",
    "keep_open",
    "panics",
    "refuse",
    "seed_only",
    "spins",
    "stamp",
    "table",
    "traps",
    "words",
];

/// `wasmproc ARGS` with a cache of its own at `cache`, so that what it
/// finds there is what the test put there.
fn with_cache(cache: &Path, args: &[&str]) -> std::process::Output {
    wasmproc()
        .env("WASMPROC_CACHE_DIR", cache)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn run_starts_from_the_initializers_state() {
    let run = |task: &str, args: &str| {
        wasmproc_run(&[
            "run",
            INIT,
            "--init",
            "table",
            "--init-args",
            TABLE,
            "--task",
            task,
            "--args",
            args,
        ])
    };
    let lookup = run("lookup", "3");
    assert_eq!(code(&lookup), 0, "{}", stderr(&lookup));
    assert_eq!(stdout(&lookup), "10\n");
    // The seed, and one initializer run in the snapshot's history.
    assert_eq!(stdout(&run("state", "null")), "[1,1]\n");

    let plain = wasmproc_run(&["run", INIT, "--task", "table_len"]);
    assert_eq!(stdout(&plain), "0\n", "without --init nothing was built");
    let without_args = wasmproc_run(&["run", INIT, "--init", "seed_only", "--task", "state"]);
    assert_eq!(code(&without_args), 128, "`null` is no u64");
    let seeded = wasmproc_run(&[
        "run",
        INIT,
        "--init",
        "seed_only",
        "--init-args",
        "42",
        "--task",
        "state",
    ]);
    assert_eq!(stdout(&seeded), "[42,1]\n");
}

#[test]
fn map_starts_every_line_from_the_snapshot() {
    let input = input_file("0\n3\n9\n10\n");
    let map = |isolation: &str| {
        wasmproc_run(&[
            "map",
            "-j",
            "2",
            "--isolation",
            isolation,
            INIT,
            "--init",
            "table",
            "--init-args",
            TABLE,
            "--task",
            "lookup",
            input.path().to_str().unwrap(),
        ])
    };
    for isolation in ["thread", "process"] {
        let output = map(isolation);
        assert_eq!(code(&output), 0, "{isolation}: {}", stderr(&output));
        let results: Vec<Value> = lines(&output).iter().map(|l| l["result"].clone()).collect();
        assert_eq!(
            results,
            [json!(1), json!(10), json!(82), Value::Null],
            "{isolation}"
        );
    }

    // Each line writes over its own copy of the state.
    let scribbles = input_file("3\n3\n3\n");
    let output = wasmproc_run(&[
        "map",
        INIT,
        "--init",
        "table",
        "--init-args",
        TABLE,
        "--task",
        "scribble",
        scribbles.path().to_str().unwrap(),
    ]);
    assert!(lines(&output).iter().all(|l| l["result"] == 10));
}

#[test]
fn compile_init_makes_the_snapshot_once() {
    let cache = tempfile::tempdir().unwrap();
    let compile = || {
        with_cache(
            cache.path(),
            &["compile", INIT, "--init", "table", "--init-args", TABLE],
        )
    };
    let first = compile();
    assert_eq!(code(&first), 0, "{}", stderr(&first));
    let first = stdout(&first);
    assert!(first.contains("compiled into the cache"), "{first}");
    assert!(
        first.contains("snapshot of initializer `table` made, into the cache"),
        "{first}"
    );
    let entries = std::fs::read_dir(cache.path()).unwrap().count();

    let second = compile();
    assert_eq!(code(&second), 0, "{}", stderr(&second));
    let second = stdout(&second);
    assert!(second.contains("already compiled"), "{second}");
    assert!(
        second.contains("snapshot of initializer `table` already in the cache"),
        "{second}"
    );
    assert_eq!(std::fs::read_dir(cache.path()).unwrap().count(), entries);

    // Another argument is another snapshot.
    let other = with_cache(
        cache.path(),
        &[
            "compile",
            INIT,
            "--init",
            "table",
            "--init-args",
            r#"{"len": 2, "seed": 0}"#,
        ],
    );
    assert!(
        stdout(&other).contains("`table` made"),
        "{}",
        stdout(&other)
    );
}

/// A module's first snapshot does not compile the module's code again:
/// its instrumented copy's compile finds most functions the module's own
/// compile made, and the snapshot's compile most of those the two made
/// (Cranelift's incremental cache, `.functions`; not all: some functions'
/// Cranelift input differs between the module and its instrumented copy).
/// The same for the guest built as a component (whose `table` prints,
/// which a component's snapshot refuses: `seed_only` there).
#[test]
fn a_first_snapshot_takes_the_modules_compiled_functions() {
    for (guest, init, arg) in [
        (INIT, "table", TABLE),
        (guests::INIT_TASKS_P2, "seed_only", "7"),
    ] {
        let cache = tempfile::tempdir().unwrap();
        let output = wasmproc()
            .env("WASMPROC_CACHE_DIR", cache.path())
            .env("RUST_LOG", "wasmproc::cache=debug")
            .args(["compile", guest, "--init", init, "--init-args", arg])
            .output()
            .unwrap();
        assert_eq!(code(&output), 0, "{guest}: {}", stderr(&output));
        let log = stderr(&output);
        for compile in ["the instrumented copy's compile", "the snapshot's compile"] {
            let line = log
                .lines()
                .find(|line| line.contains(&format!("{compile}:")))
                .unwrap_or_else(|| panic!("{guest}: {compile} is logged: {log}"));
            let numbers: Vec<usize> = line
                .split([' ', ','])
                .filter_map(|word| word.parse().ok())
                .collect();
            let [found, compiled] = numbers[..] else {
                panic!("two counts: {line}");
            };
            // Measured, the core module (found, compiled): its own compile
            // 197, 441 (identical functions within it); the instrumented
            // copy 422, 216 with the module's functions (alone, as its own
            // compile); the snapshot 586, 51 (421, 216 with the
            // instrumented copy's only; 195, 442 with none). The component:
            // its own 249, 601; instrumented 591, 263; snapshot 757, 93
            // (591, 259 with the instrumented copy's only).
            assert!(found > compiled, "{guest}: {line}");
        }
    }
}

/// A fuel-metered snapshot's compile finds the functions of the module's
/// fuel-metered compile (`compile` makes both forms): before, it found only
/// the module's duplicate functions.
#[test]
fn a_fuel_metered_snapshot_takes_the_modules_fuel_metered_functions() {
    let cache = tempfile::tempdir().unwrap();
    let compile = with_cache(cache.path(), &["compile", INIT]);
    assert_eq!(code(&compile), 0, "{}", stderr(&compile));
    let output = wasmproc()
        .env("WASMPROC_CACHE_DIR", cache.path())
        .env("RUST_LOG", "wasmproc::cache=debug")
        .args(["run", INIT, "--init", "table", "--init-args", TABLE])
        .args(["--fuel", "100000000", "--task", "lookup", "--args", "3"])
        .output()
        .unwrap();
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(stdout(&output).trim(), "10");
    let log = stderr(&output);
    let counts: Vec<[usize; 2]> = log
        .lines()
        .filter(|line| line.contains("the snapshot's compile:"))
        .map(|line| {
            let numbers: Vec<usize> = line
                .split([' ', ','])
                .filter_map(|word| word.parse().ok())
                .collect();
            numbers[..]
                .try_into()
                .unwrap_or_else(|_| panic!("two counts: {line}"))
        })
        .collect();
    // The plain snapshot's, then the fuel-metered one's (measured: 552-563
    // found, 89 compiled; 197 and 444 before).
    let [_, [found, compiled]] = counts[..] else {
        panic!("two snapshot compiles: {log}");
    };
    assert!(found > compiled, "{log}");
}

/// A run finds the snapshot that `compile --init` made: the words file
/// the initializer read has changed since, and the run still sees the
/// words of the snapshot, while a run with an empty cache reads them anew.
#[test]
fn a_run_after_compile_init_starts_from_the_cached_snapshot() {
    let cache = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let words = data.path().join("words.txt");
    std::fs::write(&words, "alpha beta").unwrap();
    let grant = format!("{}::/data", data.path().display());
    let init = [
        "--init",
        "words",
        "--init-args",
        r#""/data/words.txt""#,
        "--dir",
        &grant,
    ];
    let compile = with_cache(cache.path(), &[&["compile", INIT][..], &init].concat());
    assert_eq!(code(&compile), 0, "{}", stderr(&compile));
    assert!(
        stdout(&compile).contains("`words` made"),
        "{}",
        stdout(&compile)
    );

    std::fs::write(&words, "gamma").unwrap();
    let run = |cache: &Path| {
        let output = with_cache(
            cache,
            &[&["run", INIT, "--task", "word_list"][..], &init].concat(),
        );
        assert_eq!(code(&output), 0, "{}", stderr(&output));
        stdout(&output)
    };
    assert_eq!(run(cache.path()), "[\"alpha\",\"beta\"]\n");
    let empty = tempfile::tempdir().unwrap();
    assert_eq!(run(empty.path()), "[\"gamma\"]\n");
}

#[test]
fn a_failing_initializer_exits_with_a_tasks_status() {
    let data = tempfile::tempdir().unwrap();
    std::fs::write(data.path().join("f"), "x").unwrap();
    let grant = format!("{}::/data", data.path().display());
    let cases: &[(&[&str], i32)] = &[
        // A snapshot cannot hold the host's file: the module cannot run so.
        (
            &[
                "--init",
                "keep_open",
                "--init-args",
                r#""/data/f""#,
                "--dir",
                &grant,
            ],
            126,
        ),
        (&["--init", "refuse", "--init-args", "3"], 3),
        (&["--init", "exits", "--init-args", "7"], 7),
        (&["--init", "panics"], 101),
        (&["--init", "traps"], 134),
        (
            &[
                "--init",
                "hogs",
                "--init-args",
                "100",
                "--max-memory",
                "32MiB",
            ],
            137,
        ),
        (&["--init", "spins", "--timeout", "300ms"], 142),
        (&["--init", "table", "--init-args", "{oops"], 128),
    ];
    // A component's initializer is called as a typed task is: the example
    // of a misfit argument names the initializer's flag.
    let misfit = wasmproc_run(&[
        "run",
        guests::TYPED_COMPONENT,
        "--init",
        "square",
        "--init-args",
        "\"x\"",
        "--task",
        "square",
        "--args",
        "2",
    ]);
    assert_eq!(code(&misfit), 128, "{}", stderr(&misfit));
    assert!(
        stderr(&misfit).contains("e.g. --init-args '0'"),
        "{}",
        stderr(&misfit)
    );
    for (flags, status) in cases {
        let name = flags[1];
        let output = wasmproc_run(&[&["run", INIT][..], flags, &["--task", "table_len"]].concat());
        assert_eq!(code(&output), *status, "{flags:?}: {}", stderr(&output));
        assert_eq!(stdout(&output), "", "{flags:?}: no task ran");
        assert!(
            stderr(&output).contains(&format!("initializer `{name}`")),
            "{flags:?}: {}",
            stderr(&output)
        );
    }

    let json = wasmproc_run(&[
        "run",
        "--json",
        INIT,
        "--init",
        "refuse",
        "--init-args",
        "3",
    ]);
    assert_eq!(code(&json), 3);
    let object: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(object["exit_code"], 3);
    assert_eq!(object["result"], Value::Null);
    let message = object["message"].as_str().unwrap();
    assert!(message.contains("initializer `refuse`"), "{message}");
    assert!(message.contains("the initializer refuses"), "{message}");

    // A trap in an initializer is a task's trap: its kind and backtrace, in
    // the JSON and (the bug's location) on stderr.
    let trapped = wasmproc_run(&["run", "--json", INIT, "--init", "traps"]);
    assert_eq!(code(&trapped), 134);
    let object: Value = serde_json::from_slice(&trapped.stdout).unwrap();
    assert_eq!(object["trap"], "memory_out_of_bounds", "{object}");
    assert!(object["backtrace"].as_str().is_some(), "{object}");
    let trapped = wasmproc_run(&["run", INIT, "--init", "traps", "--task", "table_len"]);
    assert!(
        stderr(&trapped).contains("wasm backtrace"),
        "{}",
        stderr(&trapped)
    );
    let panicked = wasmproc_run(&["run", "--json", INIT, "--init", "panics"]);
    let object: Value = serde_json::from_slice(&panicked.stdout).unwrap();
    assert_eq!(object["panicked"], true, "{object}");

    let input = input_file("1\n2\n");
    let map = wasmproc_run(&[
        "map",
        INIT,
        "--init",
        "refuse",
        "--init-args",
        "5",
        "--task",
        "lookup",
        input.path().to_str().unwrap(),
    ]);
    // A map that could not start exits 126 (its table: 0, 123, 126-128),
    // the initializer's own status named.
    assert_eq!(code(&map), 126, "{}", stderr(&map));
    assert!(
        stderr(&map).contains("the initializer ended exited, exit status 5"),
        "{}",
        stderr(&map)
    );
    assert_eq!(stdout(&map), "", "no line ran");
    assert!(
        stderr(&map).contains("initializer `refuse`"),
        "{}",
        stderr(&map)
    );

    let compile = wasmproc_run(&["compile", INIT, "--init", "spins", "--timeout", "300ms"]);
    assert_eq!(code(&compile), 142, "{}", stderr(&compile));
    assert!(stderr(&compile).contains("initializer `spins`"));
}

#[test]
fn an_unknown_initializer_is_126_and_lists_the_initializers() {
    for command in ["run", "map", "compile"] {
        let output = wasmproc_run(&[command, INIT, "--init", "nope"]);
        assert_eq!(code(&output), 126, "{command}: {}", stderr(&output));
        let text = stderr(&output);
        assert!(text.contains("no initializer `nope`"), "{command}: {text}");
        assert!(
            text.contains(&INITIALIZERS.join(", ")),
            "{command} lists them: {text}"
        );
    }
}

#[test]
fn init_flags_without_init_are_usage_errors() {
    let input = input_file("1\n");
    let input = input.path().to_str().unwrap();
    let cases: &[&[&str]] = &[
        &["run", INIT, "--init-args", "3", "--task", "lookup"],
        &["map", INIT, "--init-args", "3", "--task", "lookup", input],
        &["compile", INIT, "--init-args", "3"],
    ];
    for args in cases {
        let output = wasmproc_run(args);
        assert_eq!(code(&output), 128, "{args:?}: {}", stderr(&output));
        assert!(
            stderr(&output).contains("--init-args is the argument of an initializer")
                && stderr(&output).contains("add --init NAME"),
            "{args:?}: {}",
            stderr(&output)
        );
    }
    // `compile` runs no guest without --init: its grants and limits would
    // be ignored.
    for flag in [["--dir", "/tmp"], ["--env", "A=1"], ["--timeout", "1s"]] {
        let output = wasmproc_run(&[&["compile", INIT][..], &flag].concat());
        assert_eq!(code(&output), 128, "{flag:?}: {}", stderr(&output));
        assert!(stderr(&output).contains("no --init names one"));
    }
}

#[test]
fn inspect_lists_the_initializers() {
    let text = wasmproc_run(&["inspect", INIT]);
    assert_eq!(code(&text), 0);
    let text = stdout(&text);
    let listed: Vec<&str> = text
        .split("\ninitializers (")
        .nth(1)
        .expect("an initializers section")
        .lines()
        .skip(1)
        .take_while(|line| !line.is_empty())
        // Each with its signature: `table(spec: TableSpec)`.
        .map(|line| line.trim().split('(').next().unwrap_or(line))
        .collect();
    assert_eq!(listed, INITIALIZERS);
    assert!(text.contains("\n  table(spec: TableSpec)\n"), "{text}");

    let json: Value =
        serde_json::from_slice(&wasmproc_run(&["inspect", "--json", INIT]).stdout).unwrap();
    assert_eq!(json["initializers"], json!(INITIALIZERS));
    assert!(json["tasks"].as_array().unwrap().contains(&json!("lookup")));
    let none: Value =
        serde_json::from_slice(&wasmproc_run(&["inspect", "--json", guests::SDK_TASKS]).stdout)
            .unwrap();
    assert_eq!(none["initializers"], json!([]));
    assert!(!stdout(&wasmproc_run(&["inspect", guests::SDK_TASKS])).contains("initializers"));
}

/// A failed task's replay bundle names the initializer it started from,
/// and `replay` runs that initializer first.
#[test]
fn replay_bundles_keep_the_initializer() {
    let replays = tempfile::tempdir().unwrap();
    let output = wasmproc_run(&[
        "run",
        "--replay-dir",
        replays.path().to_str().unwrap(),
        INIT,
        "--init",
        "table",
        "--init-args",
        TABLE,
        "--task",
        "read",
        "--args",
        r#""/nowhere""#,
    ]);
    assert_eq!(code(&output), 1, "{}", stderr(&output));
    let path = replays.path().join("init_tasks-run.replay.json");
    let mut bundle: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(bundle["wasmproc_replay"], 2);
    assert_eq!(bundle["init"], json!({"name": "table", "argument": TABLE}));
    let again = wasmproc_run(&["replay", path.to_str().unwrap()]);
    assert_eq!(code(&again), 1, "{}", stderr(&again));

    // The replay runs the bundle's initializer: one that refuses ends it.
    bundle["init"] = json!({"name": "refuse", "argument": "4"});
    std::fs::write(&path, serde_json::to_vec(&bundle).unwrap()).unwrap();
    let refused = wasmproc_run(&["replay", path.to_str().unwrap()]);
    assert_eq!(code(&refused), 4, "{}", stderr(&refused));
    assert!(stderr(&refused).contains("initializer `refuse`"));
}
