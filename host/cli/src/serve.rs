//! `wasmproc serve`: a fresh sandboxed worker per accepted connection, one
//! NDJSON log line per connection, a graceful stop on Ctrl-C or SIGTERM.

use std::fs::OpenOptions;
use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use wasmproc::serve::{ConnectionRecord, Listen, Server};
use wasmproc::{Entry, Isolation, ProcessOptions};

use crate::flags::{IsolationArg, ServeArgs};
use crate::usage;
use crate::words::{count, thousands};

/// The most connections `serve` runs at once: each holds a worker (a
/// thread or a process) and an instance's address space.
const MAX_CONNECTIONS: usize = 4096;

pub(crate) fn serve(args: ServeArgs) -> anyhow::Result<u8> {
    let limits = args.limits.to_limits()?;
    let caps = args.caps.to_capabilities()?;
    let init = args.init.to_initializer(&caps, &limits)?;
    if args.max_connections == 0 || args.max_connections > MAX_CONNECTIONS {
        return Err(usage(format!(
            "--max-connections {} is out of range: give 1 to {MAX_CONNECTIONS}",
            args.max_connections
        )));
    }
    let listen = Listen::parse(&args.listen)?;
    let log = open_log(args.log.as_deref())?;

    let instances = u32::try_from(args.max_connections).unwrap_or(u32::MAX);
    let runtime = args.load.runtime(instances).build()?;
    let module = runtime.load(&args.module)?;
    let module = match &init {
        Some(init) => module.initialize_with(init)?,
        None => module,
    };
    // A module that cannot serve says so now, not at the first connection.
    let entry = module.resolve(&match (&args.task, &args.invoke.invoke) {
        (Some(name), _) => Entry::Task(name.clone()),
        (None, Some(export)) => Entry::Export(export.clone()),
        (None, None) => Entry::Auto,
    })?;
    module.check_imports()?;
    // A typed task with parameters would get none from a connection: every
    // connection would fail. A handler (or a command) is what serves.
    if let Entry::Task(name) = &entry
        && let Some(signature) = module.signature(name)
        && !signature.is_handler()
        && !signature.params.is_empty()
    {
        return Err(crate::usage(format!(
            "`{name}` is a task that takes arguments, which a connection does not give: serve a \
             handler (`#[handler]`, it reads and writes the connection) or a command module; run \
             the task with `wasmproc run {} --task {name} --args JSON`",
            module.name()
        )));
    }
    let some = |d: Duration| (!d.is_zero()).then_some(d);
    let isolation = match args.caps.isolation.unwrap_or(IsolationArg::Thread) {
        IsolationArg::Thread => Isolation::Thread,
        IsolationArg::Process => Isolation::Process(
            ProcessOptions::default()
                .min_workers(args.min_workers)
                .idle_timeout(some(args.worker_idle_timeout)),
        ),
    };

    let server = Server::builder(&module, listen)
        .entry(entry)
        .args(args.argv.iter().cloned())
        .max_connections(args.max_connections)
        .max_per_peer((args.max_per_peer > 0).then_some(args.max_per_peer))
        .first_byte_timeout(some(args.first_byte_timeout))
        .idle_timeout(some(args.idle_timeout))
        .grace(args.grace)
        .limits(limits)
        .capabilities(caps)
        .isolation(isolation)
        .on_connection(move |record| log.write(record))
        .bind()?;

    let stopper = server.stopper();
    // The first signal stops gracefully; a second one ends everything.
    let stop_now = server.stopper();
    crate::signals::on_interrupts(
        move || {
            crate::signals::say(
                "wasmproc: stopping: no new connections; Ctrl-C again ends those in flight",
            );
            stopper.stop();
        },
        move || stop_now.stop_now(),
        None,
        "stop the server",
    );
    say!(
        "wasmproc: serving {} on {} (at most {} at once)",
        args.module.display(),
        server.local_addr(),
        count(args.max_connections as u64, "connection", "connections")
    );
    let summary = server.run()?;
    say!("{}", summary_line(&summary));
    Ok(0)
}

