//! WASI 0.2 command components through the library: the `wasi-cmd` guest
//! built for wasm32-wasip2 runs like its wasm32-wasip1 build (argv, env,
//! stdin, dirs, output, exit statuses, limits, cancellation), in both
//! isolations; what does not run on a component yet is refused with why.

use std::time::{Duration, Instant};

use wasmproc::{
    CacheStatus, CancelToken, Capabilities, DirGrant, ErrorKind, ExitStatus, Isolation, Limits,
    Pool, ProcessOptions, Runtime, Stdin, Task, TrapKind,
};
use wasmproc_tests::wat_components::{HOOKED, exiting_with};
use wasmproc_tests::{
    guests, runtime, suite_cache_dir, suite_cache_key_file, wasi_cmd, wasi_cmd_p2,
};

/// A pool of one worker over the component in each isolation.
fn pools() -> Vec<(&'static str, Pool)> {
    let process = ProcessOptions::default().executable(crate::pool_host());
    vec![
        (
            "thread",
            Pool::builder(wasi_cmd_p2()).workers(1).build().unwrap(),
        ),
        (
            "process",
            Pool::builder(wasi_cmd_p2())
                .workers(1)
                .isolation(Isolation::Process(process))
                .build()
                .unwrap(),
        ),
    ]
}

fn command(args: &[&str]) -> Task {
    Task::command().args(args.iter().copied())
}

#[test]
fn a_component_is_a_command_described_in_wit_names_and_cached() {
    let component = wasi_cmd_p2();
    assert!(component.is_component() && component.is_command());
    assert!(!wasi_cmd().is_component());
    let exports = component.exports();
    assert!(
        exports
            .iter()
            .any(|e| e.name.starts_with("wasi:cli/run@0.2.") && e.ty.contains("run: func()")),
        "{exports:?}"
    );
    let imports = component.imports();
    assert!(
        imports
            .iter()
            .any(|i| i.module.starts_with("wasi:cli/environment@0.2.")),
        "{imports:?}"
    );
    assert!(imports.iter().all(|i| i.provided), "{imports:?}");
    // A second runtime over the same cache finds the compiled component.
    let again = Runtime::builder()
        .cache_dir(suite_cache_dir())
        .cache_key_file(suite_cache_key_file())
        .build()
        .unwrap()
        .load(guests::WASI_CMD_P2)
        .unwrap();
    assert_eq!(again.cache_status(), CacheStatus::Hit);
    assert!(again.run(&command(&["say", "cached"])).success());
}

#[test]
fn argv_env_stdin_output_and_exit_statuses_match_the_module_in_both_isolations() {
    for (isolation, pool) in pools() {
        let run = |task: Task| pool.submit(task).unwrap().wait().clone();
        let said = run(command(&["say", "hello", "there"]));
        assert_eq!(said.status, ExitStatus::Exited(0), "{isolation}: {said:?}");
        assert_eq!(said.stdout.text(), "hello there\n", "{isolation}");
        assert_eq!(said.stderr.text(), "hello there\n", "{isolation}");
        assert!(
            said.peak_memory_bytes > 0,
            "{isolation}: the peak is measured"
        );

        let args = run(command(&["args", "a b", "c"]));
        assert_eq!(
            args.stdout.text(),
            "wasi-cmd.wasm|args|a b|c\n",
            "{isolation}"
        );

        let env = run(command(&["env"]).capabilities(
            Capabilities::default()
                .env("COLOR", "teal")
                .env("EMPTY", ""),
        ));
        assert_eq!(env.stdout.text(), "COLOR=teal\nEMPTY=\n", "{isolation}");

        let cat = run(command(&["cat"]).stdin(Stdin::Bytes((&b"line one\nline two\n"[..]).into())));
        assert_eq!(cat.stdout.text(), "line one\nline two\n", "{isolation}");

        assert_eq!(run(command(&["exit", "0"])).status, ExitStatus::Exited(0));
        // Rust's std on wasm32-wasip2 exits through `wasi:cli/exit`'s
        // `exit(err)`, which carries no code: any nonzero exit is 1 (the
        // preview-1 build keeps its 3).
        assert_eq!(
            run(command(&["exit", "3"])).status,
            ExitStatus::Exited(1),
            "{isolation}"
        );
        assert_eq!(
            wasi_cmd().run(&command(&["exit", "3"])).status,
            ExitStatus::Exited(3)
        );
        let panicked = run(command(&["panic"]));
        assert_eq!(
            panicked.status,
            ExitStatus::Trapped(TrapKind::Unreachable),
            "{isolation}: {panicked:?}"
        );
        assert!(
            panicked
                .stderr
                .text()
                .contains("wasi-cmd was told to panic")
        );
        assert_eq!(panicked.status.code(), 134);
    }
}

