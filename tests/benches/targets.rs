//! Issue 22's targets, measured side by side in one run:
//!
//! 1. typed component exports against the SDK's `#[task]`: the same task
//!    (`square`), one a wit-bindgen export of a `wasm32-wasip2` component,
//!    the other an SDK task of a `wasm32-wasip1` module, through the same
//!    `Pool::map`, in thread and process isolation (target: the component
//!    at least half the module's tasks/s);
//! 2. a large module's start from the cache: a generated core module of
//!    100,000 functions padded to about 100 MB, compiled once through the
//!    real cache, then `wasmproc run` of it (the real binary, built with
//!    this benchmark's own profile) against a tiny module's, median of
//!    several runs, in thread and process isolation (target: <= 50 ms).
//!
//! Run: `cargo bench -p wasmproc-tests --bench targets` (release), or
//! `cargo bench --profile dev -p wasmproc-tests --bench targets` (the dev
//! profile's build, dependencies optimized). Options: `--tasks N` (typed
//! rows, default 50000), `--functions N` (default 100000), `--megabytes N`
//! (the large module's size, default 100), `--runs N` (default 7),
//! `--only typed|large`, `--dir DIR` (keep the large module and its cache
//! there).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use wasm_encoder::{
    CodeSection, ConstExpr, CustomSection, ElementSection, Elements, ExportKind, ExportSection,
    Function, FunctionSection, Instruction, MemorySection, MemoryType, Module, RefType,
    TableSection, TableType, TypeSection, ValType,
};
use wasmproc::{Isolation, Pool, ProcessOptions, Runtime, Task};
use wasmproc_tests::{bench_option, bench_section_wanted, guests, median};

fn main() {
    // The process-isolation rows start this very binary as their workers.
    wasmproc::run_worker_if_requested();
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    println!(
        "wasmproc issue-22 targets: {cpus} CPUs, one run ({})",
        profile()
    );
    let mut ratios = Vec::new();
    if bench_section_wanted("typed") {
        typed(cpus, &mut ratios);
    }
    if bench_section_wanted("large") {
        large(&mut ratios);
    }
    println!("\nratios and figures (same run)");
    for (name, value) in ratios {
        println!("  {name:<72} {value:>9.2}");
    }
}

/// The cargo profile this benchmark was built with, from where its
/// executable lies (`target/<dir>/deps/`): `release`, or `dev` for
/// `target/debug`.
fn profile() -> &'static str {
    if wasmproc_tests::bench_target_dir() == "debug" {
        "dev"
    } else {
        "release"
    }
}

// ---------------------------------------------------------------------------
// 1. typed component exports against #[task]

fn typed(cpus: usize, ratios: &mut Vec<(String, f64)>) {
    let tasks = bench_option("--tasks", 50_000);
    println!(
        "\n1. `square` through Pool::map, {cpus} workers, {tasks} tasks per row, a fresh instance per task"
    );
    let cache = tempfile::tempdir().expect("a temporary directory");
    let runtime = Runtime::builder()
        .cache_dir(cache.path().join("cache"))
        .cache_key_file(cache.path().join("cache.key"))
        .build()
        .expect("runtime");
    let sdk = runtime.load(guests::SDK_TASKS).expect("sdk-tasks loads");
    let component = runtime
        .load(guests::TYPED_COMPONENT)
        .expect("the typed component loads");
    // Where a component's task goes, one thread, no pool: the same call
    // through `Module::run`, and the component's `nothing` (no argument,
    // no result: its instantiation and call alone).
    let (mut module_loop, mut component_loop, mut nothing_loop) = (0f64, 0f64, 0f64);
    for _ in 0..2 {
        module_loop = module_loop.max(run_loop(&sdk, "square", tasks / 4));
        component_loop = component_loop.max(run_loop(&component, "square", tasks / 4));
        nothing_loop = nothing_loop.max(run_loop(&component, "nothing", tasks / 4));
    }
    row(
        "#[task] square, Module::run loop, 1 thread",
        module_loop,
        "tasks/s",
    );
    row(
        "typed export square, Module::run loop, 1 thread",
        component_loop,
        "tasks/s",
    );
    row(
        "typed export nothing (no JSON), Module::run loop, 1 thread",
        nothing_loop,
        "tasks/s",
    );
    ratios.push((
        "typed component / #[task], Module::run loop, 1 thread".into(),
        component_loop / module_loop,
    ));
    for (kind, isolation) in [
        ("thread", Isolation::Thread),
        ("process", Isolation::Process(ProcessOptions::default())),
    ] {
        // Interleaved, twice each, best of two: the machine is shared.
        let (mut module_rate, mut component_rate) = (0f64, 0f64);
        for _ in 0..2 {
            module_rate = module_rate.max(square_map(&sdk, tasks, cpus, isolation.clone()));
            component_rate =
                component_rate.max(square_map(&component, tasks, cpus, isolation.clone()));
        }
        row(
            &format!("#[task] square (wasm32-wasip1 SDK module), {kind} workers"),
            module_rate,
            "tasks/s",
        );
        row(
            &format!("typed export square (wasm32-wasip2 component), {kind} workers"),
            component_rate,
            "tasks/s",
        );
        ratios.push((
            format!("typed component / #[task] throughput, {kind} workers (target >= 0.5)"),
            component_rate / module_rate,
        ));
    }
}

