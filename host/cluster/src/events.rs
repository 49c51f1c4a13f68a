//! What a cluster job noticed that whoever waits on it may want to know
//! ([`ClusterEvent`]), and where jobs send it ([`Listener`]).

use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Something a cluster job noticed that whoever waits on it may want to
/// know ([`Cluster::on_event`]).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ClusterEvent {
    /// A worker host that holds tasks of a job stopped answering: it has
    /// said nothing about them for two of the intervals at which a working
    /// host speaks up (two thirds of the ack wait). It probably died;
    /// JetStream gives its tasks to another host when the ack wait runs
    /// out. Said once per host that stops.
    HostSilent {
        /// The job's tasks it holds without an outcome.
        tasks: u64,
        /// When the last of them goes back to the queue, from now.
        redelivery_in: Duration,
    },
}

type OnEvent = Arc<dyn Fn(&ClusterEvent) + Send + Sync>;

/// Where a cluster's jobs send their [`ClusterEvent`]s.
#[derive(Clone, Default)]
pub(crate) struct Listener(Arc<Mutex<Option<OnEvent>>>);

impl Listener {
    /// Replaces the function events go to.
    pub(crate) fn set(&self, f: OnEvent) {
        *crate::poison::lock(&self.0) = Some(f);
    }

    pub(crate) fn emit(&self, event: &ClusterEvent) {
        let listener = crate::poison::lock(&self.0).clone();
        if let Some(listener) = listener {
            listener(event);
        }
    }
}