#[test]
fn a_granted_dir_is_read_and_an_ungranted_path_refused_in_both_isolations() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("note.txt"), "from the host\n").unwrap();
    for (isolation, pool) in pools() {
        let granted = pool
            .submit(
                command(&["read", "/data/note.txt"])
                    .capabilities(Capabilities::default().dir(DirGrant::new(dir.path(), "/data"))),
            )
            .unwrap()
            .wait()
            .clone();
        assert_eq!(
            granted.status,
            ExitStatus::Exited(0),
            "{isolation}: {granted:?}"
        );
        assert_eq!(granted.stdout.text(), "from the host\n", "{isolation}");

        let path = dir.path().join("note.txt");
        let refused = pool
            .submit(command(&["read", path.to_str().unwrap()]))
            .unwrap()
            .wait()
            .clone();
        // The guest's own exit for a failed read (its std makes it 1).
        assert_eq!(refused.status, ExitStatus::Exited(1), "{isolation}");
        assert!(refused.stdout.bytes.is_empty(), "{isolation}");
        assert!(
            refused.stderr.text().contains("cannot read"),
            "{isolation}: {refused:?}"
        );
    }
}

#[test]
fn time_fuel_and_memory_limits_end_a_component_like_a_module_in_both_isolations() {
    for (isolation, pool) in pools() {
        let run = |task: Task| pool.submit(task).unwrap().wait().clone();
        let limited = |args: &[&str], limits: Limits| command(args).limits(limits);

        let started = Instant::now();
        let spun = run(limited(
            &["spin"],
            Limits::default().timeout(Duration::from_millis(200)),
        ));
        assert_eq!(spun.status, ExitStatus::TimedOut, "{isolation}: {spun:?}");
        let slept = run(limited(
            &["sleep", "3600000"],
            Limits::default().timeout(Duration::from_millis(200)),
        ));
        assert_eq!(slept.status, ExitStatus::TimedOut, "{isolation}: {slept:?}");
        assert_eq!(slept.status.code(), 142);
        assert!(started.elapsed() < Duration::from_secs(20), "{isolation}");

        let out_of_fuel = run(limited(&["spin"], Limits::default().fuel(100_000)));
        assert_eq!(out_of_fuel.status, ExitStatus::FuelExhausted, "{isolation}");
        assert_eq!(out_of_fuel.status.code(), 152);
        assert_eq!(out_of_fuel.fuel_used, Some(100_000), "{isolation}");
        let metered = run(limited(&["say", "hi"], Limits::default().fuel(100_000_000)));
        assert_eq!(metered.status, ExitStatus::Exited(0), "{isolation}");
        let used = metered.fuel_used.expect("fuel is reported when metered");
        assert!(used > 0 && used < 100_000_000, "{isolation}: used {used}");

        let limit = 32u64 << 20;
        let bomb = run(limited(
            &["alloc", "1024"],
            Limits::default().max_memory(limit),
        ));
        assert_eq!(
            bomb.status,
            ExitStatus::MemoryExceeded,
            "{isolation}: {bomb:?}"
        );
        assert_eq!(bomb.status.code(), 137);
        assert!(bomb.memory_asked_bytes.is_some_and(|asked| asked > limit));
        let within = run(limited(
            &["alloc", "8"],
            Limits::default().max_memory(limit),
        ));
        assert_eq!(within.stdout.text(), "8\n", "{isolation}: {within:?}");
        assert!(
            within.peak_memory_bytes > 8 << 20 && within.peak_memory_bytes <= limit,
            "{isolation}: peak {}",
            within.peak_memory_bytes
        );
    }
}

