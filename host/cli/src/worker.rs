//! `wasmproc worker --nats URL`: a host of a cluster, until Ctrl-C or
//! SIGTERM. One line on stderr per thing worth knowing (joined, module
//! loaded, a batch retried, a task given up on, NATS trouble).

use std::time::Duration;

use wasmproc::{Isolation, ProcessOptions};
use wasmproc_cluster::{Policy, WorkerEvent, WorkerHost};

use crate::args::{IsolationArg, WorkerArgs};
use crate::usage;

pub(crate) fn worker(args: WorkerArgs) -> anyhow::Result<u8> {
    let Some(nats) = args.nats.options() else {
        return Err(usage(
            "worker needs the NATS server to pull from: add --nats URL (e.g. --nats \
             nats://127.0.0.1:4222)",
        ));
    };
    let workers = match args.jobs {
        Some(0) => return Err(usage("-j must be at least 1")),
        Some(n) => n,
        None => std::thread::available_parallelism().map_or(1, usize::from),
    };
    let mut policy = Policy::default();
    for dir in &args.allow_dirs {
        if !dir.is_dir() {
            return Err(usage(format!(
                "--allow-dir {}: not a directory on this host",
                dir.display()
            )));
        }
        policy = policy.allow_dir(dir);
    }
    for name in &args.allow_env {
        policy = policy.allow_env(name);
    }
    if let Some(timeout) = args.limits.timeout {
        policy = policy.max_timeout(timeout);
    }
    if let Some(fuel) = args.limits.fuel {
        policy = policy.max_fuel(fuel);
    }
    if let Some(bytes) = args.limits.max_memory {
        policy = policy.max_memory(bytes);
    }
    let isolation = match args.isolation.unwrap_or(IsolationArg::Thread) {
        IsolationArg::Thread => Isolation::Thread,
        IsolationArg::Process => Isolation::Process(ProcessOptions::default()),
    };
    let instances = u32::try_from(workers).unwrap_or(u32::MAX);
    let runtime = args.load.runtime(instances).build()?;
    let host = WorkerHost::builder(nats)
        .workers(workers)
        .runtime(runtime)
        .isolation(isolation)
        .policy(policy)
        .ack_wait(args.ack_wait.unwrap_or(Duration::from_secs(30)))
        .attempts(args.attempts.unwrap_or(3))
        .on_event(log)
        .build()?;
    let stopper = host.stopper();
    crate::signals::on_interrupt(
        move || {
            crate::signals::say(
                "wasmproc worker: stopping: running tasks finish (again to quit now)",
            );
            stopper.stop();
        },
        None,
        "stop the host gently",
    );
    let summary = host.run()?;
    eprintln!(
        "wasmproc worker: stopped after {} task{} in {} batch{}",
        summary.tasks,
        if summary.tasks == 1 { "" } else { "s" },
        summary.batches,
        if summary.batches == 1 { "" } else { "es" },
    );
    Ok(0)
}

fn log(event: &WorkerEvent) {
    let line = match event {
        WorkerEvent::Joined { url, workers } => {
            format!(
                "joined {url} with {workers} worker{}",
                if *workers == 1 { "" } else { "s" }
            )
        }
        WorkerEvent::ModuleLoaded {
            name,
            digest,
            bytes,
            took,
        } => format!(
            "loaded {name} (sha256 {}…, {}) in {}",
            &digest[..12.min(digest.len())],
            bytesize::ByteSize(*bytes as u64),
            humantime::format_duration(Duration::from_millis(took.as_millis() as u64))
        ),
        WorkerEvent::Split { tasks, delivery } => format!(
            "a batch of {tasks} tasks came back (delivery {delivery}): its host died or went \
             silent; its tasks go out one by one"
        ),
        WorkerEvent::GaveUp { index, deliveries } => format!(
            "task {index} was delivered {deliveries} times: reported worker_lost, not started again"
        ),
        WorkerEvent::Trouble(what) => format!("warning: {what}"),
        other => format!("{other:?}"),
    };
    eprintln!("wasmproc worker: {line}");
}
