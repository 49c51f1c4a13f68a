//! Resolving: which export an [`Entry`] or an initializer calls, with
//! messages that name what the module offers instead.

use super::Module;
use super::describe::Signature;
use crate::error::{Error, ErrorKind};
use crate::task::Entry;

/// An [`Entry`] resolved against a module: the export a task calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resolved<'m> {
    /// The WASI command entry, `_start`.
    Command,
    /// A typed task.
    Task {
        /// The task's name.
        name: &'m str,
        /// The export that runs it.
        export: &'m str,
        /// Whether the module's `_initialize` must run first (a reactor).
        initialize: bool,
    },
}

impl Resolved<'_> {
    /// The entry in its public form.
    pub(crate) fn to_entry(self) -> Entry {
        match self {
            Resolved::Command => Entry::Command,
            Resolved::Task { name, .. } => Entry::Task(name.to_owned()),
        }
    }
}

impl Module {
    /// Which entry `entry` runs: [`Entry::Command`] or [`Entry::Task`]
    /// with a name the module exports (for [`Entry::Auto`]: `_start`, else
    /// the only task).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::CannotRun`], naming what the module offers instead, when
    /// there is no such entry or it has the wrong signature.
    pub fn resolve(&self, entry: &Entry) -> Result<Entry, Error> {
        self.resolve_export(entry).map(Resolved::to_entry)
    }

    /// As [`resolve`](Module::resolve), with the export to call.
    pub(crate) fn resolve_export(&self, entry: &Entry) -> Result<Resolved<'_>, Error> {
        let info = &self.inner.info;
        let name = self.name();
        self.check_memory()?;
        let tasks = &info.tasks;
        let task_list = || {
            if tasks.names.is_empty() {
                "it exports no wasmproc tasks".to_owned()
            } else {
                format!("its tasks: {}", tasks.names.join(", "))
            }
        };
        let cannot_run = |message: String| Err(Error::new(ErrorKind::CannotRun, message));
        let task = |index: usize| Resolved::Task {
            name: &tasks.names[index],
            export: &tasks.exports[index],
            initialize: info.has_initialize,
        };
        match entry {
            Entry::Command => match &info.start {
                Signature::Right => Ok(Resolved::Command),
                Signature::Missing => cannot_run(format!(
                    "`{name}` is not a WASI command: it has no `_start` export ({}); pick a task instead",
                    task_list()
                )),
                Signature::Wrong(ty) => cannot_run(format!(
                    "`{name}` exports `_start` as {ty}; a command's `_start` is func () -> ()"
                )),
            },
            Entry::Task(wanted) => {
                if let Some(index) = tasks.names.iter().position(|t| t == wanted) {
                    Ok(task(index))
                } else if let Some(ty) = tasks.malformed_type(wanted) {
                    cannot_run(format!(
                        "`{name}` exports task `{wanted}` as {ty}; a task export is func () -> (i32): \
                         build it with the wasmproc-guest SDK of this version"
                    ))
                } else if info.initializers.export_of(wanted).is_some() {
                    cannot_run(format!(
                        "`{wanted}` is an initializer of `{name}`, not a task: run it with \
                         `--init {wanted}` (Module::initialize); {}",
                        task_list()
                    ))
                } else {
                    cannot_run(format!("`{name}` has no task `{wanted}`; {}", task_list()))
                }
            }
            Entry::Auto => match (&info.start, tasks.names.len()) {
                (Signature::Right, _) => Ok(Resolved::Command),
                (_, 1) => Ok(task(0)),
                (Signature::Wrong(ty), 0) => cannot_run(format!(
                    "`{name}` exports `_start` as {ty}; a command's `_start` is func () -> ()"
                )),
                (_, 0) => cannot_run(format!(
                    "`{name}` exports neither `_start` nor any wasmproc task: nothing to run"
                )),
                (_, _) => cannot_run(format!(
                    "`{name}` exports several tasks ({}): choose one (`--task NAME`)",
                    tasks.names.join(", ")
                )),
            },
        }
    }

    /// Host functions pass their data through the memory named `memory`:
    /// a module that imports them must export it.
    fn check_memory(&self) -> Result<(), Error> {
        let info = &self.inner.info;
        if info.needs_memory && !info.exports_memory {
            return Err(Error::new(
                ErrorKind::CannotRun,
                format!(
                    "`{}` imports host functions but exports no memory named `memory`, \
                     through which they pass their data: build it for wasm32-wasip1, whose \
                     modules export it",
                    self.name()
                ),
            ));
        }
        Ok(())
    }

    /// The initializer named `name`, as the export to call.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::CannotRun`], naming the initializers there are, when
    /// there is no such initializer or its export has the wrong type.
    pub(crate) fn resolve_initializer(&self, wanted: &str) -> Result<Resolved<'_>, Error> {
        let info = &self.inner.info;
        let name = self.name();
        self.check_memory()?;
        let initializers = &info.initializers;
        if let Some(index) = initializers.names.iter().position(|n| n == wanted) {
            return Ok(Resolved::Task {
                name: &initializers.names[index],
                export: &initializers.exports[index],
                initialize: info.has_initialize,
            });
        }
        let message = if let Some(ty) = initializers.malformed_type(wanted) {
            format!(
                "`{name}` exports initializer `{wanted}` as {ty}; an initializer export is \
                 func () -> (i32): build it with the wasmproc-guest SDK of this version"
            )
        } else if initializers.names.is_empty() {
            let snapshot = match &self.inner.origin {
                Some(origin) => format!(
                    " (it is a snapshot: its initializer `{}` has run)",
                    origin.init.name
                ),
                None => String::new(),
            };
            format!(
                "`{name}` has no initializer `{wanted}`: it exports none{snapshot}; \
                 an initializer is a function marked #[wasmproc_guest::init]"
            )
        } else {
            format!(
                "`{name}` has no initializer `{wanted}`; its initializers: {}",
                initializers.names.join(", ")
            )
        };
        Err(Error::new(ErrorKind::CannotRun, message))
    }
}
