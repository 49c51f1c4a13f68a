//! Resolving: which export an [`Entry`] or an initializer calls, with
//! messages that name what the module offers instead.

use super::Module;
use super::describe::{Signature, describe_extern};
use super::invoke::Returns;
use crate::error::{Error, ErrorKind};
use crate::task::Entry;

/// The initializer name (`--init wizer`) that runs a module's
/// [`WIZER_EXPORT`]: the convention of modules made ready for wizer.
pub(crate) const WIZER_INITIALIZER: &str = "wizer";

/// The export wizer-ready modules initialize with, `() -> ()`.
pub(crate) const WIZER_EXPORT: &str = "wizer.initialize";

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
    /// An exported WIT function of a component, run as a typed task
    /// (`--task NAME`).
    ComponentTask {
        /// The function, as `Module::component_functions` names it.
        name: &'m str,
    },
    /// A component's initializer: an SDK component's (its dispatcher's
    /// `run-init`), or another component's exported WIT function.
    ComponentInit {
        /// The initializer, or the function as
        /// `Module::component_functions` names it.
        name: &'m str,
    },
    /// Any exported function, called as `wasmtime run --invoke` does.
    Export {
        /// The export's name.
        export: &'m str,
        /// Whether the module's `_initialize` must run first (a reactor).
        initialize: bool,
        /// What its results become.
        returns: Returns,
    },
}

impl Resolved<'_> {
    /// The entry in its public form.
    pub(crate) fn to_entry(self) -> Entry {
        match self {
            Resolved::Command => Entry::Command,
            Resolved::Task { name, .. }
            | Resolved::ComponentTask { name }
            | Resolved::ComponentInit { name } => Entry::Task(name.to_owned()),
            Resolved::Export { export, .. } => Entry::Export(export.to_owned()),
        }
    }
}

