//! For `map --nats` and `run --nats`: a user who started no worker host
//! would wait in silence, so after a while without outcomes this says so,
//! once, on stderr; and a user whose tasks a dead host holds would wait in
//! silence for the ack wait, so when a host holding tasks stops answering,
//! this says how many and when they go to another host, once per host.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use wasmproc_cluster::{Cluster, ClusterEvent};

/// How long without any outcome before asking whether hosts are there.
const QUIET_FOR: Duration = Duration::from_secs(5);

/// Watches a cluster run until dropped.
pub(crate) struct HostWatch {
    done: Arc<AtomicBool>,
    /// Outcomes so far; the run counts them here.
    pub(crate) outcomes: Arc<AtomicU64>,
}

impl HostWatch {
    pub(crate) fn start(cluster: Arc<Cluster>, url: String) -> HostWatch {
        cluster.on_event(|event| {
            if let Some(line) = describe(event) {
                eprintln!("wasmproc: {line}");
            }
        });
        let done = Arc::new(AtomicBool::new(false));
        let outcomes = Arc::new(AtomicU64::new(0));
        let watch = HostWatch {
            done: Arc::clone(&done),
            outcomes: Arc::clone(&outcomes),
        };
        let spawned = std::thread::Builder::new()
            .name("wasmproc-host-watch".into())
            .spawn(move || {
                let (mut seen, mut since) = (0, Instant::now());
                while !done.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(100));
                    let now = outcomes.load(Ordering::Relaxed);
                    if now != seen {
                        (seen, since) = (now, Instant::now());
                    } else if since.elapsed() >= QUIET_FOR {
                        if cluster.hosts().is_ok_and(|hosts| hosts.none()) {
                            eprintln!(
                                "wasmproc: waiting for worker hosts: none is pulling tasks from \
                                 {url} (start one: wasmproc worker --nats {url})"
                            );
                            return;
                        }
                        since = Instant::now();
                    }
                }
            });
        // Without the thread, only the hint is lost.
        drop(spawned);
        watch
    }
}

impl Drop for HostWatch {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
    }
}

/// A cluster event as a line for people.
fn describe(event: &ClusterEvent) -> Option<String> {
    match event {
        ClusterEvent::HostSilent {
            tasks,
            redelivery_in,
        } => {
            let seconds = redelivery_in.as_secs() + u64::from(redelivery_in.subsec_nanos() > 0);
            let when = if seconds == 0 {
                "redelivery is due now".to_owned()
            } else {
                format!("redelivery in {seconds}s")
            };
            Some(format!(
                "{tasks} task{} held by a host that stopped answering; {when}",
                if *tasks == 1 { " is" } else { "s are" }
            ))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_silent_host_is_one_line_with_the_seconds_rounded_up() {
        let line = |tasks, millis| {
            describe(&ClusterEvent::HostSilent {
                tasks,
                redelivery_in: Duration::from_millis(millis),
            })
            .unwrap()
        };
        assert_eq!(
            line(3, 9_400),
            "3 tasks are held by a host that stopped answering; redelivery in 10s"
        );
        assert_eq!(
            line(1, 0),
            "1 task is held by a host that stopped answering; redelivery is due now"
        );
    }
}
