//! The pool benchmark: wasmproc against the raw wasmtime limit and Python's
//! multiprocessing, measured side by side in one run, reported as ratios.
//!
//! Run: `cargo bench -p wasmproc-tests --bench pool` (add `-- --tasks N` to
//! change the number of trivial tasks per row; default 100000; `-- --only
//! typed` for section 1's thread rows alone, with the CPU each task cost the
//! workers and the map's own thread, the raw rows beside them).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmproc::{Isolation, Limits, Pool, ProcessOptions, Runtime, Task};
use wasmproc_tests::{bench_section_wanted, guests};
use wasmtime::{Engine, Linker, Module, Store};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::{I32Exit, WasiCtxBuilder};

#[path = "../guests/kernel/src/lib.rs"]
#[allow(dead_code)]
mod kernel;

/// Rounds of the CPU kernel: about a quarter of a second natively.
const KERNEL_ROUNDS: u32 = 1000;

/// Prints the table as it is measured.
struct Report;

impl Report {
    fn section(&mut self, title: &str) {
        println!("\n{title}");
    }

    fn row(&mut self, name: &str, per_second: f64) -> f64 {
        println!("  {name:<56} {per_second:>12.0} /s");
        per_second
    }
}

fn main() {
    // The process-isolation rows start this very binary as their workers.
    wasmproc::run_worker_if_requested();
    let tasks = wasmproc_tests::tasks_argument(100_000);
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    println!("wasmproc pool benchmark: {tasks} trivial tasks per row, {cpus} CPUs, one run");

    let cache = tempfile::tempdir().expect("a temporary directory");
    let runtime = Runtime::builder()
        .cache_dir(cache.path())
        .build()
        .expect("runtime");
    let sdk = runtime.load(guests::SDK_TASKS).expect("sdk-tasks loads");
    let cmd = runtime.load(guests::WASI_CMD).expect("wasi-cmd loads");
    let component = runtime
        .load(guests::WASI_CMD_P2)
        .expect("the wasi-cmd component loads");
    let raw = RawWasmtime::new(cpus as u32);
    let mut report = Report;

    report.section("1. trivial typed task (square), a fresh instance per task");
    let raw_1 = report.row(
        "raw wasmtime: instantiate + call, 1 thread",
        raw.typed(tasks, 1),
    );
    let raw_cpu = raw.cpu_per_task_ns(tasks);
    let raw_n = report.row(
        &format!("raw wasmtime: instantiate + call, {cpus} threads"),
        raw.typed(tasks, cpus),
    );
    let lib_1 = report.row("wasmproc Module::run loop, 1 thread", run_loop(&sdk, tasks));
    let pool_1 = pool_map_cpu(&sdk, tasks, 1);
    report.row("wasmproc Pool::map, 1 thread worker", pool_1.per_second);
    let pool_cpu = pool_map_cpu(&sdk, tasks, cpus);
    let pool_n = report.row(
        &format!("wasmproc Pool::map, {cpus} thread workers"),
        pool_cpu.per_second,
    );
    for (workers, cpu) in [(1, &pool_1), (cpus, &pool_cpu)] {
        println!(
            "  CPU per task, Pool::map, {workers} thread workers: workers {:.2} µs, \
             map's thread {:.2} µs, others {:.2} µs",
            cpu.worker_ns / 1000.0,
            cpu.caller_ns / 1000.0,
            cpu.other_ns / 1000.0
        );
    }
    println!(
        "  CPU per task, raw wasmtime, 1 thread: {:.2} µs",
        raw_cpu / 1000.0
    );
    // `--only typed`: section 1's thread rows alone (the per-task path).
    let typed_only = !bench_section_wanted("all");
    if typed_only {
        println!("\nratios (same run)");
        println!(
            "  pool workers' / raw wasmtime's CPU per task, 1 thread {:>6.2}",
            pool_1.worker_ns / raw_cpu
        );
        println!(
            "  pool workers' / raw wasmtime's CPU per task, {cpus} threads {:>6.2}",
            pool_cpu.worker_ns / raw_cpu
        );
        println!(
            "  raw wasmtime / thread pool time per task, 1 thread   {:>6.2}",
            raw_1 / pool_1.per_second
        );
        println!(
            "  raw wasmtime / thread pool time per task, {cpus} threads  {:>6.2}",
            raw_n / pool_n
        );
        println!(
            "  raw wasmtime / Module::run loop time per task         {:>6.2}",
            raw_1 / lib_1
        );
        return;
    }
    let pool_p = report.row(
        &format!("wasmproc Pool::map, {cpus} process workers"),
        pool_map(&sdk, tasks, cpus, 1, process()),
    );
    let python = python_peer(tasks, cpus);
    for (name, per_second) in &python {
        report.row(
            &format!("python multiprocessing {name}, {cpus} workers"),
            *per_second,
        );
    }

    report.section("2. the same, chunked (one instance per chunk)");
    let chunked = report.row(
        &format!("wasmproc Pool::map chunksize=1000, {cpus} thread workers"),
        pool_map(&sdk, tasks, cpus, 1000, Isolation::Thread),
    );
    let chunked_p = report.row(
        &format!("wasmproc Pool::map chunksize=1000, {cpus} process workers"),
        pool_map(&sdk, tasks, cpus, 1000, process()),
    );

    report.section("3. WASI command (_start, exit 0), a fresh instance per task");
    let cmd_raw = report.row(
        &format!("raw wasmtime: instantiate + _start, {cpus} threads"),
        raw.command(tasks / 4, cpus),
    );
    let cmd_pool = report.row(
        &format!("wasmproc Pool::map_tasks, {cpus} thread workers"),
        command_map(&cmd, tasks / 4, cpus, Isolation::Thread),
    );
    let cmd_pool_p = report.row(
        &format!("wasmproc Pool::map_tasks, {cpus} process workers"),
        command_map(&cmd, tasks / 4, cpus, process()),
    );
    // The same program built for wasm32-wasip2: a WASI 0.2 component
    // (`wasi:cli/run`), whose instance holds four core instances.
    let comp_pool = report.row(
        &format!("wasmproc Pool::map_tasks, WASI 0.2 component, {cpus} thread workers"),
        command_map(&component, tasks / 4, cpus, Isolation::Thread),
    );
    let comp_pool_p = report.row(
        &format!("wasmproc Pool::map_tasks, WASI 0.2 component, {cpus} process workers"),
        command_map(&component, tasks / 4, cpus, process()),
    );

    report.section("4. CPU kernel (SHA-256, 1000 rounds over 64 KiB), one thread; rounds/s");
    let native = report.row("native", kernel_native());
    let wasm_plain = report.row("wasm, no timeout", kernel_wasm(&sdk, None));
    let wasm_timed = report.row(
        "wasm, 60s timeout (epochs on)",
        kernel_wasm(&sdk, Some(Duration::from_secs(60))),
    );

    report.section("5. scaling: Pool::map throughput by workers, threads vs processes");
    let mut scaling = Vec::new();
    for workers in [1, 2, 4, 8, 16].into_iter().filter(|w| *w <= cpus) {
        for (kind, isolation) in [("thread", Isolation::Thread), ("process", process())] {
            let typed = report.row(
                &format!("typed, {workers} {kind} workers"),
                pool_map(&sdk, tasks / 2, workers, 1, isolation.clone()),
            );
            let command = report.row(
                &format!("command, {workers} {kind} workers"),
                command_map(&cmd, tasks / 4, workers, isolation),
            );
            scaling.push((workers, kind, typed, command));
        }
    }

    let python_chunk1 = python
        .iter()
        .find(|(n, _)| n.contains("chunksize=1"))
        .map(|(_, v)| *v);
    let python_default = python
        .iter()
        .find(|(n, _)| n.contains("default"))
        .map(|(_, v)| *v);
    println!("\nratios (same run)");
    println!(
        "  thread pool / raw wasmtime ({cpus} threads)      {:>6.2}",
        pool_n / raw_n
    );
    println!(
        "  process pool / raw wasmtime ({cpus} threads)     {:>6.2}",
        pool_p / raw_n
    );
    println!(
        "  Module::run loop / raw wasmtime (1 thread)    {:>6.2}",
        lib_1 / raw_1
    );
    if let Some(python) = python_chunk1 {
        println!(
            "  thread pool / python Pool.map chunksize=1     {:>6.2}",
            pool_n / python
        );
    }
    if let Some(python) = python_default {
        println!(
            "  chunked pool / python Pool.map default chunks {:>6.2}",
            chunked / python
        );
    }
    println!(
        "  chunked process pool / chunked thread pool    {:>6.2}",
        chunked_p / chunked
    );
    println!(
        "  command thread pool / raw _start              {:>6.2}",
        cmd_pool / cmd_raw
    );
    println!(
        "  command process pool / raw _start             {:>6.2}",
        cmd_pool_p / cmd_raw
    );
    // Time per task, component over module (the target: <= 1.5).
    println!(
        "  component / module time per command, threads   {:>6.2}",
        cmd_pool / comp_pool
    );
    println!(
        "  component / module time per command, processes {:>6.2}",
        cmd_pool_p / comp_pool_p
    );
    println!(
        "  wasm / native time, timeouts on               {:>6.2}",
        native / wasm_timed
    );
    println!(
        "  wasm / native time, timeouts off              {:>6.2}",
        native / wasm_plain
    );
    for kind in ["thread", "process"] {
        let rows: Vec<_> = scaling.iter().filter(|(_, k, _, _)| *k == kind).collect();
        if let (Some(first), Some(last)) = (rows.first(), rows.last()) {
            println!(
                "  {kind} scaling {} workers / 1: typed {:.2}, command {:.2}",
                last.0,
                last.2 / first.2,
                last.3 / first.3
            );
        }
    }
}

