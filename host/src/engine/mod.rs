//! The wasmtime engine layer: the engine settings every runtime shares, the
//! epoch ticker that enforces time limits, and the permits of the instance
//! pool. It knows nothing of stores, modules or tasks.

mod permits;
mod ticker;

use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

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

fn engine_config(settings: &EngineSettings, consume_fuel: bool) -> Config {
    let mut pool = PoolingAllocationConfig::default();
    let instances = settings.max_instances.saturating_add(HELPER_INSTANCES);
    pool.total_core_instances(instances)
        .total_memories(instances)
        .total_tables(settings.max_instances)
        .total_stacks(instances)
        .max_memory_size(usize::try_from(DEFAULT_MAX_MEMORY).unwrap_or(usize::MAX))
        // Toolchains emit large function tables for big programs.
        .table_elements(1 << 16)
        // Resetting small memories and tables with memset instead of madvise
        // avoids a TLB shootdown across all cores per task (measured: 2.3x
        // the tasks/s of a trivial task; see the benchmark).
        .table_keep_resident(64 << 10)
        .linear_memory_keep_resident(2 << 20)
        .pagemap_scan(wasmtime::Enabled::Auto);

    let mut config = Config::new();
    config
        .epoch_interruption(true)
        .consume_fuel(consume_fuel)
        .max_wasm_stack(settings.max_wasm_stack)
        // Host calls made from wasm run on the same fiber stack as the guest.
        .async_stack_size(settings.max_wasm_stack + (1 << 20))
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
        .cranelift_opt_level(wasmtime::OptLevel::Speed);
    config
}