impl Module {
    /// Which entry `entry` runs: [`Entry::Command`], [`Entry::Task`]
    /// with a name the module exports (for [`Entry::Auto`]: `_start`, else
    /// the only task), or [`Entry::Export`] of a function that can be
    /// invoked.
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
        if self.inner.component.is_some() {
            return self.resolve_component(entry);
        }
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
                Signature::Missing if tasks.names.is_empty() => cannot_run(self.suggest_invoke()),
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
                (_, 0) => cannot_run(self.suggest_invoke()),
                (_, _) => cannot_run(format!(
                    "`{name}` exports several tasks ({}): choose one (`--task NAME`)",
                    tasks.names.join(", ")
                )),
            },
            Entry::Export(wanted) => self.resolve_invoke(wanted),
        }
    }

    /// What `entry` runs in a component: `wasi:cli/run` for a command, an
    /// exported WIT function for a task; `--invoke` is for core modules.
    fn resolve_component(&self, entry: &Entry) -> Result<Resolved<'_>, Error> {
        if self.is_sdk_component() {
            return self.resolve_sdk_component(entry);
        }
        let name = self.name();
        let functions = self.component_functions();
        let function_list = || {
            if functions.is_empty() {
                "it exports no other functions".to_owned()
            } else {
                format!("its functions: {}", functions.join(", "))
            }
        };
        let cannot_run = |message: String| Err(Error::new(ErrorKind::CannotRun, message));
        match entry {
            Entry::Command | Entry::Auto if self.is_command() => Ok(Resolved::Command),
            Entry::Command | Entry::Auto => cannot_run(format!(
                "`{name}` is a component but not a WASI command: it exports no \
                 `wasi:cli/run`; run one of its functions with `--task NAME`; {}",
                function_list()
            )),
            Entry::Task(wanted) => match crate::typed::find(functions, wanted) {
                Some(function) => Ok(Resolved::ComponentTask { name: function }),
                None => cannot_run(format!(
                    "`{name}` exports no function `{wanted}`; {}",
                    function_list()
                )),
            },
            Entry::Export(wanted) => cannot_run(format!(
                "`{name}` is a component: `--invoke {wanted}` (Task::invoke) calls a core \
                 module's exported function; run a component's WIT function with `--task \
                 NAME`, its command with no entry flag; {}",
                function_list()
            )),
        }
    }

    /// A component's exported functions other than `wasi:cli/run`'s, as
    /// `--task` names them (`interface#function` inside an interface);
    /// empty for a core module.
    pub fn component_functions(&self) -> &[String] {
        self.inner
            .component
            .as_ref()
            .map_or(&[], |component| component.functions.as_slice())
    }

    /// A component's initializer `wanted`: an SDK component's initializer
    /// (`#[init]`, run by its dispatcher), or any other component's
    /// exported WIT function, called with the initializer's argument as a
    /// typed task is.
    fn resolve_component_initializer(&self, wanted: &str) -> Result<Resolved<'_>, Error> {
        let name = self.name();
        let (found, offered) = if self.is_sdk_component() {
            let initializers = self.initializers();
            (
                initializers.iter().find(|init| *init == wanted),
                if initializers.is_empty() {
                    "it records none: an initializer is a function marked \
                     #[wasmproc_guest::init]"
                        .to_owned()
                } else {
                    format!("its initializers: {}", initializers.join(", "))
                },
            )
        } else {
            let functions = self.component_functions();
            (
                crate::typed::find(functions, wanted),
                if functions.is_empty() {
                    "it exports no functions".to_owned()
                } else {
                    format!(
                        "any of its exported functions initializes: {}",
                        functions.join(", ")
                    )
                },
            )
        };
        match found {
            Some(init) => Ok(Resolved::ComponentInit { name: init }),
            None => Err(Error::new(
                ErrorKind::CannotRun,
                format!("`{name}` has no initializer `{wanted}`; {offered}"),
            )),
        }
    }

    /// The exported function `wanted`, for [`Entry::Export`].
    fn resolve_invoke(&self, wanted: &str) -> Result<Resolved<'_>, Error> {
        let name = self.name();
        let cannot_run = |message: String| Err(Error::new(ErrorKind::CannotRun, message));
        let Some(export) = self
            .inner
            .plain
            .core()
            .and_then(|module| module.exports().find(|e| e.name() == wanted))
        else {
            let task = if self.tasks().iter().any(|t| t == wanted) {
                format!(" (`{wanted}` is an SDK task: run it with `--task {wanted}`)")
            } else {
                String::new()
            };
            return cannot_run(format!(
                "`{name}` exports no function `{wanted}`{task}; {}",
                self.function_list()
            ));
        };
        let ty = export.ty();
        let Some(func) = ty.func() else {
            return cannot_run(format!(
                "`{name}` exports `{wanted}` as a {}, not a function; {}",
                describe_extern(&ty),
                self.function_list()
            ));
        };
        match Returns::of(func) {
            Ok(returns) => Ok(Resolved::Export {
                export: export.name(),
                initialize: self.inner.info.has_initialize && wanted != "_initialize",
                returns,
            }),
            Err(why) => cannot_run(format!(
                "`{name}` exports `{wanted}` as {}: {why}",
                describe_extern(&ty)
            )),
        }
    }

    /// The error of a module with neither `_start` nor SDK tasks (a
    /// reactor, or a library of functions): what `--invoke` could call.
    fn suggest_invoke(&self) -> String {
        let name = self.name();
        let what = if self.inner.info.has_initialize {
            "is a reactor (it exports `_initialize`, and no `_start` or wasmproc task)"
        } else {
            "exports neither `_start` nor any wasmproc task"
        };
        if self.functions().is_empty() {
            return format!("`{name}` {what}: nothing to run");
        }
        format!(
            "`{name}` {what}: nothing to run unless you call one of its functions with \
             `--invoke NAME` (Task::invoke); {}",
            self.function_list()
        )
    }

    /// The functions `--invoke` could call, with their signatures, in words.
    fn function_list(&self) -> String {
        let functions = self.functions();
        if functions.is_empty() {
            return "it exports no other functions".to_owned();
        }
        let listed: Vec<String> = functions
            .iter()
            .map(|f| format!("{} {}", f.name, f.ty.trim_start_matches("func ")))
            .collect();
        format!("its functions: {}", listed.join(", "))
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

    /// The initializer named `name`, as the export to call: an SDK
    /// initializer, or for `wizer` the module's `wizer.initialize` export.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::CannotRun`], naming the initializers there are, when
    /// there is no such initializer or its export has the wrong type.
    pub(crate) fn resolve_initializer(&self, wanted: &str) -> Result<Resolved<'_>, Error> {
        let info = &self.inner.info;
        let name = self.name();
        if self.is_component() {
            return self.resolve_component_initializer(wanted);
        }
        self.check_memory()?;
        let initializers = &info.initializers;
        if let Some(index) = initializers.names.iter().position(|n| n == wanted) {
            return Ok(Resolved::Task {
                name: &initializers.names[index],
                export: &initializers.exports[index],
                initialize: info.has_initialize,
            });
        }
        if wanted == WIZER_INITIALIZER
            && let Some(ty) = self.exported_func(WIZER_EXPORT)
        {
            return if Returns::of(&ty) == Ok(Returns::Nothing) {
                Ok(Resolved::Export {
                    export: WIZER_EXPORT,
                    initialize: info.has_initialize,
                    returns: Returns::Nothing,
                })
            } else {
                Err(Error::new(
                    ErrorKind::CannotRun,
                    format!(
                        "`{name}` exports `{WIZER_EXPORT}` as {}; wizer's initializer is \
                         func () -> ()",
                        describe_extern(&wasmtime::ExternType::Func(ty))
                    ),
                ))
            };
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
                 an initializer is a function marked #[wasmproc_guest::init], or a \
                 `wizer.initialize` export (`--init wizer`)"
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
