//! The wasmtime engine layer: the engine settings every runtime shares, the
//! epoch ticker that enforces time limits, and the permits of the instance
//! pool. It knows nothing of stores, modules or tasks.

mod permits;
mod ticker;

use std::sync::Arc;

use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::cache::CacheStore;
use crate::error::{Error, ErrorKind};
use crate::limits::{DEFAULT_MAX_MEMORY, DEFAULT_MAX_WASM_STACK};

pub(crate) use permits::{InstancePermit, InstancePermits};
pub(crate) use ticker::Ticker;

/// The settings that shape an engine's generated code and instance pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct EngineSettings {
    /// The wasm stack limit, in bytes.
    pub(crate) max_wasm_stack: usize,
    /// How many instances may exist at once.
    pub(crate) max_instances: u32,
}

/// Makes an engine with `settings`; `consume_fuel` makes the fuel-metering
/// one.
pub(crate) fn new_engine(settings: &EngineSettings, consume_fuel: bool) -> Result<Engine, Error> {
    Engine::new(&engine_config(settings, consume_fuel)).map_err(|error| {
        Error::new(
            ErrorKind::Setup,
            format!("cannot set up the wasm engine: {error:#}"),
        )
        .caused_by(error)
    })
}

/// Makes an engine that compiles exactly as `new_engine(settings,
/// consume_fuel)`'s does, with Cranelift's incremental compilation cache on
/// over `functions` (a module's functions session, `cache/functions.rs`:
/// its own first compile's, or a snapshot's). It only compiles: its code
/// reaches the tasks' engine through the artifact it makes (neither the
/// incremental cache nor the allocation strategy is part of an engine's
/// compatibility hash), so it reserves no instance pool. Kept off the
/// tasks' engine, so that a compile with the cache off computes no cache
/// keys (they cost the Python-function runner's compile 6% once measured;
/// its first compile with a session, side by side on 2026-12-07, showed no
/// difference beyond noise).
pub(crate) fn new_snapshot_compiler(
    settings: &EngineSettings,
    consume_fuel: bool,
    functions: Arc<dyn CacheStore>,
) -> Result<Engine, Error> {
    let mut config = engine_config(settings, consume_fuel);
    config.allocation_strategy(InstanceAllocationStrategy::OnDemand);
    config
        .enable_incremental_compilation(functions)
        .map_err(|error| {
            Error::new(
                ErrorKind::Setup,
                format!("cannot turn on the snapshot compiler's function cache: {error:#}"),
            )
            .caused_by(error)
        })?;
    Engine::new(&config).map_err(|error| {
        Error::new(
            ErrorKind::Setup,
            format!("cannot set up the snapshot compiler: {error:#}"),
        )
        .caused_by(error)
    })
}

/// Benchmark support, not part of the API: the engine settings of every
/// runtime, which the benchmark's raw-wasmtime
/// baseline uses them too, so that the two compare like with like.
#[doc(hidden)]
pub fn bench_engine_config(max_instances: u32) -> Config {
    let settings = EngineSettings {
        max_wasm_stack: DEFAULT_MAX_WASM_STACK,
        max_instances,
    };
    engine_config(&settings, false)
}

/// Places in the instance pool past `max_instances`, which no task takes:
/// one for the small helper instance that checks an initializer's
/// instance before its snapshot (one at a time).
pub(crate) const HELPER_INSTANCES: u32 = 1;

/// The most linear memories a module may define. Multi-memory modules in
/// the wild use two or three; each also costs a `VMMemoryDefinition` in
/// every instance's VMContext, which is small.
const MAX_MEMORIES_PER_MODULE: u32 = 8;

/// The most tables a module may define (function references and GC make
/// modules with several tables common).
const MAX_TABLES_PER_MODULE: u32 = 8;

/// The most elements of one table: a toolchain puts every address-taken
/// function in the function table, so this is above the runtime's own cap
/// on a module's functions (`DEFAULT_MAX_MODULE_FUNCTIONS`, 100,000), with
/// room for the duplicates some toolchains emit. A table slot reserves
/// this many pointers (1 MiB) of address space whether used or not (and
/// commits it on Windows): the whole table pool is
/// `total_tables` MiB, 73 MiB by default.
const MAX_TABLE_ELEMENTS: usize = 1 << 17;

