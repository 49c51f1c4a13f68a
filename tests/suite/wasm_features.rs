//! Core-module proposals beyond the MVP (exceptions, GC types, multi-memory,
//! tail calls, relaxed SIMD, wide arithmetic), modules larger than the
//! pool's old per-instance limits, and the error of an unsupported one.
//! Each module is a small WAT command whose exit code proves the feature
//! worked.

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, bounded};
use wasmproc::{
    CancelToken, ErrorKind, Executor, ExitStatus, Isolation, Limits, Output, Pool, ProcessOptions,
    Runtime, Stdin, Task,
};
use wasmproc_tests::{runtime, suite_cache_dir, suite_cache_key_file};

use crate::pool_host;

/// A command whose `_start` exits with the value `body` leaves on the stack;
/// `items` are more module fields (types, tags, memories, functions).
fn command(items: &str, body: &str) -> String {
    format!(
        r#"(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  {items}
  (func (export "_start") (call $proc_exit {body})))"#
    )
}

fn load(name: &str, source: &str) -> wasmproc::Module {
    let binary = wat::parse_str(source).expect("the test's WAT is valid");
    runtime()
        .load_bytes(name, &binary)
        .unwrap_or_else(|error| panic!("{name} loads: {error:#}"))
}

/// Runs `module` as a command in a pool of each isolation; each must exit
/// with `code`.
fn exits_in_both_isolations(module: &wasmproc::Module, code: u8) {
    ends_in_both_isolations(module, Limits::default(), ExitStatus::Exited(code));
}

/// Runs `module` as a command under `limits` in a pool of each isolation;
/// each must end with `status`. Returns the process isolation's outcome.
fn ends_in_both_isolations(
    module: &wasmproc::Module,
    limits: Limits,
    status: ExitStatus,
) -> wasmproc::Outcome {
    let isolations = [
        ("thread", Isolation::Thread),
        (
            "process",
            Isolation::Process(ProcessOptions::default().executable(pool_host())),
        ),
    ];
    let mut last = None;
    for (name, isolation) in isolations {
        let pool = Pool::builder(module)
            .workers(1)
            .limits(limits.clone())
            .isolation(isolation)
            .build()
            .unwrap();
        let outcome = pool.run(Task::command(), &CancelToken::new());
        assert_eq!(
            outcome.status, status,
            "{name} isolation: {:?}",
            outcome.message
        );
        last = Some(outcome);
    }
    last.expect("two isolations ran")
}

/// A tag thrown two calls deep, caught by reference, rethrown with
/// `throw_ref` and caught by value: 42 proves both catches happened (1 would
/// be no throw at all; an uncaught exception does not exit).
const EXCEPTIONS: (&str, &str) = (
    r#"
  (tag $boom (param i32))
  (func $thrower (param i32) (throw $boom (local.get 0)))
  (func $middle (param i32) (call $thrower (local.get 0)))
  (func $rethrows
    (throw_ref
      (block $any (result exnref)
        (try_table (catch_all_ref $any)
          (call $middle (i32.const 42)))
        (unreachable))))"#,
    r#"
    (block $caught (result i32)
      (try_table (catch $boom $caught)
        (call $rethrows))
      (i32.const 1))"#,
);

#[test]
fn a_wasm_exception_is_thrown_and_caught() {
    let module = load("exceptions.wasm", &command(EXCEPTIONS.0, EXCEPTIONS.1));
    assert_eq!(module.run(&Task::command()).status, ExitStatus::Exited(42));
    exits_in_both_isolations(&module, 42);
}

/// An exception no handler catches reaches the host: a trap that says
/// so, not a host function's failure.
#[test]
fn an_uncaught_wasm_exception_is_a_trap_that_says_so() {
    let module = load(
        "uncaught.wasm",
        &command(
            "(tag $boom (param i32)) (func $throws (result i32) (throw $boom (i32.const 9)))",
            "(call $throws)",
        ),
    );
    let outcome = ends_in_both_isolations(
        &module,
        Limits::default(),
        ExitStatus::Trapped(wasmproc::TrapKind::UncaughtException),
    );
    let message = outcome.message.unwrap_or_default();
    assert!(message.contains("no handler caught"), "{message}");
}

#[test]
fn gc_structs_are_allocated_and_read() {
    let module = load(
        "gc.wasm",
        &command(
            "(type $point (struct (field $x i32) (field $y i32)))",
            "(struct.get $point $y (struct.new $point (i32.const 4) (i32.const 9)))",
        ),
    );
    exits_in_both_isolations(&module, 9);
}

