//! For `map --nats` and `run --nats`: a user who started no worker host
//! would wait in silence, so after a while without outcomes this says so,
//! once, on stderr; and a user whose tasks a dead host holds would wait in
//! silence for the ack wait, so when a host holding tasks stops answering,
//! this says how many and when they go to another host, once per host.

use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{RecvTimeoutError, Sender};
use wasmproc_cluster::{Cluster, ClusterEvent};

/// How long without any outcome before asking whether hosts are there.
const QUIET_FOR: Duration = Duration::from_secs(5);

/// Watches a cluster run until dropped.
///
/// Nothing polls: the silent-host lines come from the cluster's events, and
/// the no-host hint from a thread that waits for the run's next outcome
/// with a timeout of [`QUIET_FOR`], asking the cluster for its hosts only
/// when the timeout passes. Dropping the watch ends that wait at once.
pub(crate) struct HostWatch {
    /// One message per outcome (dropped when one already waits: the thread
    /// only needs to know that something came). Dropped with the watch,
    /// which wakes the thread to end.
    outcomes: Sender<()>,
}

impl HostWatch {
    pub(crate) fn start(cluster: Arc<Cluster>, url: String) -> HostWatch {
        cluster.on_event(|event| {
            if let Some(line) = describe(event) {
                say!("wasmproc: {line}");
            }
        });
        let (outcomes, came) = crossbeam_channel::bounded(1);
        let spawned = std::thread::Builder::new()
            .name("wasmproc-host-watch".into())
            .spawn(move || {
                loop {
                    match came.recv_timeout(QUIET_FOR) {
                        Ok(()) => {}
                        Err(RecvTimeoutError::Disconnected) => return,
                        Err(RecvTimeoutError::Timeout) => {
                            if cluster.hosts().is_ok_and(|hosts| hosts.none()) {
                                say!(
                                    "wasmproc: waiting for worker hosts: none is pulling tasks \
                                     from {url} (start one: wasmproc worker --nats {url})"
                                );
                                return;
                            }
                        }
                    }
                }
            });
        // Without the thread, only the hint is lost.
        drop(spawned);
        HostWatch { outcomes }
    }

    /// Notes that the run got an outcome: hosts are there.
    pub(crate) fn outcome(&self) {
        let _ = self.outcomes.try_send(());
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
                "{} held by a host that stopped answering; {when}",
                crate::words::count(*tasks, "task is", "tasks are")
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