/// The most bytes an instance's own runtime data (its VMContext) may take.
/// It grows with the module: 32 bytes per function that escapes (exported,
/// in a table, or referenced), so 3.2 MB for a module of 100,000 such
/// functions (measured: 1,920,320 bytes for 60,000), a few bytes per
/// global, memory and table. wasmtime allocates each instance's actual
/// size, not this limit, so the headroom costs nothing until a module
/// needs it; at worst `total_core_instances` times this much (1 GiB by
/// default), all of it the modules' own.
const MAX_CORE_INSTANCE_SIZE: usize = 16 << 20;

/// The most core instances one component may hold. A `wasm32-wasip2`
/// Rust command holds three (its own module, and the two small modules
/// that tie its imports together: a shim whose table the other fills; two
/// tables and one memory in all); components of other toolchains (with
/// the preview-1 adapter, say) nest more: componentize-py's Python
/// components hold 14 (CPython's shared libraries, libc, the adapter and
/// their shims).
const MAX_CORE_INSTANCES_PER_COMPONENT: u32 = 32;

/// Core instance slots per instance place: a component task takes several
/// (`MAX_CORE_INSTANCES_PER_COMPONENT` at most), a module task one. A slot
/// costs only its index until used (instances are allocated at their
/// actual size), so the pool counts four per place, enough for every
/// place to run a `wasm32-wasip2` command at once; a component of more
/// core instances waits for slots when the pool is full (`run::instantiate`).
/// Tables are not counted twice over (each slot reserves 1 MiB, committed
/// on Windows): past `(places + 8) / 2` component tasks at once, the rest
/// wait for a table slot the same way.
const CORE_INSTANCES_PER_PLACE: u32 = 4;

fn engine_config(settings: &EngineSettings, consume_fuel: bool) -> Config {
    let mut pool = PoolingAllocationConfig::default();
    let instances = settings.max_instances.saturating_add(HELPER_INSTANCES);
    // Slots of linear memory: each reserves `max_memory_size` (4 GiB) plus
    // a guard region of address space, nothing more until used. Every
    // instance may hold its memory and a GC heap (a module that uses GC
    // types or exceptions gets one, itself a linear memory from this pool)
    // at once, and one module of `MAX_MEMORIES_PER_MODULE` memories on top:
    // 2 x 65 + 8 = 138 slots, about 560 GiB of the 128 TiB of address
    // space by default. Modules of several memories beyond that wait for a
    // slot rather than fail (see `run::instantiate`).
    let memory_slots = instances
        .saturating_mul(2)
        .saturating_add(MAX_MEMORIES_PER_MODULE);
    // One component of the most core instances always fits beside the
    // others' slots: a task waits for slots others hold (see
    // `run::instantiate`), never for more than the pool has.
    let core_instance_slots = instances
        .saturating_mul(CORE_INSTANCES_PER_PLACE)
        .saturating_add(MAX_CORE_INSTANCES_PER_COMPONENT);
    pool.total_core_instances(core_instance_slots)
        .max_core_instance_size(MAX_CORE_INSTANCE_SIZE)
        // A component's own runtime data and all of its core instances'
        // count against this one size: the same room as one large module.
        .total_component_instances(instances)
        .max_component_instance_size(MAX_CORE_INSTANCE_SIZE)
        .max_core_instances_per_component(MAX_CORE_INSTANCES_PER_COMPONENT)
        .max_memories_per_component(MAX_MEMORIES_PER_MODULE)
        .max_tables_per_component(MAX_TABLES_PER_MODULE)
        .total_memories(memory_slots)
        .max_memories_per_module(MAX_MEMORIES_PER_MODULE)
        .total_gc_heaps(instances)
        .total_tables(instances.saturating_add(MAX_TABLES_PER_MODULE))
        .max_tables_per_module(MAX_TABLES_PER_MODULE)
        .total_stacks(instances)
        .max_memory_size(usize::try_from(DEFAULT_MAX_MEMORY).unwrap_or(usize::MAX))
        .table_elements(MAX_TABLE_ELEMENTS)
        // Resetting memories and tables by copying back only the pages a
        // task wrote (found with Linux's `PAGEMAP_SCAN`), up to these many
        // bytes, instead of `madvise` avoids a TLB shootdown across all
        // cores and the page faults of the next task. Measured (CPU per
        // tiny typed task, one thread worker, 2-core machine,
        // 2026-12-06): 11 us with these values; no
        // `PAGEMAP_SCAN` 25 us, memory keep-resident 0 25 us (4 faults
        // per task), table keep-resident 0 12.4 us. The memory figure is a
        // budget, not a cost: a slot keeps at most the pages its last task
        // wrote, at most 2 MiB, while it waits for the next: 2 MiB times
        // the slots in use or idle-warm, which are the tasks at once plus
        // at most 100 idle ones (`max_unused_warm_slots`; slots of
        // different modules), never more than `total_memories` (138 by
        // default: 276 MiB at the very worst; one module's tasks reuse
        // their own slots, so a pool of N workers keeps N x 2 MiB). The
        // tables' 64 KiB per slot likewise. Larger values do not help a large
        // image such as CPython's (the runner of Python functions): wasmtime
        // 48 stops the scan after 32 runs of written pages and `madvise`s
        // the rest, whatever the budget, so such an instance still takes
        // ~300 page faults per call (measured).
        .table_keep_resident(64 << 10)
        .linear_memory_keep_resident(2 << 20)
        .pagemap_scan(wasmtime::Enabled::Auto);
    // Left at wasmtime's defaults, on measurements (same run as above):
    // `max_unused_warm_slots` 0 (reuse the least recently used slot
    // first) costs 13.4 us per tiny task against 11; a `decommit_batch_size`
    // of 16 gains nothing (11.9 us) and holds up to 16 decommits per core.
    // `async_stack_keep_resident` does nothing while stacks are not zeroed
    // (`async_stack_zeroing`, off). Memory protection keys need a CPU with
    // PKU and wasmtime's `memory-protection-keys` feature (this machine's
    // EPYC has no PKU; the feature is off), and only pack more slots into
    // the address space: they make no instance cheaper.

    let mut config = Config::new();
    config
        .epoch_interruption(true)
        .consume_fuel(consume_fuel)
        .max_wasm_stack(settings.max_wasm_stack)
        // Host calls made from wasm run on the same fiber stack as the guest.
        .async_stack_size(settings.max_wasm_stack + (1 << 20))
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
        // wasmtime's default, named because it halves the CPU of a fresh
        // instance: eager tables cost 21-23 us per tiny typed task against
        // 11 us (measured, as above). It does not remove the `ref.func`
        // calls of a dynamically linked component such as CPython's: its
        // element segments sit at `__table_base` offsets in an imported
        // table, which wasmtime fills at every instantiation either way.
        .table_lazy_init(true)
        .cranelift_opt_level(wasmtime::OptLevel::Speed);
    enable_proposals(&mut config);
    config
}