#[test]
fn a_module_with_three_memories_uses_each() {
    let module = load(
        "multi-memory.wasm",
        &command(
            r#"(memory $a (export "memory") 1) (memory $b 1) (memory $c 2)
               (func $fill
                 (i32.store $a (i32.const 0) (i32.const 7))
                 (i32.store $b (i32.const 0) (i32.const 5))
                 (i32.store $c (i32.const 65536) (i32.const 30)))"#,
            r#"(call $fill)
               (i32.add (i32.load $a (i32.const 0))
                 (i32.add (i32.load $b (i32.const 0)) (i32.load $c (i32.const 65536))))"#,
        ),
    );
    exits_in_both_isolations(&module, 42);
}

/// The memory limit is the task's, over all its memories: three memories
/// of 30 MiB each are past 64 MiB, though each alone is within it.
#[test]
fn the_memory_limit_counts_every_memory_together() {
    let module = load(
        "multi-memory-grow.wasm",
        &command(
            r#"(memory $a (export "memory") 1) (memory $b 1) (memory $c 1)
               (func $grow (result i32)
                 (drop (memory.grow $a (i32.const 480)))
                 (drop (memory.grow $b (i32.const 480)))
                 (drop (memory.grow $c (i32.const 480)))
                 (i32.const 0))"#,
            "(call $grow)",
        ),
    );
    let outcome = ends_in_both_isolations(
        &module,
        Limits::default().max_memory(64 << 20),
        ExitStatus::MemoryExceeded,
    );
    // Two memories of 481 pages, and the third asking for as many.
    assert_eq!(outcome.memory_asked_bytes, Some(3 * 481 * 65536));
    // Within the limit, the peak is the three together.
    let outcome = ends_in_both_isolations(
        &module,
        Limits::default().max_memory(128 << 20),
        ExitStatus::Exited(0),
    );
    assert_eq!(outcome.peak_memory_bytes, 3 * 481 * 65536);
}

#[test]
fn tail_calls_recurse_a_million_deep_in_constant_stack() {
    // A million plain calls would overflow the 1 MiB wasm stack.
    let module = load(
        "tail-calls.wasm",
        &command(
            r#"(func $count (param $n i32) (param $acc i32) (result i32)
                 (if (result i32) (i32.eqz (local.get $n))
                   (then (local.get $acc))
                   (else (return_call $count
                     (i32.sub (local.get $n) (i32.const 1))
                     (i32.add (local.get $acc) (i32.const 1))))))"#,
            "(i32.rem_u (call $count (i32.const 1000000) (i32.const 0)) (i32.const 256))",
        ),
    );
    exits_in_both_isolations(&module, (1_000_000 % 256) as u8);
}

#[test]
fn relaxed_simd_and_wide_arithmetic_compile_and_run() {
    // laneselect with an all-ones mask picks the first operand on every
    // implementation; 2^32 * 2^32 = 2^64 has 1 in its high 64 bits.
    let module = load(
        "relaxed-simd-wide.wasm",
        &command(
            r#"(func $high (result i64)
                 (i64.mul_wide_u (i64.const 4294967296) (i64.const 4294967296))
                 (return))"#,
            r#"(i32.add
                 (i32x4.extract_lane 0
                   (i32x4.relaxed_laneselect (v128.const i32x4 5 0 0 0)
                     (v128.const i32x4 6 0 0 0) (v128.const i32x4 -1 0 0 0)))
                 (i32.wrap_i64 (call $high)))"#,
        ),
    );
    exits_in_both_isolations(&module, 6);
}

