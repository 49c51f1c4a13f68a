//! For `map --nats` and `run --nats`: a user who started no worker host
//! would wait in silence, so after a while without outcomes this says so,
//! once, on stderr.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use wasmproc_cluster::Cluster;

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