#[test]
fn cancelling_a_sleeping_component_is_130_in_both_isolations() {
    for (isolation, pool) in pools() {
        let started = Instant::now();
        let handle = pool.submit(command(&["sleep", "3600000"])).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        handle.cancel();
        let outcome = handle.wait().clone();
        assert_eq!(outcome.status, ExitStatus::Cancelled, "{isolation}");
        assert_eq!(outcome.status.code(), 130);
        assert!(started.elapsed() < Duration::from_secs(20), "{isolation}");
    }
    // Directly, with a token.
    let token = CancelToken::new();
    let canceller = token.clone();
    let cancelling = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        canceller.cancel();
    });
    let outcome = wasi_cmd_p2().run_with(&command(&["spin"]), &token);
    cancelling.join().unwrap();
    assert_eq!(outcome.status, ExitStatus::Cancelled);
}

#[test]
fn a_map_of_commands_runs_each_argv_in_order() {
    for (isolation, pool) in pools() {
        let tasks = (0..20).map(|i| command(&["say", &format!("line {i}")]));
        let outcomes: Vec<_> = pool.map_tasks(tasks).collect();
        assert_eq!(outcomes.len(), 20, "{isolation}");
        for (i, outcome) in outcomes.iter().enumerate() {
            assert_eq!(
                outcome.stdout.text(),
                format!("line {i}\n"),
                "{isolation}: {outcome:?}"
            );
        }
    }
}

#[test]
fn tasks_invoke_and_initializers_are_refused_with_the_reason() {
    let component = wasi_cmd_p2();
    let task = component.run(&Task::call("run", &()).unwrap());
    assert_eq!(task.status, ExitStatus::CannotRun);
    assert!(
        task.message
            .as_deref()
            .unwrap()
            .contains("exports no function `run`"),
        "{task:?}"
    );
    let invoked = component.run(&Task::invoke("run"));
    assert_eq!(invoked.status, ExitStatus::CannotRun);
    assert!(
        invoked
            .message
            .as_deref()
            .unwrap()
            .contains("is a component"),
        "{invoked:?}"
    );
    let error = component.initialize("setup", &()).unwrap_err();
    assert_eq!(error.kind(), &ErrorKind::CannotRun);
    assert!(
        error.message().contains("has no initializer `setup`")
            && error.message().contains("it exports no functions"),
        "{error}"
    );
}

#[test]
fn exit_with_code_keeps_the_guests_codes_and_traps_past_them() {
    let exits = |code: u8| {
        runtime()
            .load_bytes("exit.wat", exiting_with(code).as_bytes())
            .unwrap()
            .run(&Task::command())
    };
    assert_eq!(exits(7).status, ExitStatus::Exited(7));
    assert_eq!(exits(125).status, ExitStatus::Exited(125));
    let past = exits(200);
    assert_eq!(past.status, ExitStatus::Trapped(TrapKind::HostError));
    assert!(
        past.message.as_deref().unwrap().contains("code 200"),
        "{past:?}"
    );
}

#[test]
fn an_unknown_import_is_refused_by_name_or_stubbed_to_trap() {
    let refused = runtime()
        .load_bytes("hooked.wat", HOOKED.as_bytes())
        .unwrap();
    let hook = refused
        .imports()
        .into_iter()
        .find(|i| i.module == "my:host/hook")
        .unwrap();
    assert!(!hook.provided && !hook.stubbed);
    let outcome = refused.run(&Task::command());
    assert_eq!(outcome.status, ExitStatus::CannotRun);
    let message = outcome.message.unwrap();
    assert!(
        message.contains("my:host/hook") && message.contains("--stub-imports"),
        "{message}"
    );

    let stubbing = Runtime::builder()
        .cache_dir(suite_cache_dir())
        .cache_key_file(suite_cache_key_file())
        .stub_unknown_imports(true)
        .build()
        .unwrap();
    let stubbed = stubbing
        .load_bytes("hooked.wat", HOOKED.as_bytes())
        .unwrap();
    let imports = stubbed.imports();
    assert!(
        imports.iter().all(|i| i.provided || i.stubbed),
        "{imports:?}"
    );
    assert_eq!(stubbed.run(&Task::command()).status, ExitStatus::Exited(0));
    // Its exported function is a typed task, which calls the stubbed
    // import: it traps, and the message names the import.
    assert_eq!(stubbed.component_functions(), ["use-hook"]);
    let task = stubbed.run(&Task::call("use-hook", &()).unwrap());
    assert_eq!(
        task.status,
        ExitStatus::Trapped(TrapKind::HostError),
        "{task:?}"
    );
    assert!(
        task.message.as_deref().unwrap().contains("my:host/hook"),
        "{task:?}"
    );
}

