//! `wasmproc worker --nats URL`: a host of a cluster, until Ctrl-C or
//! SIGTERM. One line on stderr per thing worth knowing (joined, the ack
//! wait or attempts changed for every host, module loaded, a batch
//! retried, a task given up on, NATS trouble).

use std::time::Duration;

use wasmproc::{Isolation, ProcessOptions};
use wasmproc_cluster::{MIN_ACK_WAIT, Policy, WorkerEvent, WorkerHost};

use crate::flags::{IsolationArg, WorkerArgs};
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
    let mut host = WorkerHost::builder(nats)
        .workers(workers)
        .runtime(runtime)
        .isolation(isolation)
        .policy(policy)
        .on_event(log);
    // As every other zero limit, a value the cluster would not keep is
    // refused, not changed behind the user's back.
    if args.attempts == Some(0) {
        return Err(crate::usage(
            "--attempts must be at least 1: how many times a task may be started",
        ));
    }
    if let Some(wait) = args.ack_wait
        && wait < MIN_ACK_WAIT
    {
        return Err(crate::usage(format!(
            "--ack-wait must be at least {}: a host acknowledges a batch's progress that often",
            duration(MIN_ACK_WAIT)
        )));
    }
    // Only a value given changes the cluster's: a host started without it
    // takes the one in force.
    if let Some(wait) = args.ack_wait {
        host = host.ack_wait(wait);
    }
    if let Some(attempts) = args.attempts {
        host = host.attempts(attempts);
    }
    let host = host.build()?;
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
    say!(
        "{}",
        summary_line(summary.tasks as u64, summary.batches as u64)
    );
    Ok(0)
}

/// The line a host ends with.
fn summary_line(tasks: u64, batches: u64) -> String {
    format!(
        "wasmproc worker: stopped after {} in {}",
        crate::words::count(tasks, "task", "tasks"),
        crate::words::count(batches, "batch", "batches"),
    )
}

fn log(event: &WorkerEvent) {
    let line = match event {
        WorkerEvent::Joined {
            url,
            workers,
            ack_wait,
            attempts,
        } => {
            format!(
                "joined {url} with {workers} worker{} (ack wait {}, {})",
                if *workers == 1 { "" } else { "s" },
                duration(*ack_wait),
                attempts_text(*attempts),
            )
        }
        WorkerEvent::AckWaitChanged { from, to, here } => {
            if *here {
                format!(
                    "ack wait changed from {} to {} for every host",
                    duration(*from),
                    duration(*to)
                )
            } else {
                format!(
                    "ack wait changed from {} to {} by another host; this one follows",
                    duration(*from),
                    duration(*to)
                )
            }
        }
        WorkerEvent::AttemptsChanged { from, to, here } => format!(
            "attempts changed from {} to {}{}",
            attempts_number(*from),
            attempts_number(*to),
            if *here {
                " for every host"
            } else {
                " by another host; this one follows"
            }
        ),
        WorkerEvent::ChangeRefused {
            ack_wait,
            attempts,
            ack_wait_in_force,
            attempts_in_force,
            why,
        } => {
            let mut asked = Vec::new();
            if let Some(wait) = ack_wait {
                asked.push(format!("--ack-wait {}", duration(*wait)));
            }
            if let Some(attempts) = attempts {
                asked.push(format!("--attempts {attempts}"));
            }
            format!(
                "warning: cannot set {} for every host ({why}): ack wait {} and {} stay in \
                 force, for this host too",
                asked.join(" and "),
                duration(*ack_wait_in_force),
                attempts_text(*attempts_in_force),
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
    say!("wasmproc worker: {line}");
}

/// `30s`, `1m 30s`, `500ms`.
fn duration(duration: Duration) -> String {
    humantime::format_duration(Duration::from_millis(duration.as_millis() as u64)).to_string()
}

/// `3 attempts`, `1 attempt`, `unlimited attempts`.
fn attempts_text(attempts: u32) -> String {
    match attempts {
        1 => "1 attempt".into(),
        n => format!("{} attempts", attempts_number(n)),
    }
}

fn attempts_number(attempts: u32) -> String {
    if attempts == u32::MAX {
        "unlimited".into()
    } else {
        attempts.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::summary_line;

    #[test]
    fn the_summary_line_in_every_form() {
        assert_eq!(
            summary_line(1, 1),
            "wasmproc worker: stopped after 1 task in 1 batch"
        );
        assert_eq!(
            summary_line(12_345, 0),
            "wasmproc worker: stopped after 12,345 tasks in 0 batches"
        );
    }
}