/// The line `serve` ends with: how many connections, and how many of them
/// the server itself ended, and why.
pub(crate) fn summary_line(summary: &wasmproc::serve::ServeSummary) -> String {
    let mut notes = Vec::new();
    for (n, why) in [
        (summary.refused, "refused by --max-per-peer"),
        (summary.cut_short, "ended by the stop's grace period"),
        (summary.stopped_at_once, "ended by a second interrupt"),
    ] {
        if n > 0 {
            notes.push(format!("{} {why}", thousands(n)));
        }
    }
    format!(
        "wasmproc: stopped after {}{}",
        count(summary.connections, "connection", "connections"),
        if notes.is_empty() {
            String::new()
        } else {
            format!(" ({})", notes.join("; "))
        }
    )
}

/// Where the per-connection lines go.
struct Log(Mutex<Box<dyn Write + Send>>);

fn open_log(path: Option<&std::path::Path>) -> anyhow::Result<Log> {
    let out: Box<dyn Write + Send> = match path {
        None => Box::new(std::io::stderr()),
        Some(path) => Box::new(
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|error| {
                    usage(format!(
                        "cannot open the log `{}`: {error}; give a writable file",
                        path.display()
                    ))
                })?,
        ),
    };
    Ok(Log(Mutex::new(out)))
}

impl Log {
    /// Writes one connection's line (a failed log write loses the line,
    /// never the connection).
    fn write(&self, record: &ConnectionRecord) {
        let line = LogLine {
            time: humantime::format_rfc3339_millis(SystemTime::now()),
            peer: &record.peer,
            status: record.status.name(),
            exit_code: record.status.code(),
            bytes_in: record.bytes_in,
            bytes_out: record.bytes_out,
            duration_ms: crate::words::millis(record.duration),
            message: record.message.as_deref(),
        };
        // One write per line: `Display` of a JSON value writes token by
        // token (about 56 system calls a line into an unbuffered file or
        // stderr), all under the lock every worker thread takes. Made here,
        // outside the lock, it cost the server 10-25% of its connections a
        // second (measured with wrk, same runs).
        let mut text = Vec::with_capacity(256);
        if serde_json::to_writer(&mut text, &line).is_err() {
            return;
        }
        text.push(b'\n');
        let mut out = crate::poison::lock(&self.0);
        let _ = out.write_all(&text).and_then(|()| out.flush());
    }
}

/// One connection's log line, its fields in the order they are printed: a
/// struct rather than a `json!` map, which cost about 20 allocations a line.
/// Under wrk, malloc was the server process's largest single cost in
/// `perf`, most of it called from here; the struct served 1.01-1.08x the
/// connections a second (dev builds alternated, both isolations).
#[derive(serde::Serialize)]
struct LogLine<'a> {
    #[serde(serialize_with = "as_text")]
    time: humantime::Rfc3339Timestamp,
    peer: &'a str,
    status: &'a str,
    exit_code: u8,
    bytes_in: u64,
    bytes_out: u64,
    duration_ms: f64,
    message: Option<&'a str>,
}

fn as_text<S: serde::Serializer>(
    value: &impl std::fmt::Display,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_str(value)
}

#[cfg(test)]
mod tests {
    use super::summary_line;
    use wasmproc::serve::ServeSummary;

    /// Every form of `serve`'s closing line.
    #[test]
    fn the_summary_line_in_every_form() {
        let mut summary = ServeSummary::default();
        assert_eq!(
            summary_line(&summary),
            "wasmproc: stopped after 0 connections"
        );
        summary.connections = 1;
        assert_eq!(
            summary_line(&summary),
            "wasmproc: stopped after 1 connection"
        );
        summary.connections = 12_345;
        summary.refused = 2_000;
        summary.cut_short = 1;
        assert_eq!(
            summary_line(&summary),
            "wasmproc: stopped after 12,345 connections (2,000 refused by --max-per-peer; 1 \
             ended by the stop's grace period)"
        );
        summary.cut_short = 0;
        summary.refused = 0;
        summary.stopped_at_once = 3;
        assert_eq!(
            summary_line(&summary),
            "wasmproc: stopped after 12,345 connections (3 ended by a second interrupt)"
        );
    }
}
