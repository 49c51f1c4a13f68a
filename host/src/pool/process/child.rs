//! The worker side: a process that loads one module and runs the tasks
//! its pool sends, one at a time, each in a fresh instance.

use std::collections::HashSet;
use std::io::{BufReader, BufWriter};
use std::sync::{Arc, Mutex};

use super::protocol::{ToChild, ToParent, VERSION, read_frame, write_frame};
use crate::cancel::CancelToken;
use crate::engine::EngineSettings;
use crate::runtime::{Runtime, RuntimeSettings};

/// The task running now, and cancellations of tasks not started yet.
#[derive(Default)]
struct Current {
    running: Option<(u64, CancelToken)>,
    cancelled: HashSet<u64>,
}

/// Serves the pool on stdin and stdout until stdin closes; returns the
/// process's exit code.
///
/// When the parent goes away (even killed), stdin closes, the reader sees
/// the end and the process exits at once: no worker outlives its pool.
pub(crate) fn serve() -> i32 {
    let mut input = BufReader::new(std::io::stdin());
    let mut output = BufWriter::new(std::io::stdout().lock());

    let (module_name, module, settings) = match read_frame::<ToChild>(&mut input) {
        Ok(Some(ToChild::Hello {
            version,
            module_name,
            module,
            settings,
        })) if version == VERSION => (module_name, module, settings),
        Ok(Some(ToChild::Hello { version, .. })) => {
            let message = format!("protocol version {version}, but this worker speaks {VERSION}");
            let _ = write_frame(&mut output, &ToParent::Refused { message });
            return 2;
        }
        _ => return 2,
    };
    // The pool's settings, except the instance pool: this process runs one
    // task at a time.
    let settings = RuntimeSettings {
        engine: EngineSettings {
            max_instances: 2,
            ..settings.engine
        },
        ..settings
    };
    let loaded = Runtime::with_settings(settings)
        .and_then(|runtime| runtime.load_bytes(&module_name, &module));
    let module = match loaded {
        Ok(module) => module,
        Err(error) => {
            let _ = write_frame(
                &mut output,
                &ToParent::Refused {
                    message: error.to_string(),
                },
            );
            return 2;
        }
    };
    let ready = ToParent::Ready {
        version: VERSION,
        pid: std::process::id(),
    };
    if write_frame(&mut output, &ready).is_err() {
        return 2;
    }

    // The reader runs beside the task, so that a `Cancel` reaches a running
    // task and a closed pipe ends the process even mid-task.
    let current: Arc<Mutex<Current>> = Arc::default();
    let (tasks, queue) = crossbeam_channel::unbounded();
    let reader_current = Arc::clone(&current);
    let reader = std::thread::Builder::new()
        .name("wasmproc-worker-reader".into())
        .spawn(move || {
            loop {
                match read_frame::<ToChild>(&mut input) {
                    Ok(Some(ToChild::Run { id, task })) => {
                        if tasks.send((id, task)).is_err() {
                            break;
                        }
                    }
                    Ok(Some(ToChild::Cancel { id })) => {
                        let mut current = reader_current.lock().unwrap_or_else(|p| p.into_inner());
                        match &current.running {
                            Some((running, token)) if *running == id => token.cancel(),
                            // Not started yet (or already done): it must not start.
                            _ => {
                                current.cancelled.insert(id);
                            }
                        }
                    }
                    // The parent is gone, or spoke nonsense: stop now.
                    Ok(Some(ToChild::Hello { .. })) | Ok(None) | Err(_) => std::process::exit(0),
                }
            }
        });
    if reader.is_err() {
        return 2;
    }

    for (id, task) in queue {
        let token = CancelToken::new();
        {
            let mut current = current.lock().unwrap_or_else(|p| p.into_inner());
            if current.cancelled.remove(&id) {
                token.cancel();
            }
            current.running = Some((id, token.clone()));
        }
        let outcome = module.run_with(&task.into_task(), &token);
        current.lock().unwrap_or_else(|p| p.into_inner()).running = None;
        if write_frame(&mut output, &ToParent::Done { id, outcome }).is_err() {
            return 0;
        }
    }
    0
}
