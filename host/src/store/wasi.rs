//! A task's WASI context: argv, env, stdin, where stdout and stderr go, and
//! the directories it is granted. Nothing else is reachable.

use std::sync::Arc;

use wasmtime_wasi::cli::AsyncStdinStream;
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

use super::capture::{Capture, RelayedSink, WriterSink};
use super::pump::{Pump, PumpReader};
use super::socket::SocketStreams;
use crate::error::{Error, ErrorKind};
use crate::limits::Limits;
use crate::task::{Output, Stdin, Task, normal_guest_path};

/// The captures of a task's stdout and stderr, where they are captured.
#[derive(Default)]
pub(crate) struct Streams {
    pub(crate) stdout: Option<Capture>,
    pub(crate) stderr: Option<Capture>,
}

/// The WASI context of `task`, whose `argv[0]` is `program`.
///
/// # Errors
///
/// `BadInvocation` when a granted directory cannot be opened.
pub(crate) fn wasi_context(
    program: &str,
    task: &Task,
    limits: &Limits,
) -> Result<(WasiP1Ctx, Streams), Error> {
    let mut builder = WasiCtxBuilder::new();
    builder.arg(program);
    for arg in &task.argv {
        builder.arg(arg);
    }
    // The last value of a variable wins, as in a shell.
    let mut env: Vec<(&str, &str)> = Vec::new();
    for (key, value) in &task.caps.env {
        match env.iter_mut().find(|(k, _)| k == key) {
            Some(earlier) => earlier.1 = value,
            None => env.push((key, value)),
        }
    }
    for (key, value) in env {
        builder.env(key, value);
    }
    // A server's socket, read and written on this thread: the task's
    // stdin and stdout are the same connection through helper threads, for
    // a worker process.
    let direct = task.direct.as_ref().and_then(|direct| {
        Some(SocketStreams::new(
            direct.take()?,
            Arc::clone(&direct.meter),
        ))
    });
    match &task.stdin {
        _ if direct.is_some() => {}
        Stdin::Empty => {}
        Stdin::Bytes(bytes) => {
            builder.stdin(wasmtime_wasi::p2::pipe::MemoryInputPipe::new(
                bytes::Bytes::copy_from_slice(bytes),
            ));
        }
        Stdin::Inherit => {
            builder.inherit_stdin();
        }
        Stdin::Reader(reader) => {
            let pump = Pump::spawn(Arc::clone(reader)).map_err(|error| {
                Error::new(
                    ErrorKind::Setup,
                    format!("cannot start the thread that reads the task's stdin: {error}"),
                )
                .caused_by(error)
            })?;
            builder.stdin(AsyncStdinStream::new(PumpReader::new(pump)));
        }
    }
    let max_output = limits.max_output;
    let streams = Streams {
        stdout: match &direct {
            Some(socket) => {
                builder.stdout(socket.stdout());
                None
            }
            None => output_stream(task, max_output, &mut builder, true),
        },
        stderr: output_stream(task, max_output, &mut builder, false),
    };
    if let Some(socket) = &direct {
        builder.stdin(socket.stdin());
    }
    for grant in &task.caps.dirs {
        builder
            .preopened_dir(
                &grant.host,
                normal_guest_path(&grant.guest),
                FsPerms::ReadWrite,
            )
            .map_err(|error| {
                Error::new(
                    ErrorKind::BadInvocation,
                    format!(
                        "cannot grant directory `{}` (as `{}`): {error:#}; grant an existing directory",
                        grant.host.display(),
                        grant.guest
                    ),
                ).caused_by(error)
            })?;
    }
    Ok((builder.build_p1(), streams))
}

/// Points the guest's stdout (or stderr) where the task says (its relay to
/// the pool, in a worker process); returns the capture when it is captured.
fn output_stream(
    task: &Task,
    cap: usize,
    builder: &mut WasiCtxBuilder,
    is_stdout: bool,
) -> Option<Capture> {
    let set = |builder: &mut WasiCtxBuilder,
               stream: Box<dyn wasmtime_wasi::cli::StdoutStream + Sync>| {
        if is_stdout {
            builder.stdout(stream);
        } else {
            builder.stderr(stream);
        }
    };
    let (output, relayed) = if is_stdout {
        (&task.stdout, &task.relayed[0])
    } else {
        (&task.stderr, &task.relayed[1])
    };
    if let Some(relayed) = relayed {
        set(builder, Box::new(RelayedSink::new(relayed.clone())));
        return None;
    }
    match output {
        Output::Capture => {
            let capture = Capture::new(cap);
            set(builder, Box::new(capture.clone()));
            Some(capture)
        }
        Output::Inherit => {
            if is_stdout {
                builder.inherit_stdout();
            } else {
                builder.inherit_stderr();
            }
            None
        }
        Output::Writer(writer) => {
            set(builder, Box::new(WriterSink::new(Arc::clone(writer))));
            None
        }
        Output::Discard => None,
    }
}
