//! What initializer to run before a module's tasks, and with what.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{Capabilities, DirGrant};
use crate::error::{Error, ErrorKind};
use crate::limits::Limits;

/// One call of a module's initializer (`#[wasmproc_guest::init]`): its
/// name, its argument, and what it may touch while it builds the state that
/// [`Module::initialize_with`](crate::Module::initialize_with) snapshots.
///
/// ```
/// use wasmproc::{Initializer, Limits};
/// use std::time::Duration;
///
/// let sieve = Initializer::call("sieve", &10_000_000u32)
///     .unwrap()
///     .limits(Limits::default().timeout(Duration::from_secs(30)));
/// # let _ = sieve;
/// ```
///
/// Nothing is granted by default, as for a task. An initializer gets no
/// queues, pipes or regions: a snapshot cannot hold a handle to them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Initializer {
    pub(crate) name: String,
    pub(crate) input: Arc<[u8]>,
    pub(crate) caps: Capabilities,
    /// `None`: `Limits::default()`.
    pub(crate) limits: Option<Limits>,
}

impl Initializer {
    /// Calls the initializer `name` with `arg`, serialized to JSON.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::BadInvocation`] when `arg` cannot be serialized.
    pub fn call<A: Serialize + ?Sized>(name: &str, arg: &A) -> Result<Self, Error> {
        let json = serde_json::to_vec(arg).map_err(|error| {
            Error::new(
                ErrorKind::BadInvocation,
                format!("the argument of initializer `{name}` cannot be serialized: {error}"),
            )
            .caused_by(error)
        })?;
        Ok(Initializer::call_json(name, json))
    }

    /// Calls the initializer `name` with an argument that is already JSON.
    /// Invalid JSON fails the initialization with `BadInvocation`.
    pub fn call_json(name: &str, json: impl Into<Arc<[u8]>>) -> Self {
        Initializer {
            name: name.to_owned(),
            input: json.into(),
            caps: Capabilities::default(),
            limits: None,
        }
    }

    /// Grants a host directory at a guest path (to read a word list, say).
    /// The files' contents are not part of the snapshot's cache key: when
    /// they change, change the argument (a version), or turn the cache off.
    pub fn dir(mut self, grant: DirGrant) -> Self {
        self.caps.dirs.push(grant);
        self
    }

    /// Sets an environment variable for the initializer.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.caps.env.push((key.into(), value.into()));
        self
    }

    /// Replaces what the initializer may touch.
    pub fn capabilities(mut self, caps: Capabilities) -> Self {
        self.caps = caps;
        self
    }

    /// Sets the initializer's limits (time, memory, fuel); the defaults are
    /// `Limits::default()`'s.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = Some(limits);
        self
    }

    /// The initializer's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The argument, as JSON.
    pub fn input(&self) -> &[u8] {
        &self.input
    }

    /// What it may touch.
    pub fn get_capabilities(&self) -> &Capabilities {
        &self.caps
    }

    /// Its limits, when set.
    pub fn get_limits(&self) -> Option<&Limits> {
        self.limits.as_ref()
    }
}
