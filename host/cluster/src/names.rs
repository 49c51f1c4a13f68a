//! The names wasmproc uses in NATS: streams, subjects, buckets, the
//! workers' consumer. The `v2` in them versions the wire format (`wire`).

use std::time::Duration;

/// The work queue: every task batch of every job, until a worker host
/// acknowledges it.
pub(crate) const TASK_STREAM: &str = "WASMPROC_V2_TASKS";
/// Outcome batches, one subject per job, kept until the submitter has
/// read them (or `OUTCOME_MAX_AGE`).
pub(crate) const OUTCOME_STREAM: &str = "WASMPROC_V2_OUTCOMES";
/// The consumer all worker hosts pull from (a work queue has one).
pub(crate) const WORKERS: &str = "wasmproc-v2-workers";
/// Modules, named by their SHA-256.
pub(crate) const MODULE_BUCKET: &str = "wasmproc-v2-modules";
/// Inputs and outcomes too large for a message.
pub(crate) const BLOB_BUCKET: &str = "wasmproc-v2-blobs";

/// How long a worker host may stay silent about a batch it holds before
/// JetStream gives the batch to another, unless a host asks for another.
pub(crate) const DEFAULT_ACK_WAIT: Duration = Duration::from_secs(30);
/// How many times a batch is delivered at most, unless a host asks for
/// another: 3 starts, and one more delivery that reports `WorkerLost`.
pub(crate) const DEFAULT_DELIVERIES: i64 = 4;

/// How long outcomes and blobs of a submitter that went away are kept.
pub(crate) const OUTCOME_MAX_AGE: Duration = Duration::from_secs(24 * 3600);
/// How long JetStream remembers message ids to drop duplicates.
pub(crate) const DUPLICATE_WINDOW: Duration = Duration::from_secs(10 * 60);

pub(crate) fn task_subject(job: &str) -> String {
    format!("wasmproc.v2.tasks.{job}")
}

pub(crate) const TASK_SUBJECTS: &str = "wasmproc.v2.tasks.>";

pub(crate) fn outcome_subject(job: &str) -> String {
    format!("wasmproc.v2.outcomes.{job}")
}

/// Where worker hosts say which task messages of a job they hold, while
/// they hold them (core NATS: not stored), so that its submitter can tell
/// a host that stopped answering.
pub(crate) fn progress_subject(job: &str) -> String {
    format!("wasmproc.v2.progress.{job}")
}

pub(crate) const OUTCOME_SUBJECTS: &str = "wasmproc.v2.outcomes.>";

/// A fresh job id: 128 random bits, hex (a subject token).
pub(crate) fn new_job_id() -> String {
    let mut bytes = [0u8; 16];
    // The OS's random source failing is not something to run on.
    getrandom::fill(&mut bytes).expect("the OS gives random bytes");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A fresh worker host id: 64 random bits (hosts name themselves in their
/// progress notices).
pub(crate) fn new_host_id() -> u64 {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("the OS gives random bytes");
    u64::from_le_bytes(bytes)
}