/// Tasks per second of `task` run `tasks` times in a loop on this thread
/// (`square` of each number, `nothing` with no argument).
fn run_loop(module: &wasmproc::Module, task: &str, tasks: usize) -> f64 {
    let started = Instant::now();
    for i in 0..tasks as i64 {
        let task = if task == "square" {
            Task::call(task, &(i % 40_000)).expect("serializes")
        } else {
            Task::call(task, &()).expect("serializes")
        };
        let outcome = module.run(&task);
        assert!(outcome.success(), "{outcome:?}");
    }
    tasks as f64 / started.elapsed().as_secs_f64()
}

/// Tasks per second of `square` over `tasks` numbers through a pool of
/// `workers`; every result is checked.
fn square_map(
    module: &wasmproc::Module,
    tasks: usize,
    workers: usize,
    isolation: Isolation,
) -> f64 {
    let pool = Pool::builder(module)
        .workers(workers)
        .isolation(isolation)
        .build()
        .expect("pool");
    // Numbers whose squares fit the component's `s32`.
    let numbers = (0..tasks as i64).map(|i| i % 40_000);
    let started = Instant::now();
    let mut count = 0;
    for (i, outcome) in pool.map("square", numbers).enumerate() {
        let n = (i % 40_000) as i64;
        assert_eq!(
            outcome.decode::<i64>().expect("square succeeds"),
            n * n,
            "{outcome:?}"
        );
        count += 1;
    }
    assert_eq!(count, tasks);
    tasks as f64 / started.elapsed().as_secs_f64()
}

// ---------------------------------------------------------------------------
// 2. a large module's cached start

fn large(ratios: &mut Vec<(String, f64)>) {
    let functions = bench_option("--functions", 100_000) as u32;
    let megabytes = bench_option("--megabytes", 100);
    let runs = bench_option("--runs", 7);
    let wasmproc = binary();
    // `--dir DIR` keeps the modules and the cache there (for profiling).
    let temporary = tempfile::tempdir().expect("a temporary directory");
    let kept = std::env::args().skip_while(|a| a != "--dir").nth(1);
    let dir = kept.map_or_else(|| temporary.path().to_owned(), PathBuf::from);
    std::fs::create_dir_all(&dir).expect("makes the directory");
    let dir = dir.as_path();
    let large = dir.join("large.wasm");
    let tiny = dir.join("tiny.wasm");
    let bytes = large_module(functions, megabytes << 20);
    std::fs::write(&large, &bytes).expect("writes the large module");
    std::fs::write(&tiny, large_module(2, 0)).expect("writes the tiny module");
    println!(
        "\n2. `wasmproc run` of a module's _start from the cache ({} binary), median of {runs}",
        profile()
    );
    println!(
        "  the large module: {functions} functions (all but _start in its table), {:.1} MB \
         ({:.1} MB of code, the rest a custom section)",
        bytes.len() as f64 / 1e6,
        code_bytes(functions) as f64 / 1e6
    );

    // The first run compiles (the cache is empty); `wasmproc compile` is
    // the same compile without running.
    let first = run_once(&wasmproc, dir, &["compile"], &large);
    row(
        "first load: `wasmproc compile` (compiles, fills the cache)",
        first,
        "s",
    );
    ratios.push(("large module: first compile, s".into(), first));
    for isolation in ["thread", "process"] {
        let args = ["run", "--isolation", isolation];
        // One warm-up each (the page cache, the cache's checked records).
        run_once(&wasmproc, dir, &args, &tiny);
        run_once(&wasmproc, dir, &args, &large);
        let (mut big, mut small) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            big.push(run_once(&wasmproc, dir, &args, &large));
            small.push(run_once(&wasmproc, dir, &args, &tiny));
        }
        let big = median(&mut big) * 1e3;
        let small = median(&mut small) * 1e3;
        row(
            &format!("`wasmproc run --isolation {isolation}` large.wasm, cached"),
            big,
            "ms",
        );
        row(
            &format!("`wasmproc run --isolation {isolation}` tiny.wasm, cached"),
            small,
            "ms",
        );
        ratios.push((
            format!("large module, {isolation}: cached start, ms (target <= 50)"),
            big,
        ));
        ratios.push((
            format!("large module, {isolation}: cached start over the tiny module's, ms"),
            big - small,
        ));
    }
}

/// The `wasmproc` binary, built with this benchmark's profile.
fn binary() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let profile = profile();
    let status = Command::new(cargo)
        .current_dir(&root)
        .args(["build", "--quiet", "--profile", profile])
        .args(["-p", "wasmproc-cli", "--bin", "wasmproc"])
        .env_remove("CARGO_TARGET_DIR")
        .status()
        .expect("cargo runs");
    assert!(
        status.success(),
        "cargo build of wasmproc failed (see above)"
    );
    let dir = if profile == "dev" { "debug" } else { profile };
    root.join("target")
        .join(dir)
        .join(format!("wasmproc{}", std::env::consts::EXE_SUFFIX))
}