/// A command of `count` functions, every one in its function table (as a
/// toolchain's address-taken functions are: each then takes a slot in the
/// instance's VMContext); `_start` calls the last through the table and
/// exits 0 if it returned its own index.
fn many_functions(count: u32) -> String {
    let mut functions = String::with_capacity(count as usize * 48);
    let mut elements = String::with_capacity(count as usize * 8);
    for index in 0..count {
        functions.push_str(&format!(
            "(func $f{index} (result i32) (i32.const {index}))\n"
        ));
        elements.push_str(&format!(" $f{index}"));
    }
    let last = count - 1;
    command(
        &format!(
            "(type $get (func (result i32)))
             (memory (export \"memory\") 1)
             (table {count} {count} funcref)
             (elem (i32.const 0) func{elements})
             {functions}"
        ),
        &format!("(i32.ne (call_indirect (type $get) (i32.const {last})) (i32.const {last}))"),
    )
}

#[test]
fn a_module_of_60_000_functions_runs() {
    let module = load("60k-functions.wasm", &many_functions(60_000));
    let outcome = module.run(&Task::command());
    assert_eq!(
        outcome.status,
        ExitStatus::Exited(0),
        "{:?}",
        outcome.message
    );
    exits_in_both_isolations(&module, 0);
}

#[test]
fn a_shared_memory_is_refused_with_the_reason() {
    let source = r#"(module (memory (export "memory") 1 1 shared)
                     (func (export "_start") (drop (i32.atomic.load (i32.const 0)))))"#;
    let binary = wat::parse_str(source).unwrap();
    let error = runtime()
        .load_bytes("shared.wasm", &binary)
        .expect_err("a shared memory is refused");
    assert_eq!(error.kind(), &ErrorKind::CannotRun);
    let message = format!("{error:#}");
    assert!(
        message.contains("threads must be enabled for shared memories"),
        "{message}"
    );
}

/// A stdout whose first write says so: the task writing it is surely
/// instantiated (its stdin is read ahead by a thread that may start before
/// the instance exists, so a read is no such sign).
struct Started(Sender<()>);

impl Write for Started {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let _ = self.0.try_send(());
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A stdin that waits to be let go, then reads end of file: the task
/// reading it stays alive until the test lets it go.
struct Gate(Receiver<()>);

impl Read for Gate {
    fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
        let _ = self.0.recv();
        Ok(0)
    }
}

/// Runs `second` (given the module) while a first instance of a module of
/// eight memories holds them, in a runtime of two places: 2 x 3 + 8 = 14
/// memory slots, so the second instance lacks slots until the first ends.
/// Each instance writes a byte to its stdout, then reads its stdin to its
/// end. `second` runs on its own thread once the first wrote; after 300 ms
/// the first is let go.
/// Returns whether `second` had ended by then, and its outcome.
fn while_another_holds_the_slots(
    second: impl FnOnce(&wasmproc::Module) -> wasmproc::Outcome + Send,
) -> (bool, wasmproc::Outcome) {
    let runtime = Runtime::builder()
        .max_instances(2)
        .cache_dir(suite_cache_dir())
        .cache_key_file(suite_cache_key_file())
        .build()
        .unwrap();
    let memories: String = (1..8)
        .map(|index| format!("(memory $m{index} 1) "))
        .collect();
    let source = command(
        &format!(
            r#"(import "wasi_snapshot_preview1" "fd_write"
                 (func $fd_write (param i32 i32 i32 i32) (result i32)))
               (import "wasi_snapshot_preview1" "fd_read"
                 (func $fd_read (param i32 i32 i32 i32) (result i32)))
               (memory (export "memory") 1) {memories}
               (data (i32.const 16) "x")
               (func $write_then_read (result i32)
                 (i32.store (i32.const 0) (i32.const 16))
                 (i32.store (i32.const 4) (i32.const 1))
                 (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
                 (i32.store (i32.const 4) (i32.const 16))
                 (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))"#
        ),
        "(call $write_then_read)",
    );
    let module = runtime
        .load_bytes("eight-memories.wasm", &wat::parse_str(&source).unwrap())
        .unwrap();
    let (started, first_started) = bounded(1);
    let (release, released) = bounded(1);
    std::thread::scope(|scope| {
        let first = scope.spawn(|| {
            let task = Task::command()
                .stdout(Output::Writer(Arc::new(Mutex::new(Started(started)))))
                .stdin(Stdin::reader(Gate(released)));
            module.run(&task)
        });
        first_started
            .recv_timeout(Duration::from_secs(60))
            .expect("the first task writes its stdout");
        let second = scope.spawn(|| second(&module));
        std::thread::sleep(Duration::from_millis(300));
        let second_ended_early = second.is_finished();
        release.send(()).unwrap();
        let first = first.join().unwrap();
        assert_eq!(first.status, ExitStatus::Exited(0), "{:?}", first.message);
        (second_ended_early, second.join().unwrap())
    })
}

#[test]
fn a_task_waits_for_memory_slots_that_another_instance_holds() {
    // Before it waited: "cannot_run: maximum concurrent limit of 14 for
    // memory stripe 0 reached".
    let (ended_early, second) =
        while_another_holds_the_slots(|module| module.run(&Task::command()));
    assert!(
        !ended_early,
        "the second task ended while the first held the slots: {:?} {:?}",
        second.status, second.message
    );
    assert_eq!(second.status, ExitStatus::Exited(0), "{:?}", second.message);
}

#[test]
fn a_task_waiting_for_slots_ends_at_its_deadline() {
    let (ended_early, second) = while_another_holds_the_slots(|module| {
        let limits = Limits::default().timeout(Duration::from_millis(100));
        module.run(&Task::command().limits(limits))
    });
    assert!(ended_early, "the wait outlived the deadline");
    assert_eq!(second.status, ExitStatus::TimedOut, "{:?}", second.message);
}