#[test]
fn a_server_makes_each_connection_the_components_stdin_and_stdout_in_both_isolations() {
    use std::io::{Read, Write};
    use std::net::{Shutdown, TcpStream};
    use wasmproc::serve::{Listen, Server};

    let process = ProcessOptions::default().executable(crate::pool_host());
    for (isolation, kind) in [
        ("thread", Isolation::Thread),
        ("process", Isolation::Process(process)),
    ] {
        let server = Server::builder(wasi_cmd_p2(), Listen::parse("127.0.0.1:0").unwrap())
            .args(["cat"])
            .isolation(kind)
            .bind()
            .unwrap();
        let Listen::Tcp(addr) = server.local_addr().clone() else {
            panic!("a TCP address");
        };
        let stop = server.stopper();
        let serving = std::thread::spawn(move || server.run().unwrap());
        for payload in [&b"one connection"[..], &[7u8; 300_000][..]] {
            let mut stream = TcpStream::connect(addr).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(60)))
                .unwrap();
            let mut writer = stream.try_clone().unwrap();
            let sent = payload.to_vec();
            let sender = std::thread::spawn(move || {
                writer.write_all(&sent).unwrap();
                writer.shutdown(Shutdown::Write).unwrap();
            });
            let mut reply = Vec::new();
            stream.read_to_end(&mut reply).unwrap();
            sender.join().unwrap();
            assert!(reply == payload, "{isolation}: {} bytes back", reply.len());
        }
        stop.stop();
        let summary = serving.join().unwrap();
        assert_eq!(summary.connections, 2, "{isolation}");
    }
}

/// A WASI 0.3 command component (the vendored wasi-testsuite's), through
/// the library in both isolations: argv, env, stdin and output, its exit
/// code, and its 0.3 `run` chosen although it exports 0.2's too.
#[test]
fn a_wasi_0_3_command_runs_through_the_library_in_both_isolations() {
    let suite = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("wasi-testsuite/rust-p3");
    let load = |name: &str| runtime().load(suite.join(name)).unwrap();
    let env = load("cli-env.wasm");
    assert!(env.is_component() && env.is_command());
    assert!(
        env.exports()
            .iter()
            .any(|e| e.name.starts_with("wasi:cli/run@0.3.") && e.ty.contains("async func")),
        "{:?}",
        env.exports()
    );
    let process = ProcessOptions::default().executable(crate::pool_host());
    for (isolation, kind) in [
        ("thread", Isolation::Thread),
        ("process", Isolation::Process(process)),
    ] {
        let pool = |module: &wasmproc::Module| {
            Pool::builder(module)
                .workers(1)
                .isolation(kind.clone())
                .build()
                .unwrap()
        };
        // cli-env checks its own argv and environment: exit 0 when they
        // are what it was given, a panic (134) when not.
        let caps = Capabilities::default().env("foo", "bar").env("baz", "42");
        let good = command(&["a", "b", "42"]).capabilities(caps.clone());
        let ran = pool(&env).submit(good).unwrap().wait().clone();
        assert_eq!(ran.status, ExitStatus::Exited(0), "{isolation}: {ran:?}");
        let wrong = command(&["a", "b"]).capabilities(caps);
        let ran = pool(&env).submit(wrong).unwrap().wait().clone();
        assert_eq!(ran.status.code(), 134, "{isolation}: {ran:?}");

        let roundtrip = load("cli-stdio-roundtrip.wasm");
        let echoed = pool(&roundtrip)
            .submit(Task::command().stdin(Stdin::Bytes((&b"Hello, world!"[..]).into())))
            .unwrap()
            .wait()
            .clone();
        assert_eq!(echoed.status, ExitStatus::Exited(0), "{isolation}");
        assert_eq!(echoed.stdout.text(), "Hello, world!", "{isolation}");
        assert_eq!(echoed.stderr.text(), "Hello, world!", "{isolation}");

        let exit = load("cli-exit.wasm");
        let ran = pool(&exit).submit(Task::command()).unwrap().wait().clone();
        assert_eq!(ran.status, ExitStatus::Exited(1), "{isolation}");
    }
}
