//! Replay bundles: `run --replay-dir DIR` and `map --replay-dir DIR` write,
//! for each task that did not exit 0, one small JSON file with everything
//! it ran with (the module's path and hash, the initializer it started
//! from, the entry, the argument, argv, env, granted directories, limits
//! and the stdin it read); `wasmproc replay BUNDLE` runs it again with the
//! same inputs.
//!
//! A sandboxed guest sees only what the bundle holds, so "it failed in
//! production" becomes a one-line reproduction.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use wasmproc::{Capabilities, DirGrant, Entry, Initializer, Limits, Outcome, Stdin, Task};

use crate::flags::{ReplayArgs, initializer};
use crate::report::{OutcomeJson, failure_line};
use crate::usage;

/// The format version a bundle carries; `replay` refuses later ones.
const VERSION: u32 = 2;

/// The format of a bundle without an initializer: format 1, which
/// wasmprocs from before initializers also replay. Format 2 adds `init`,
/// which those would ignore, replaying without the snapshot.
const VERSION_WITHOUT_INIT: u32 = 1;

/// Everything one task ran with, and how it ended. A field this wasmproc
/// does not know is refused: it comes from a later format.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Bundle {
    pub(crate) wasmproc_replay: u32,
    pub(crate) module: ModuleRef,
    /// The initializer whose snapshot the task started from, run with the
    /// task's own env, directories and limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) init: Option<InitRef>,
    /// `null` for the WASI command, else the task's name.
    pub(crate) task: Option<String>,
    /// The task's argument, as the JSON text it was given (or the text
    /// that failed to be JSON).
    pub(crate) argument: String,
    pub(crate) argv: Vec<String>,
    pub(crate) env: Vec<(String, String)>,
    pub(crate) dirs: Vec<DirGrant>,
    pub(crate) limits: Limits,
    /// What the guest read from its stdin, when it was recorded.
    pub(crate) stdin: Option<Vec<u8>>,
    /// How the task ended when the bundle was written.
    pub(crate) ended: Ended,
}

/// A module, by path and content.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ModuleRef {
    pub(crate) path: PathBuf,
    pub(crate) blake3: String,
}

/// An initializer, by name and argument.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct InitRef {
    pub(crate) name: String,
    /// Its argument, as the JSON text it was given.
    pub(crate) argument: String,
}

/// The gist of an outcome, for the reader of a bundle.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Ended {
    pub(crate) status: String,
    pub(crate) exit_code: u8,
    pub(crate) message: Option<String>,
}

/// Where bundles of one run or map go.
pub(crate) struct Recorder {
    dir: PathBuf,
    module: ModuleRef,
    init: Option<InitRef>,
    /// Set after the first failure to write, which is reported once.
    failed: AtomicBool,
}

/// What a task ran with, as the command line built it.
pub(crate) struct Inputs<'a> {
    pub(crate) entry: &'a Entry,
    pub(crate) argument: &'a [u8],
    pub(crate) argv: &'a [String],
    pub(crate) caps: &'a Capabilities,
    pub(crate) limits: &'a Limits,
    pub(crate) stdin: Option<Vec<u8>>,
}

