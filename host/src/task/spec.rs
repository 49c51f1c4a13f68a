//! [`TaskSpec`]: the plain-data part of a task, the one form every wire
//! carries (a worker process's pipe, a cluster's messages).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{Capabilities, Entry, Stdin, Task};
use crate::limits::Limits;

/// What to run and with what, as plain data: a [`Task`] without the parts
/// that live in one process (a streamed stdin, output writers, shared
/// objects, a connection). Serializes with serde, so that a back end that
/// runs tasks elsewhere carries this and makes the task again there
/// (`Task::from(spec)`).
///
/// The fields are public: a spec has no invariant of its own; a task made
/// from one is checked when it runs, as any task is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TaskSpec {
    /// The export to call.
    pub entry: Entry,
    /// A typed task's argument, as JSON bytes (`null` for a command).
    #[serde(with = "serde_bytes")]
    pub input: Vec<u8>,
    /// The guest's argv after `argv[0]`.
    pub argv: Vec<String>,
    /// The bytes of the task's stdin when they are bytes
    /// ([`Stdin::Bytes`]); empty otherwise.
    #[serde(with = "serde_bytes")]
    pub stdin: Vec<u8>,
    /// The environment and directories the task asks for.
    pub capabilities: Capabilities,
    /// The task's own limits; `None`: those of whoever runs it.
    pub limits: Option<Limits>,
    /// Set when the task must fail without running (`BadInvocation`, with
    /// this message): bad input keeps its place among the tasks.
    pub rejected: Option<String>,
}

impl TaskSpec {
    /// The spec of a task that fails with `BadInvocation` and `message`
    /// without running.
    pub fn rejected(message: impl Into<String>) -> TaskSpec {
        TaskSpec::from(&Task::rejected(message))
    }
}

impl From<&Task> for TaskSpec {
    /// The task's plain-data part. A stdin that is not bytes (inherited, a
    /// reader) is left out, as are output destinations and grants: the
    /// carrier says how those travel, or refuses them.
    fn from(task: &Task) -> TaskSpec {
        TaskSpec {
            entry: task.entry.clone(),
            input: task.input.to_vec(),
            argv: task.argv.clone(),
            stdin: match &task.stdin {
                Stdin::Bytes(bytes) => bytes.to_vec(),
                _ => Vec::new(),
            },
            capabilities: task.caps.clone(),
            limits: task.limits.clone(),
            rejected: task.rejected.clone(),
        }
    }
}

impl From<TaskSpec> for Task {
    /// The task again: stdin its bytes (or empty), output captured.
    fn from(spec: TaskSpec) -> Task {
        let mut task = Task::new(spec.entry, Arc::<[u8]>::from(spec.input))
            .args(spec.argv)
            .capabilities(spec.capabilities);
        if !spec.stdin.is_empty() {
            task = task.stdin(Stdin::Bytes(spec.stdin.into()));
        }
        task.limits = spec.limits;
        task.rejected = spec.rejected;
        task
    }
}
