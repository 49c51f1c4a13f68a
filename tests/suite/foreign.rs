//! Guests not written with the Rust SDK: WebAssembly text and C.

use std::time::Duration;

use wasmproc::{ErrorKind, ExitStatus, Limits, Task, TrapKind};
use wasmproc_tests::{guests, runtime};

const HELLO_WAT: &str = r#"
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "hi from wat\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 12))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
    (call $proc_exit (i32.const 7))))
"#;

fn wat(source: &str) -> wasmproc::Module {
    let binary = wat::parse_str(source).expect("the test's WAT is valid");
    runtime()
        .load_bytes("test.wasm", &binary)
        .expect("the module loads")
}

fn trap_of(body: &str) -> ExitStatus {
    let module = wat(&format!(
        r#"(module (table 1 funcref) (type $t (func))
             (func (export "_start") {body}))"#
    ));
    module.run(&Task::command()).status
}

#[test]
fn wat_command_writes_and_exits() {
    let outcome = wat(HELLO_WAT).run(&Task::command());
    assert_eq!(outcome.status, ExitStatus::Exited(7));
    assert_eq!(outcome.stdout.text(), "hi from wat\n");
}

#[test]
fn wat_text_loads_directly() {
    let module = runtime()
        .load_bytes("hello.wat", HELLO_WAT.as_bytes())
        .unwrap();
    assert_eq!(module.run(&Task::command()).status, ExitStatus::Exited(7));
}

#[test]
fn trap_kinds_are_told_apart() {
    let cases = [
        (
            "(drop (i32.div_s (i32.const 1) (i32.const 0)))",
            TrapKind::IntegerDivisionByZero,
        ),
        (
            "(drop (i32.div_s (i32.const -2147483648) (i32.const -1)))",
            TrapKind::IntegerOverflow,
        ),
        (
            "(drop (i32.trunc_f32_s (f32.const nan)))",
            TrapKind::BadConversionToInteger,
        ),
        ("(unreachable)", TrapKind::Unreachable),
        (
            "(call_indirect (type $t) (i32.const 0))",
            TrapKind::IndirectCallToNull,
        ),
        (
            "(call_indirect (type $t) (i32.const 5))",
            TrapKind::TableOutOfBounds,
        ),
    ];
    for (body, kind) in cases {
        assert_eq!(trap_of(body), ExitStatus::Trapped(kind), "{body}");
    }
}