/// Worker processes that are this benchmark binary (see `main`).
fn process() -> Isolation {
    Isolation::Process(ProcessOptions::default())
}

fn run_loop(module: &wasmproc::Module, tasks: usize) -> f64 {
    let started = Instant::now();
    for i in 0..tasks as u64 {
        let outcome = module.run(&Task::call("square", &i).expect("serializes"));
        assert_eq!(outcome.decode::<u64>().expect("square succeeds"), i * i);
    }
    tasks as f64 / started.elapsed().as_secs_f64()
}

fn pool_of(module: &wasmproc::Module, workers: usize, isolation: Isolation) -> Pool {
    Pool::builder(module)
        .workers(workers)
        .isolation(isolation)
        .build()
        .expect("pool")
}

fn pool_map(
    module: &wasmproc::Module,
    tasks: usize,
    workers: usize,
    chunksize: usize,
    isolation: Isolation,
) -> f64 {
    let pool = pool_of(module, workers, isolation);
    let started = Instant::now();
    let mut count = 0u64;
    for (i, outcome) in pool
        .map("square", 0..tasks as u64)
        .chunksize(chunksize)
        .enumerate()
    {
        assert_eq!(
            outcome.decode::<u64>().expect("square succeeds"),
            (i * i) as u64
        );
        count += 1;
    }
    assert_eq!(count, tasks as u64);
    tasks as f64 / started.elapsed().as_secs_f64()
}