impl Recorder {
    /// A recorder into `dir` (made if missing) for the module at `path`,
    /// started from `init`'s snapshot if given.
    pub(crate) fn new(dir: &Path, path: &Path, init: Option<&Initializer>) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot make the replay directory `{}`", dir.display()))?;
        let bytes = std::fs::read(path)
            .with_context(|| format!("cannot read `{}` to hash it", path.display()))?;
        let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
        Ok(Recorder {
            dir: dir.to_owned(),
            module: ModuleRef {
                path,
                blake3: blake3::hash(&bytes).to_hex().to_string(),
            },
            init: init.map(|init| InitRef {
                name: init.name().to_owned(),
                argument: String::from_utf8_lossy(init.get_input()).into_owned(),
            }),
            failed: AtomicBool::new(false),
        })
    }

    /// Writes the bundle of a task that did not exit 0, named after `label`
    /// (`run`, or the input line); returns its path. A failure to write is
    /// reported on stderr once and does not stop the run.
    pub(crate) fn record(
        &self,
        label: &str,
        inputs: Inputs<'_>,
        outcome: &Outcome,
    ) -> Option<PathBuf> {
        if outcome.success() {
            return None;
        }
        let bundle = Bundle {
            wasmproc_replay: match self.init {
                Some(_) => VERSION,
                None => VERSION_WITHOUT_INIT,
            },
            module: ModuleRef {
                path: self.module.path.clone(),
                blake3: self.module.blake3.clone(),
            },
            init: self.init.clone(),
            task: match inputs.entry {
                Entry::Task(name) => Some(name.clone()),
                _ => None,
            },
            argument: String::from_utf8_lossy(inputs.argument).into_owned(),
            argv: inputs.argv.to_vec(),
            env: inputs.caps.env.clone(),
            dirs: inputs.caps.dirs.clone(),
            limits: inputs.limits.clone(),
            stdin: inputs.stdin,
            ended: Ended {
                status: outcome.status.name().to_owned(),
                exit_code: outcome.status.code(),
                message: outcome.message.clone(),
            },
        };
        let stem = self
            .module
            .path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "module".into());
        let path = self.dir.join(format!("{stem}-{label}.replay.json"));
        let written = serde_json::to_vec_pretty(&bundle)
            .map_err(std::io::Error::other)
            .and_then(|json| std::fs::write(&path, json));
        match written {
            Ok(()) => Some(path),
            Err(error) => {
                if !self.failed.swap(true, Ordering::SeqCst) {
                    eprintln!(
                        "wasmproc: warning: cannot write replay bundles to `{}`: {error}",
                        self.dir.display()
                    );
                }
                None
            }
        }
    }
}

/// `wasmproc replay BUNDLE`: the task again, with the bundle's inputs;
/// prints and exits as `run` does.
pub(crate) fn replay(args: ReplayArgs) -> anyhow::Result<u8> {
    let text = std::fs::read(&args.bundle).map_err(|error| {
        usage(format!(
            "cannot read the bundle `{}`: {error}",
            args.bundle.display()
        ))
    })?;
    let bundle: Bundle = serde_json::from_slice(&text).map_err(|error| {
        usage(format!(
            "`{}` is not a wasmproc replay bundle: {error}",
            args.bundle.display()
        ))
    })?;
    if !(VERSION_WITHOUT_INIT..=VERSION).contains(&bundle.wasmproc_replay) {
        return Err(usage(format!(
            "`{}` is a replay bundle of format {}, and this wasmproc reads formats \
             {VERSION_WITHOUT_INIT} to {VERSION}",
            args.bundle.display(),
            bundle.wasmproc_replay
        )));
    }
    let path = &bundle.module.path;
    let bytes = std::fs::read(path).map_err(|error| {
        wasmproc::Error::new(
            wasmproc::ErrorKind::NotFound,
            format!(
                "the bundle's module `{}` cannot be read: {error}",
                path.display()
            ),
        )
    })?;
    let hash = blake3::hash(&bytes).to_hex().to_string();
    if hash != bundle.module.blake3 {
        return Err(wasmproc::Error::new(
            wasmproc::ErrorKind::CannotRun,
            format!(
                "the module `{}` changed since the bundle was written (BLAKE3 {hash}, the \
                 bundle's {}): replaying it would not run the same code",
                path.display(),
                bundle.module.blake3
            ),
        )
        .into());
    }
    confirm_grants(&bundle.dirs, &args)?;
    let runtime = wasmproc::Runtime::builder().max_instances(1).build()?;
    let module = runtime.load(path)?;
    let caps = Capabilities {
        dirs: bundle.dirs,
        env: bundle.env,
    };
    let module = match &bundle.init {
        Some(init) => module.initialize_with(&initializer(
            &init.name,
            &init.argument,
            &caps,
            &bundle.limits,
        ))?,
        None => module,
    };
    let entry = match &bundle.task {
        Some(name) => Entry::Task(name.clone()),
        None => Entry::Command,
    };
    let typed = matches!(entry, Entry::Task(_));
    let (stdout, stderr) = crate::run::guest_output(args.json, typed);
    let task = Task::new(entry, bundle.argument.into_bytes())
        .args(bundle.argv)
        .capabilities(caps)
        .limits(bundle.limits)
        .stdin(
            bundle
                .stdin
                .map_or(Stdin::Empty, |bytes| Stdin::Bytes(bytes.into())),
        )
        .stdout(stdout)
        .stderr(stderr);
    let outcome = module.run(&task);
    if args.json {
        println!("{}", OutcomeJson::new(&outcome, None));
    } else {
        if let Some(result) = &outcome.result {
            println!("{}", String::from_utf8_lossy(result));
        }
        // The guest's stderr was passed through.
        if let Some(line) = failure_line(module.name(), &outcome, true) {
            eprintln!("{line}");
        }
    }
    Ok(outcome.status.code())
}

