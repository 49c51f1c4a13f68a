//! What to run: the entry point, its input, its capabilities and limits;
//! and what initializer to run first (`initializer.rs`).

mod connection;
mod initializer;
mod relayed;
mod spec;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::error::{Error, ErrorKind};
use crate::limits::{Limits, human};
use crate::share::{Grants, PipeEnd, Shared};

pub use connection::Connection;
pub(crate) use connection::{DirectSocket, HangUp, Meter, Socket};
pub use initializer::Initializer;
pub(crate) use relayed::{Credits, OUTPUT_WINDOW, RelayedOutput};
pub use spec::TaskSpec;

/// Which export of the module a task runs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Entry {
    /// The WASI command entry `_start`: argv, env and stdin in, exit code out.
    Command,
    /// A typed task exported with `wasmproc-guest`, by name.
    Task(String),
    /// `_start` if the module has it, else the module's only task.
    Auto,
    /// Any exported function, by its export name, as `wasmtime run
    /// --invoke` calls it: the module's `_initialize` first when it exports
    /// one (a reactor), then the function. Its parameters (numbers only:
    /// `i32`, `i64`, `f32`, `f64`) are parsed from the task's argv, one
    /// word each. A `() -> i32` function's result is the exit code (0–125;
    /// another value ends the task `trapped` with `host_error`, as an
    /// out-of-range `proc_exit` does); a `() -> ()` function exits 0; any
    /// other function's results are written to the task's stdout, one per
    /// line, and kept as the outcome's result, a JSON array.
    Export(String),
}

/// Where a task's stdin comes from. By default it is empty.
///
/// Every kind works in both isolations: a worker process gets streamed
/// stdin relayed by its pool as the guest reads it.
#[derive(Clone, Default)]
pub enum Stdin {
    /// An empty stdin: reads see end of file at once.
    #[default]
    Empty,
    /// These bytes, then end of file.
    Bytes(Arc<[u8]>),
    /// The host process's stdin (for one task at a time, as a program).
    Inherit,
    /// Whatever this reader gives, read on a helper thread one chunk at a
    /// time as the guest asks (nothing is read ahead), then end of file. A
    /// guest waiting on it still ends at its deadline; a read that never
    /// returns keeps only the helper thread.
    Reader(Arc<Mutex<dyn Read + Send>>),
}

impl Stdin {
    /// A stdin that reads from `reader` (see [`Stdin::Reader`]).
    pub fn reader(reader: impl Read + Send + 'static) -> Stdin {
        Stdin::Reader(Arc::new(Mutex::new(reader)))
    }
}

impl std::fmt::Debug for Stdin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stdin::Empty => f.write_str("Empty"),
            Stdin::Bytes(bytes) => write!(f, "Bytes({} bytes)", bytes.len()),
            Stdin::Inherit => f.write_str("Inherit"),
            Stdin::Reader(_) => f.write_str("Reader"),
        }
    }
}

/// Where a task's stdout or stderr goes. By default it is captured.
///
/// Every kind works in both isolations: a worker process streams what the
/// guest writes to its pool, which writes it where the task says.
#[derive(Clone, Default)]
pub enum Output {
    /// Kept in the [`Outcome`](crate::Outcome), up to the task's output cap.
    #[default]
    Capture,
    /// Written to the host process's own stream, as a program's would be.
    Inherit,
    /// Written to this writer as the guest writes.
    Writer(Arc<Mutex<dyn Write + Send>>),
    /// Dropped.
    Discard,
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Output::Capture => "Capture",
            Output::Inherit => "Inherit",
            Output::Writer(_) => "Writer",
            Output::Discard => "Discard",
        })
    }
}

/// A host directory granted to the guest at a guest path.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DirGrant {
    /// The directory on the host.
    pub host: PathBuf,
    /// Where the guest sees it (e.g. `/data` or `.`).
    pub guest: String,
}

impl DirGrant {
    /// Grants `host` to the guest at `guest`, written in its normal form
    /// (`/a/../b` is `/b`, `./data/` is `data`).
    pub fn new(host: impl Into<PathBuf>, guest: impl Into<String>) -> Self {
        DirGrant {
            host: host.into(),
            guest: normal_guest_path(&guest.into()),
        }
    }

    /// Parses the binary's `HOST[::GUEST]` form; without `::GUEST` the guest
    /// sees the directory at the same path as the host.
    pub fn parse(spec: &str) -> Result<Self, Error> {
        let (host, guest) = match spec.split_once("::") {
            Some((host, guest)) => (host, guest),
            None => (spec, spec),
        };
        if host.is_empty() || guest.is_empty() {
            return Err(Error::new(
                ErrorKind::BadInvocation,
                format!("--dir `{spec}`: expected HOST[::GUEST], e.g. `--dir ./data::/data`"),
            ));
        }
        Ok(DirGrant::new(host, guest))
    }
}