#[test]
fn hand_written_sdk_task_follows_the_contract() {
    // The ABI of wasmproc-abi, by hand: read the input, answer with JSON.
    let module = wat(r#"
      (module
        (import "wasmproc_v1" "input_len" (func $input_len (result i32)))
        (import "wasmproc_v1" "input_read" (func $input_read (param i32)))
        (import "wasmproc_v1" "output_write" (func $output_write (param i32 i32)))
        (memory (export "memory") 1)
        (func (export "wasmproc_task:echo_raw") (result i32)
          (call $input_read (i32.const 100))
          (call $output_write (i32.const 100) (call $input_len))
          (i32.const 0)))
    "#);
    assert_eq!(module.tasks(), ["echo_raw"]);
    let outcome = module.run(&Task::call("echo_raw", &[1, 2, 3]).unwrap());
    assert_eq!(outcome.decode::<Vec<u8>>().unwrap(), [1, 2, 3]);
}

#[test]
fn unsatisfiable_import_cannot_run_and_is_named() {
    let module = wat(r#"(module (import "env" "mystery" (func)) (func (export "_start")))"#);
    let outcome = module.run(&Task::command());
    assert_eq!(outcome.status, ExitStatus::CannotRun);
    let message = outcome.message.unwrap();
    assert!(
        message.contains("env") && message.contains("mystery"),
        "{message}"
    );
    let import = &module.imports()[0];
    assert!(!import.provided);
}

#[test]
fn wrong_start_signature_cannot_run() {
    let module = wat(r#"(module (func (export "_start") (param i32)))"#);
    // Asked for by name, or found by default: the message names the type.
    for task in [
        Task::command(),
        Task::new(wasmproc::Entry::Auto, &b"null"[..]),
    ] {
        let outcome = module.run(&task);
        assert_eq!(outcome.status, ExitStatus::CannotRun);
        let message = outcome.message.unwrap();
        assert!(
            message.contains("exports `_start` as func (i32) -> ()"),
            "{message}"
        );
    }
}

/// WASI passes data through the guest's memory: a module that imports WASI
/// functions but exports no memory cannot run (126), before it starts.
#[test]
fn a_command_without_its_memory_cannot_run() {
    let module = wat(r#"(module
             (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
             (memory 1)
             (func (export "_start")))"#);
    let outcome = module.run(&Task::command());
    assert_eq!(outcome.status, ExitStatus::CannotRun);
    assert!(
        outcome
            .message
            .unwrap()
            .contains("exports no memory named `memory`")
    );
}

/// A module that is valid WebAssembly but over the engine's limits (here a
/// table larger than the instance pool's) is told apart from a malformed
/// one, and leaves nothing in the cache (its code compiles, by an engine
/// without the pool's limits, but cannot be loaded: an entry kept would be
/// mapped, refused and written again at every load).
#[test]
fn a_module_over_the_engine_limits_is_not_called_invalid() {
    let binary =
        wat::parse_str(r#"(module (table 1000000 funcref) (func (export "_start")))"#).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let runtime = wasmproc::Runtime::builder()
        .cache_dir(cache.path().join("cache"))
        .cache_key_file(cache.path().join("cache.key"))
        .build()
        .unwrap();
    for _ in 0..2 {
        let error = runtime.load_bytes("big-table.wasm", &binary).unwrap_err();
        assert_eq!(error.exit_status(), ExitStatus::CannotRun);
        assert!(
            error
                .to_string()
                .contains("valid WebAssembly but cannot run under wasmproc's limits"),
            "{error}"
        );
        let entries = runtime.cache_entries().unwrap();
        assert!(entries.is_empty(), "nothing cached: {entries:?}");
    }
}

/// Loading is bounded before anything is compiled: by size and by the
/// number of functions, each with its knob named.
#[test]
fn modules_past_the_load_limits_are_refused_before_compiling() {
    let five =
        wat::parse_str(r#"(module (func) (func) (func) (func) (func (export "_start")))"#).unwrap();
    let strict = wasmproc::Runtime::builder()
        .no_cache()
        .max_module_functions(4)
        .max_module_size(1 << 10)
        .build()
        .unwrap();
    let error = strict.load_bytes("five.wasm", &five).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("defines 5 functions, over the limit of 4"),
        "{error}"
    );
    let error = strict
        .load_bytes("huge.wasm", &vec![0u8; 2 << 10])
        .unwrap_err();
    assert!(error.to_string().contains("max_module_size"), "{error}");
}

/// A file that is no module is refused by its first bytes, without reading
/// it whole (`/dev/zero` never ends).
#[cfg(unix)]
#[test]
fn an_endless_file_is_refused_at_once() {
    let error = runtime().load("/dev/zero").unwrap_err();
    assert_eq!(error.exit_status(), ExitStatus::CannotRun);
    assert!(
        error.to_string().contains("not a WebAssembly module"),
        "{error}"
    );
}

#[test]
fn wrong_task_signature_cannot_run() {
    let module = wat(
        r#"(module (func (export "wasmproc_task:bad") (param i32) (result i32) (i32.const 0)))"#,
    );
    let outcome = module.run(&Task::call("bad", &1).unwrap());
    assert_eq!(outcome.status, ExitStatus::CannotRun);
}

#[test]
fn module_with_nothing_to_run_cannot_run() {
    let module = wat("(module (func (export \"helper\")))");
    let outcome = module.run(&Task::new(wasmproc::Entry::Auto, &b"null"[..]));
    assert_eq!(outcome.status, ExitStatus::CannotRun);
    assert!(outcome.message.unwrap().contains("nothing to run"));
}

#[test]
fn initial_memory_over_the_limit_is_memory_exceeded() {
    let module = wat(r#"(module (memory 1024) (func (export "_start")))"#);
    let task = Task::command().limits(Limits::default().max_memory(16 << 20));
    assert_eq!(module.run(&task).status, ExitStatus::MemoryExceeded);
}

#[test]
fn trap_in_a_start_section_is_a_trap() {
    let module = wat(r#"(module (func $boom unreachable) (start $boom) (func (export "_start")))"#);
    assert_eq!(
        module.run(&Task::command()).status,
        ExitStatus::Trapped(TrapKind::Unreachable)
    );
}

#[test]
fn busy_wat_loop_times_out() {
    let module = wat(r#"(module (func (export "_start") (loop br 0)))"#);
    let task = Task::command().limits(Limits::default().timeout(Duration::from_millis(100)));
    assert_eq!(module.run(&task).status, ExitStatus::TimedOut);
}

#[test]
fn an_empty_component_and_junk_cannot_run() {
    // A component (layer 1) loads since components run (see
    // `components.rs`); an empty one has no `wasi:cli/run` to call.
    let component = b"\0asm\x0d\x00\x01\x00";
    let loaded = runtime().load_bytes("c.wasm", component).unwrap();
    assert!(loaded.is_component() && !loaded.is_command());
    let outcome = loaded.run(&Task::command());
    assert_eq!(outcome.status, ExitStatus::CannotRun);
    let message = outcome.message.unwrap();
    assert!(message.contains("not a WASI command"), "{message}");
    let error = runtime()
        .load_bytes("future.wasm", b"\0asm\x0e\x00\x02\x00")
        .err()
        .unwrap();
    assert_eq!(error.kind(), &ErrorKind::CannotRun);
    assert!(
        error.to_string().contains("unknown WebAssembly version"),
        "{error}"
    );
    let error = runtime()
        .load_bytes("notes.txt", b"just some text")
        .err()
        .unwrap();
    assert_eq!(error.kind(), &ErrorKind::CannotRun);
    assert!(
        error.to_string().contains("not a WebAssembly module"),
        "{error}"
    );
}

#[test]
#[cfg_attr(
    no_c_guest,
    ignore = "clang and wasi-libc are not installed: apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32"
)]
fn c_guest_runs_with_argv_env_and_exit_code() {
    let path = guests::C_HELLO.expect("build.rs built the C guest");
    let module = runtime().load(path).unwrap();
    let task = Task::command()
        .args(["ada", "grace"])
        .env("GREETING", "hey");
    let outcome = module.run(&task);
    assert_eq!(outcome.status, ExitStatus::Exited(2));
    assert_eq!(outcome.stdout.text(), "hey, ada\nhey, grace\n");
    assert_eq!(outcome.stderr.text(), "c guest done\n");
}

#[test]
fn runaway_recursion_overflows_the_wasm_stack() {
    let module = wat(r#"(module (func $f (call $f)) (func (export "_start") (call $f)))"#);
    let outcome = module.run(&Task::command());
    assert_eq!(outcome.status, ExitStatus::Trapped(TrapKind::StackOverflow));
}