/// Turns on every proposal wasmtime 48 implements that the pooling
/// allocator supports. Most are wasmtime's defaults (Wasm 3.0); they are
/// named here so that what wasmproc runs does not change silently with
/// wasmtime's defaults.
///
/// On: exception handling (`try_table`, `throw`, `throw_ref`, `exnref`),
/// GC types and function references (both need wasmtime's `gc` feature,
/// built with its default DRC collector), tail calls, SIMD and relaxed
/// SIMD (relaxed results are the host CPU's, as wasmtime's default),
/// multi-memory, extended constant expressions, wide arithmetic, and
/// wasmtime's defaults not named here (memory64, bulk memory, reference
/// types, multi-value).
///
/// Off: threads and shared memories (the pooling allocator cannot reuse a
/// memory that other threads may still hold, and wasmproc's tasks are one
/// thread each; a module with a shared memory is refused at load:
/// "threads must be enabled for shared memories"); stack switching
/// (experimental, and x86-64 Unix only); the legacy exceptions (the
/// pre-standard `try`/`catch` form that wasmtime keeps only for its test
/// suite); custom page sizes and branch hinting (not on by default in
/// wasmtime).
///
/// Components may use the component model's async ABI, which WASI 0.3
/// commands are built on.
fn enable_proposals(config: &mut Config) {
    config
        .wasm_exceptions(true)
        .wasm_gc(true)
        .wasm_function_references(true)
        .wasm_tail_call(true)
        .wasm_simd(true)
        .wasm_relaxed_simd(true)
        .wasm_multi_memory(true)
        .wasm_extended_const(true)
        .wasm_wide_arithmetic(true)
        // WASI 0.3 (async components: `async func`, `stream`, `future`).
        .wasm_component_model_async(true);
}