/// A guest path with `.` and `..` resolved and no trailing or doubled `/`:
/// `/a/../b` is `/b`, `./data/` is `data`, `..` above the root stays at it.
pub(crate) fn normal_guest_path(path: &str) -> String {
    let absolute = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." if parts.last().is_some_and(|p| *p != "..") => {
                parts.pop();
            }
            // Above the root there is nothing; above `.` it stays relative.
            ".." if absolute => {}
            other => parts.push(other),
        }
    }
    match (absolute, parts.is_empty()) {
        (true, _) => format!("/{}", parts.join("/")),
        (false, true) => ".".to_owned(),
        (false, false) => parts.join("/"),
    }
}

/// What the guest may touch. Nothing is granted by default: no files, no
/// environment variables, no network.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Capabilities {
    /// Directories the guest may open, read and write.
    pub dirs: Vec<DirGrant>,
    /// Environment variables the guest sees.
    pub env: Vec<(String, String)>,
}

impl Capabilities {
    /// Grants a directory.
    pub fn dir(mut self, grant: DirGrant) -> Self {
        self.dirs.push(grant);
        self
    }

    /// Sets an environment variable for the guest.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }
}

/// One task: an entry point and everything it runs with.
///
/// ```
/// use wasmproc::{Limits, Task};
/// use std::time::Duration;
///
/// // A typed task with a serde argument:
/// let square = Task::call("square", &7u64).unwrap();
///
/// // A WASI command with argv, an env var and a time limit:
/// let grep = Task::command()
///     .args(["grep", "-c", "needle"])
///     .env("LANG", "C")
///     .limits(Limits::default().timeout(Duration::from_secs(5)));
/// # let _ = (square, grep);
/// ```
#[derive(Debug, Clone)]
pub struct Task {
    pub(crate) entry: Entry,
    pub(crate) input: Arc<[u8]>,
    pub(crate) argv: Vec<String>,
    pub(crate) stdin: Stdin,
    pub(crate) stdout: Output,
    pub(crate) stderr: Output,
    pub(crate) caps: Capabilities,
    /// `None`: the defaults (of the pool that runs the task, or
    /// `Limits::default()`).
    pub(crate) limits: Option<Limits>,
    /// Set by [`Task::rejected`]: the task fails without running.
    pub(crate) rejected: Option<String>,
    /// The queues, regions, locks and pipe end the task may reach.
    pub(crate) grants: Grants,
    /// Ends the task's connection once it has ended ([`Task::connection`]).
    pub(crate) hang_up: Option<HangUp>,
    /// A server's socket, read and written directly by a store in this
    /// process (instead of `stdin` and `stdout`).
    pub(crate) direct: Option<DirectSocket>,
    /// In a worker process: the stdout and stderr relayed to the pool
    /// under credits (instead of `stdout` and `stderr`).
    pub(crate) relayed: [Option<RelayedOutput>; 2],
}

impl Task {
    fn with_entry(entry: Entry, input: Arc<[u8]>) -> Self {
        Task {
            entry,
            input,
            argv: Vec::new(),
            stdin: Stdin::Empty,
            stdout: Output::Capture,
            stderr: Output::Capture,
            caps: Capabilities::default(),
            limits: None,
            rejected: None,
            grants: Grants::default(),
            hang_up: None,
            direct: None,
            relayed: [None, None],
        }
    }

    /// Runs the module's WASI command entry, `_start`.
    pub fn command() -> Self {
        Task::with_entry(Entry::Command, Arc::from(&b"null"[..]))
    }

    /// Calls the module's exported function `name` ([`Entry::Export`]),
    /// after its `_initialize` if it has one; its arguments are the task's
    /// argv ([`Task::args`]).
    ///
    /// ```
    /// // `wasmproc run --invoke add M.wasm 2 3`:
    /// let add = wasmproc::Task::invoke("add").args(["2", "3"]);
    /// # let _ = add;
    /// ```
    pub fn invoke(name: &str) -> Self {
        Task::with_entry(Entry::Export(name.to_owned()), Arc::from(&b"null"[..]))
    }

    /// Calls the typed task `name` with `arg`, serialized to JSON.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::BadInvocation`] when `arg` cannot be serialized (e.g. a
    /// map with non-string keys).
    pub fn call<A: Serialize + ?Sized>(name: &str, arg: &A) -> Result<Self, Error> {
        let json = serde_json::to_vec(arg).map_err(|error| {
            Error::new(
                ErrorKind::BadInvocation,
                format!("the argument of task `{name}` cannot be serialized: {error}"),
            )
            .caused_by(error)
        })?;
        Ok(Task::with_entry(Entry::Task(name.to_owned()), json.into()))
    }