/// A map's throughput and what each task cost in CPU time, by thread.
struct MapCpu {
    per_second: f64,
    /// The pool's worker threads, per task.
    worker_ns: f64,
    /// The thread that submits and reads the map (this one), per task.
    caller_ns: f64,
    /// Every other thread of the process (the epoch ticker), per task.
    other_ns: f64,
}

/// [`pool_map`] of `square` over thread workers, with the CPU time each
/// thread spent while it ran (Linux: read from `/proc`; zero elsewhere).
fn pool_map_cpu(module: &wasmproc::Module, tasks: usize, workers: usize) -> MapCpu {
    let pool = pool_of(module, workers, Isolation::Thread);
    let before = thread_cpu();
    let started = Instant::now();
    let mut count = 0u64;
    for (i, outcome) in pool.map("square", 0..tasks as u64).enumerate() {
        assert_eq!(
            outcome.decode::<u64>().expect("square succeeds"),
            (i * i) as u64
        );
        count += 1;
    }
    let per_second = tasks as f64 / started.elapsed().as_secs_f64();
    let after = thread_cpu();
    assert_eq!(count, tasks as u64);
    let me = std::process::id();
    let (mut worker, mut caller, mut other) = (0u64, 0u64, 0u64);
    for (tid, (name, ns)) in &after {
        let spent = ns - before.get(tid).map_or(0, |(_, ns)| *ns);
        if name.starts_with("wasmproc-worker") {
            worker += spent;
        } else if *tid == me {
            caller += spent;
        } else {
            other += spent;
        }
    }
    let per_task = |ns: u64| ns as f64 / tasks as f64;
    MapCpu {
        per_second,
        worker_ns: per_task(worker),
        caller_ns: per_task(caller),
        other_ns: per_task(other),
    }
}