/// Seconds `wasmproc ARGS MODULE` took, with the benchmark's cache; the
/// command must succeed.
fn run_once(wasmproc: &Path, dir: &Path, args: &[&str], module: &Path) -> f64 {
    let started = Instant::now();
    let output = Command::new(wasmproc)
        .args(args)
        .arg(module)
        .env("WASMPROC_CACHE_DIR", dir.join("cache"))
        .env("WASMPROC_CACHE_KEY_FILE", dir.join("cache.key"))
        .stdin(Stdio::null())
        .output()
        .expect("wasmproc starts");
    let seconds = started.elapsed().as_secs_f64();
    assert!(
        output.status.success(),
        "wasmproc {args:?} {} failed: {}",
        module.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    seconds
}

/// Instructions in each generated function's body: enough to make the code
/// section a few tens of bytes per function, as a toolchain's small
/// functions are.
const BODY_ADDS: u32 = 8;

/// A command module of `total` functions: `_start` and the others (each
/// `() -> i32`, all in one table, as a toolchain's address-taken functions
/// are); `_start` calls the last through the table and traps unless it
/// returned its own index. Padded with a custom section to about `size`
/// bytes.
fn large_module(total: u32, size: usize) -> Vec<u8> {
    let functions = total - 1;
    let mut module = Module::new();
    let mut types = TypeSection::new();
    types.ty().function([], [ValType::I32]);
    types.ty().function([], []);
    module.section(&types);

    let mut funcs = FunctionSection::new();
    for _ in 0..functions {
        funcs.function(0);
    }
    funcs.function(1);
    module.section(&funcs);

    let mut tables = TableSection::new();
    tables.table(TableType {
        element_type: RefType::FUNCREF,
        minimum: u64::from(functions),
        maximum: Some(u64::from(functions)),
        table64: false,
        shared: false,
    });
    module.section(&tables);

    let mut memories = MemorySection::new();
    memories.memory(MemoryType {
        minimum: 1,
        maximum: None,
        memory64: false,
        shared: false,
        page_size_log2: None,
    });
    module.section(&memories);

    let mut exports = ExportSection::new();
    exports.export("memory", ExportKind::Memory, 0);
    exports.export("_start", ExportKind::Func, functions);
    module.section(&exports);

    let mut elements = ElementSection::new();
    let indices: Vec<u32> = (0..functions).collect();
    elements.active(
        Some(0),
        &ConstExpr::i32_const(0),
        Elements::Functions(indices.into()),
    );
    module.section(&elements);

    let mut code = CodeSection::new();
    for index in 0..functions {
        code.function(&filler_body(index as i32));
    }
    let last = functions - 1;
    let mut start = Function::new([]);
    start.instruction(&Instruction::I32Const(last as i32));
    start.instruction(&Instruction::CallIndirect {
        type_index: 0,
        table_index: 0,
    });
    start.instruction(&Instruction::I32Const(last as i32));
    start.instruction(&Instruction::I32Ne);
    start.instruction(&Instruction::If(wasm_encoder::BlockType::Empty));
    start.instruction(&Instruction::Unreachable);
    start.instruction(&Instruction::End);
    start.instruction(&Instruction::End);
    code.function(&start);
    module.section(&code);

    let mut wasm = module.finish();
    if size > wasm.len() {
        // Data a toolchain leaves in custom sections (names, debug info).
        let padding = vec![0x5a; size - wasm.len() - 16];
        let custom = CustomSection {
            name: "padding".into(),
            data: padding.into(),
        };
        let mut padded = Module::new();
        padded.section(&custom);
        wasm.extend_from_slice(&padded.finish()[8..]);
    }
    wasm
}

/// What each function's additions add up to (subtracted again, so that it
/// returns its index).
fn body_sum() -> u32 {
    (1..=BODY_ADDS).sum()
}

/// About how many bytes of code `large_module` writes for `functions`.
fn code_bytes(functions: u32) -> usize {
    (filler_body(100_000).byte_len() + 1) * functions as usize
}

/// The body of `large_module`'s function `index`: `index` plus the
/// numbers 1..=BODY_ADDS, minus their sum (so it returns `index`).
fn filler_body(index: i32) -> Function {
    let mut body = Function::new([]);
    body.instruction(&Instruction::I32Const(index));
    for add in 0..BODY_ADDS {
        body.instruction(&Instruction::I32Const(add as i32 + 1));
        body.instruction(&Instruction::I32Add);
    }
    body.instruction(&Instruction::I32Const(body_sum() as i32));
    body.instruction(&Instruction::I32Sub);
    body.instruction(&Instruction::End);
    body
}

fn row(name: &str, value: f64, unit: &str) {
    println!("  {name:<72} {value:>12.2} {unit}");
}