    /// Calls the typed task `name` with an argument that is already JSON.
    /// Invalid JSON ends the task with `BadInvocation`.
    pub fn call_json(name: &str, json: impl Into<Arc<[u8]>>) -> Self {
        Task::with_entry(Entry::Task(name.to_owned()), json.into())
    }

    /// Runs `entry` with a JSON argument (used for typed tasks; a command
    /// ignores it).
    pub fn new(entry: Entry, json: impl Into<Arc<[u8]>>) -> Self {
        Task::with_entry(entry, json.into())
    }

    /// A task that ends with `BadInvocation` and `message` without running.
    ///
    /// For producers of tasks whose input was bad (a malformed line of a
    /// `map` input, say): the bad input keeps its place and gets its status
    /// like any other task.
    pub fn rejected(message: impl Into<String>) -> Self {
        let mut task = Task::command();
        task.rejected = Some(message.into());
        task
    }

    /// Sets the guest's argv after `argv[0]`, which is the module's name.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.argv = args.into_iter().map(Into::into).collect();
        self
    }

    /// Sets an environment variable for the guest.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.caps.env.push((key.into(), value.into()));
        self
    }

    /// Grants a host directory at a guest path.
    pub fn dir(mut self, grant: DirGrant) -> Self {
        self.caps.dirs.push(grant);
        self
    }

    /// Replaces the task's own capabilities (a pool adds its defaults to
    /// them).
    pub fn capabilities(mut self, caps: Capabilities) -> Self {
        self.caps = caps;
        self
    }

    /// Sets where stdin comes from.
    pub fn stdin(mut self, stdin: Stdin) -> Self {
        self.stdin = stdin;
        self
    }

    /// Sets where stdout goes.
    pub fn stdout(mut self, output: Output) -> Self {
        self.stdout = output;
        self
    }

    /// Sets where stderr goes.
    pub fn stderr(mut self, output: Output) -> Self {
        self.stderr = output;
        self
    }

    /// Sets the limits, replacing the defaults (a pool's, or
    /// `Limits::default()`).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = Some(limits);
        self
    }

    /// Grants the task `object` (a [`Queue`](crate::Queue), a
    /// [`SharedRegion`](crate::SharedRegion), a [`Lock`](crate::Lock),
    /// [`Event`](crate::Event), [`Semaphore`](crate::Semaphore) or
    /// [`Barrier`](crate::Barrier)) under `name`: the guest opens it by that
    /// name (`wasmproc_guest::queue("jobs")`, `Lock::open("print")`), and
    /// reaches nothing it was not granted. A lock or the like is granted as
    /// its own words, which the guest sees at offset 0.
    ///
    /// A name that is not 1 to 128 of `[A-Za-z0-9_.-]`, or is granted twice,
    /// makes the task fail with `BadInvocation` without running.
    pub fn share(mut self, name: &str, object: &impl Shared) -> Self {
        if let Err(refused) = self.grants.add(name, object.grant()) {
            self.rejected.get_or_insert(refused.into_message());
        }
        self
    }

    /// Gives the task `end` of a pipe ([`pipe`](crate::pipe)); the guest
    /// reaches it with `wasmproc_guest::pipe()`. A task has at most one
    /// pipe end; this replaces any earlier one.
    pub fn pipe(mut self, end: PipeEnd) -> Self {
        self.grants.pipe = Some(end);
        self
    }

    /// The entry point.
    pub fn entry(&self) -> &Entry {
        &self.entry
    }

    /// The task's own limits, if it has any.
    pub fn get_limits(&self) -> Option<&Limits> {
        self.limits.as_ref()
    }

    /// The typed task's argument, as JSON bytes (`null` for a command).
    pub fn input(&self) -> &[u8] {
        &self.input
    }

    /// The guest's argv after `argv[0]`.
    pub fn get_args(&self) -> &[String] {
        &self.argv
    }

    /// The task's own capabilities.
    pub fn get_capabilities(&self) -> &Capabilities {
        &self.caps
    }

    /// Where the task's stdin comes from.
    pub fn get_stdin(&self) -> &Stdin {
        &self.stdin
    }

    /// Where the task's stdout goes.
    pub fn get_stdout(&self) -> &Output {
        &self.stdout
    }

    /// Where the task's stderr goes.
    pub fn get_stderr(&self) -> &Output {
        &self.stderr
    }

    /// The names of the objects shared with the task.
    pub fn shared_names(&self) -> impl Iterator<Item = &str> {
        self.grants.named.keys().map(String::as_str)
    }

    /// Whether the task was given a pipe end.
    pub fn has_pipe(&self) -> bool {
        self.grants.pipe.is_some()
    }

    /// Why the task fails without running, when it was made with
    /// [`Task::rejected`].
    pub fn rejection(&self) -> Option<&str> {
        self.rejected.as_deref()
    }

    /// Checks what does not depend on the module: a rejected task's
    /// message, the sizes of its inputs against `limits`, argv and env
    /// strings (no NUL; env names without `=`), and directory grants (one
    /// per guest path). Thread and process workers check alike, so both give
    /// the same status and message, before anything is sent.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::BadInvocation`], naming the problem.
    pub(crate) fn check(&self, limits: &Limits) -> Result<(), Error> {
        let bad = |message: String| Err(Error::new(ErrorKind::BadInvocation, message));
        if let Some(message) = &self.rejected {
            return bad(message.clone());
        }
        let max = limits.max_args;
        let over = |what: &str, len: usize| {
            bad(format!(
                "the task's {what} is {}, over the limit of {} (Limits::max_args)",
                human(len as u64),
                human(max as u64)
            ))
        };
        if self.input.len() > max {
            return over("argument", self.input.len());
        }
        let strings: usize = self.argv.iter().map(String::len).sum::<usize>()
            + self
                .caps
                .env
                .iter()
                .map(|(k, v)| k.len() + v.len() + 1)
                .sum::<usize>();
        if strings > max {
            return over("argv and env", strings);
        }
        if let Stdin::Bytes(bytes) = &self.stdin
            && bytes.len() > max
        {
            return over("stdin", bytes.len());
        }
        if let Some(at) = self.argv.iter().position(|a| a.contains('\0')) {
            return bad(format!(
                "argv word {} contains a NUL byte, which no C string can hold: remove it",
                at + 1
            ));
        }
        for (key, value) in &self.caps.env {
            if key.is_empty() || key.contains(['=', '\0']) || value.contains('\0') {
                return bad(format!(
                    "environment variable `{}`: a name must be non-empty without `=` or NUL, \
                     and a value without NUL",
                    key.escape_debug()
                ));
            }
        }
        let mut guest_paths = std::collections::HashSet::new();
        for grant in &self.caps.dirs {
            let guest = normal_guest_path(&grant.guest);
            if !guest_paths.insert(guest.clone()) {
                return bad(format!(
                    "two directories are granted at guest path `{guest}`: grant one per path"
                ));
            }
        }
        Ok(())
    }

    /// This task with `limits` where it has none of its own, `caps`
    /// granted before its own capabilities, and `grants` under the names
    /// (and for the pipe) it has none of its own.
    pub(crate) fn with_defaults(
        mut self,
        limits: &Limits,
        caps: &Capabilities,
        grants: &Grants,
    ) -> Task {
        if !grants.is_empty() {
            self.grants = std::mem::take(&mut self.grants).with_defaults(grants);
        }
        if self.limits.is_none() {
            self.limits = Some(limits.clone());
        }
        if caps != &Capabilities::default() {
            let own = std::mem::take(&mut self.caps);
            self.caps = Capabilities {
                dirs: caps.dirs.iter().chain(&own.dirs).cloned().collect(),
                env: caps.env.iter().chain(&own.env).cloned().collect(),
            };
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_paths_are_normalized() {
        for (given, normal) in [
            ("/a/../b", "/b"),
            ("/data/", "/data"),
            ("//data//x", "/data/x"),
            ("./data/", "data"),
            (".", "."),
            ("a/..", "."),
            ("/..", "/"),
            ("../up", "../up"),
        ] {
            assert_eq!(normal_guest_path(given), normal, "{given}");
        }
    }

    #[test]
    fn inputs_are_checked_before_running() {
        let limits = Limits::default().max_args(10);
        let check = |task: Task| task.check(&limits).map_err(|e| e.to_string());
        assert!(check(Task::command().args(["short"])).is_ok());
        assert!(
            check(Task::command().args(["far too long"]))
                .unwrap_err()
                .contains("argv")
        );
        assert!(
            check(Task::call("t", &"a long argument").unwrap())
                .unwrap_err()
                .contains("argument")
        );
        assert!(
            check(Task::command().args(["a\0b"]))
                .unwrap_err()
                .contains("NUL")
        );
        assert!(
            check(Task::command().env("A=B", "1"))
                .unwrap_err()
                .contains("A=B")
        );
        let twice = Task::command()
            .dir(DirGrant::new("/tmp", "/d"))
            .dir(DirGrant::new("/var", "/x/../d/"));
        assert!(check(twice).unwrap_err().contains("`/d`"));
    }
}
