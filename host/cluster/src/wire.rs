//! What travels through NATS: batches of tasks one way, batches of
//! outcomes the other, encoded with postcard. Both ends are this crate, so
//! the format is versioned by the subject names (`names`), not by fields.

use serde::{Deserialize, Serialize};
use wasmproc::{Outcome, TaskSpec};

use crate::error::cluster_error;

/// A batch of tasks of one job, all for one module: one JetStream message.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct TaskBatch {
    /// The submitter's job id: outcomes go to its subject.
    pub(crate) job: String,
    /// The batch's number in its job (message ids are built from it).
    pub(crate) number: u64,
    /// The module's SHA-256, hex: its name in the module store.
    pub(crate) module: String,
    /// The module's file name, for messages.
    pub(crate) module_name: String,
    pub(crate) tasks: Vec<WireTask>,
}

/// One task as it travels: the library's portable [`TaskSpec`], the same
/// a worker process is sent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct WireTask {
    /// The task's index in its job.
    pub(crate) index: u64,
    /// What the submitter asks for; the worker host decides which
    /// capabilities it grants and caps the limits (`policy::Policy`).
    pub(crate) spec: TaskSpec,
    /// Set when the argument was too large for a message: its key in the
    /// blob store (the spec's `input` is then empty).
    pub(crate) stored_input: Option<String>,
}

/// Outcomes of (part of) one batch: one JetStream message.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct OutcomeBatch {
    pub(crate) outcomes: Vec<(u64, WireOutcome)>,
}

/// One outcome as it travels.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum WireOutcome {
    Inline(Box<Outcome>),
    /// Too large for a message: the encoded outcome is in the blob store.
    Stored(String),
}

/// A worker host's word about a task message of a job that it holds, on
/// the job's progress subject: when it takes the message, each time it
/// tells JetStream it is still at work, and when it lets go of it. Core
/// NATS, so it may be lost; the submitter only uses it to say that a host
/// stopped answering.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Progress {
    /// The host's random id.
    pub(crate) host: u64,
    /// The message's sequence in the task stream (the same on every
    /// delivery).
    pub(crate) message: u64,
    /// The indices of its tasks, as ranges `start..end`.
    pub(crate) tasks: Vec<(u64, u64)>,
    /// The ack wait in force, as the host knows it.
    pub(crate) ack_wait: std::time::Duration,
    /// False once the host let go of the message: its outcomes stored and
    /// the message acknowledged, or its tasks put back one by one.
    pub(crate) holding: bool,
}

/// Indices as ranges `start..end` (a batch's are consecutive: one range).
pub(crate) fn index_ranges(indices: impl IntoIterator<Item = u64>) -> Vec<(u64, u64)> {
    let mut ranges: Vec<(u64, u64)> = Vec::new();
    for index in indices {
        match ranges.last_mut() {
            Some((_, end)) if *end == index => *end += 1,
            _ => ranges.push((index, index + 1)),
        }
    }
    ranges
}

pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Encoding into a vector fails only for types serde cannot describe,
    // which these are not.
    postcard::to_stdvec(value).expect("wire types always encode")
}

pub(crate) fn decode<'a, T: Deserialize<'a>>(
    what: &str,
    bytes: &'a [u8],
) -> Result<T, wasmproc::Error> {
    postcard::from_bytes(bytes).map_err(|error| {
        cluster_error(format!(
            "a {what} message from NATS does not decode ({error}): is every host and submitter \
             the same wasmproc version?"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_become_ranges() {
        assert_eq!(index_ranges([3, 4, 5]), vec![(3, 6)]);
        assert_eq!(
            index_ranges([1, 2, 7, 9, 10]),
            vec![(1, 3), (7, 8), (9, 11)]
        );
        assert!(index_ranges([]).is_empty());
    }
}