/// This thread's time on a CPU so far, in nanoseconds (Linux; 0 elsewhere).
fn this_thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Each live thread of this process: its name and its time on a CPU so far
/// in nanoseconds (`/proc/self/task/TID/schedstat`'s first field).
fn thread_cpu() -> HashMap<u32, (String, u64)> {
    let mut threads = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return threads;
    };
    for entry in dir.flatten() {
        let Some(tid) = entry.file_name().to_str().and_then(|t| t.parse().ok()) else {
            continue;
        };
        let read = |file: &str| std::fs::read_to_string(entry.path().join(file)).ok();
        let ns = read("schedstat").and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok());
        if let (Some(name), Some(ns)) = (read("comm"), ns) {
            threads.insert(tid, (name.trim().to_owned(), ns));
        }
    }
    threads
}

fn command_map(
    module: &wasmproc::Module,
    tasks: usize,
    workers: usize,
    isolation: Isolation,
) -> f64 {
    let pool = pool_of(module, workers, isolation);
    let started = Instant::now();
    let all = (0..tasks).map(|_| Task::command().args(["exit", "0"]));
    for outcome in pool.map_tasks(all) {
        assert!(outcome.success(), "{:?}", outcome.message);
    }
    tasks as f64 / started.elapsed().as_secs_f64()
}

fn kernel_native() -> f64 {
    let started = Instant::now();
    let digest = kernel::sha256_rounds(KERNEL_ROUNDS);
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(digest.len(), 64);
    f64::from(KERNEL_ROUNDS) / seconds
}

fn kernel_wasm(module: &wasmproc::Module, timeout: Option<Duration>) -> f64 {
    let mut task = Task::call("sha256_rounds", &KERNEL_ROUNDS).expect("serializes");
    if let Some(timeout) = timeout {
        task = task.limits(Limits::default().timeout(timeout));
    }
    let started = Instant::now();
    let digest: String = module.run(&task).decode().expect("the kernel runs");
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(
        digest,
        kernel::sha256_rounds(KERNEL_ROUNDS),
        "wasm and native agree"
    );
    f64::from(KERNEL_ROUNDS) / seconds
}

fn python_peer(tasks: usize, workers: usize) -> Vec<(String, f64)> {
    let args = [tasks.to_string(), workers.to_string()];
    wasmproc_tests::python_peer("peer.py", &args)
        .iter()
        .filter_map(|v| Some((v["name"].as_str()?.to_owned(), v["tasks_per_s"].as_f64()?)))
        .collect()
}

/// The raw limit: wasmtime alone, with the engine settings wasmproc uses,
/// doing only what any embedder must per task (a store with a WASI context,
/// instantiate, call).
struct RawWasmtime {
    /// The CPU time the last run's threads spent, in nanoseconds.
    cpu_ns: std::sync::atomic::AtomicU64,
    engine: Engine,
    linker: Linker<RawState>,
    sdk: Module,
    cmd: Module,
}

struct RawState {
    wasi: WasiP1Ctx,
    input: Arc<[u8]>,
    output: Vec<u8>,
}