/// Says which directories the bundle grants, and grants them only when
/// the user agreed: `--yes`, or the same `--dir` flags on this command
/// line. A bundle is a plain file: one edited to grant `/etc` must not
/// read the host's files unasked.
fn confirm_grants(dirs: &[DirGrant], args: &ReplayArgs) -> anyhow::Result<()> {
    if dirs.is_empty() {
        if let Some(extra) = args.dirs.first() {
            return Err(usage(format!(
                "--dir {extra}: the bundle grants no directory; drop --dir"
            )));
        }
        return Ok(());
    }
    let listed: Vec<String> = dirs
        .iter()
        .map(|grant| format!("{}::{}", grant.host.display(), grant.guest))
        .collect();
    eprintln!(
        "wasmproc replay: the bundle grants {}",
        listed
            .iter()
            .map(|grant| format!("--dir {grant}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    if args.yes {
        return Ok(());
    }
    let given = args
        .dirs
        .iter()
        .map(|spec| DirGrant::parse(spec))
        .collect::<Result<Vec<_>, _>>()?;
    let key = |grant: &DirGrant| {
        let host = std::fs::canonicalize(&grant.host).unwrap_or_else(|_| grant.host.clone());
        (host, grant.guest.trim_end_matches('/').to_owned())
    };
    let mut wanted: Vec<_> = dirs.iter().map(key).collect();
    let mut agreed: Vec<_> = given.iter().map(key).collect();
    wanted.sort();
    agreed.sort();
    if wanted == agreed {
        return Ok(());
    }
    Err(usage(format!(
        "the bundle grants directories, and a bundle is a file anyone may have edited: replay \
         grants them only when you say so. Check them, then pass --yes, or the same flags: \
         wasmproc replay {} {}",
        listed
            .iter()
            .map(|grant| format!("--dir {grant}"))
            .collect::<Vec<_>>()
            .join(" "),
        args.bundle.display()
    )))
}

/// A reader that keeps what it passes on, up to a cap: the stdin a guest
/// read, for its bundle.
pub(crate) struct Recording<R> {
    inner: R,
    kept: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    cap: usize,
}

impl<R> Recording<R> {
    pub(crate) fn new(inner: R, cap: usize) -> (Self, std::sync::Arc<std::sync::Mutex<Vec<u8>>>) {
        let kept = std::sync::Arc::default();
        (
            Recording {
                inner,
                kept: std::sync::Arc::clone(&kept),
                cap,
            },
            kept,
        )
    }
}

impl<R: std::io::Read> std::io::Read for Recording<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        let room = self.cap.saturating_sub(kept.len());
        kept.extend_from_slice(&buf[..n.min(room)]);
        Ok(n)
    }
}