impl RawWasmtime {
    fn new(threads: u32) -> Self {
        let engine = Engine::new(&wasmproc::fuzzing::bench_engine_config(threads.max(1) * 2))
            .expect("engine");
        let mut linker = Linker::<RawState>::new(&engine);
        wasmtime_wasi::p1::add_to_linker_async(&mut linker, |s| &mut s.wasi).expect("wasi links");
        let m = "wasmproc_v1";
        linker
            .func_wrap(m, "input_len", |c: wasmtime::Caller<'_, RawState>| {
                c.data().input.len() as i32
            })
            .expect("links");
        linker
            .func_wrap(
                m,
                "input_read",
                |mut c: wasmtime::Caller<'_, RawState>, ptr: i32| {
                    let memory = c
                        .get_export("memory")
                        .and_then(|e| e.into_memory())
                        .expect("memory");
                    let input = Arc::clone(&c.data().input);
                    memory
                        .write(&mut c, ptr as u32 as usize, &input)
                        .expect("in bounds");
                },
            )
            .expect("links");
        linker
            .func_wrap(
                m,
                "output_write",
                |mut c: wasmtime::Caller<'_, RawState>, ptr: i32, len: i32| {
                    let memory = c
                        .get_export("memory")
                        .and_then(|e| e.into_memory())
                        .expect("memory");
                    let (start, len) = (ptr as u32 as usize, len as u32 as usize);
                    let bytes = memory.data(&c)[start..start + len].to_vec();
                    c.data_mut().output = bytes;
                },
            )
            .expect("links");
        linker
            .func_wrap(
                m,
                "fail",
                |_: wasmtime::Caller<'_, RawState>, _: i32, _: i32, _: i32| {},
            )
            .expect("links");
        let sdk = Module::from_file(&engine, guests::SDK_TASKS).expect("compiles");
        // The guest also imports the SDK's sharing functions, which the
        // typed task measured here never calls: defined as traps.
        linker
            .define_unknown_imports_as_traps(&sdk)
            .expect("the SDK's other imports stubbed");
        let cmd = Module::from_file(&engine, guests::WASI_CMD).expect("compiles");
        RawWasmtime {
            cpu_ns: std::sync::atomic::AtomicU64::new(0),
            engine,
            linker,
            sdk,
            cmd,
        }
    }

    fn typed(&self, tasks: usize, threads: usize) -> f64 {
        let pre = self.linker.instantiate_pre(&self.sdk).expect("links");
        self.spread(tasks, threads, move |engine, i| {
            let pre = pre.clone();
            async move {
                let input: Arc<[u8]> = i.to_string().into_bytes().into();
                let state = RawState {
                    wasi: WasiCtxBuilder::new().build_p1(),
                    input,
                    output: Vec::new(),
                };
                let mut store = Store::new(&engine, state);
                store.set_epoch_deadline(1 << 40);
                let instance = pre
                    .instantiate_async(&mut store)
                    .await
                    .expect("instantiates");
                let square = instance
                    .get_typed_func::<(), i32>(&mut store, "wasmproc_task:square")
                    .expect("exported");
                assert_eq!(square.call_async(&mut store, ()).await.expect("runs"), 0);
                assert_eq!(store.data().output, (i * i).to_string().into_bytes());
            }
        })
    }

    fn command(&self, tasks: usize, threads: usize) -> f64 {
        let pre = self.linker.instantiate_pre(&self.cmd).expect("links");
        self.spread(tasks, threads, move |engine, _| {
            let pre = pre.clone();
            async move {
                let mut wasi = WasiCtxBuilder::new();
                wasi.args(&["wasi-cmd.wasm", "exit", "0"]);
                let state = RawState {
                    wasi: wasi.build_p1(),
                    input: Arc::from(&[][..]),
                    output: Vec::new(),
                };
                let mut store = Store::new(&engine, state);
                store.set_epoch_deadline(1 << 40);
                let instance = pre
                    .instantiate_async(&mut store)
                    .await
                    .expect("instantiates");
                let start = instance
                    .get_typed_func::<(), ()>(&mut store, "_start")
                    .expect("exported");
                match start.call_async(&mut store, ()).await {
                    Ok(()) => {}
                    Err(error) => assert_eq!(error.downcast_ref::<I32Exit>().map(|e| e.0), Some(0)),
                }
            }
        })
    }

    /// Runs `tasks` calls of `one` over `threads` threads, each with its
    /// own single-threaded async runtime, and returns tasks per second.
    fn spread<F, Fut>(&self, tasks: usize, threads: usize, one: F) -> f64
    where
        F: Fn(Engine, u64) -> Fut + Send + Sync + Clone + 'static,
        Fut: std::future::Future<Output = ()>,
    {
        let started = Instant::now();
        let cpu = &self.cpu_ns;
        cpu.store(0, std::sync::atomic::Ordering::Relaxed);
        std::thread::scope(|scope| {
            for t in 0..threads {
                let one = one.clone();
                let engine = self.engine.clone();
                scope.spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("runtime");
                    let mine = (t..tasks).step_by(threads);
                    let before = this_thread_cpu_ns();
                    runtime.block_on(async {
                        for i in mine {
                            one(engine.clone(), i as u64).await;
                        }
                    });
                    let spent = this_thread_cpu_ns().saturating_sub(before);
                    cpu.fetch_add(spent, std::sync::atomic::Ordering::Relaxed);
                });
            }
        });
        tasks as f64 / started.elapsed().as_secs_f64()
    }

    /// The CPU time per task of the last [`spread`](Self::spread), in
    /// nanoseconds (Linux; zero elsewhere).
    fn cpu_per_task_ns(&self, tasks: usize) -> f64 {
        self.cpu_ns.load(std::sync::atomic::Ordering::Relaxed) as f64 / tasks as f64
    }
}
