//! The replay bundle format: `run --replay-dir DIR` and `map --replay-dir
//! DIR` write, for each task that did not exit 0, one small JSON file with
//! everything it ran with (the module's path and hash, the initializer it
//! started from, the entry, the argument, argv, env, granted directories,
//! limits and the stdin it read); `wasmproc replay BUNDLE` (`replay.rs`)
//! reads it back and runs the task again with the same inputs.
//!
//! A sandboxed guest sees only what the bundle holds, so "it failed in
//! production" becomes a one-line reproduction.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use wasmproc::{Capabilities, DirGrant, Entry, Initializer, Limits, Outcome};

use crate::usage;

/// The format version a bundle carries; `replay` refuses later ones.
/// Format 3 adds `invoke` and `stub_imports`, which earlier wasmprocs
/// would misread (a reactor run as a command): it is written only for a
/// bundle that has them.
const VERSION: u32 = 3;

/// The format of a bundle with an initializer and nothing of format 3.
/// Format 2 adds `init`, which earlier wasmprocs would ignore, replaying
/// without the snapshot.
const VERSION_WITH_INIT: u32 = 2;

/// The format of a bundle without an initializer: format 1, which
/// wasmprocs from before initializers also replay.
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
    /// The exported function the task called (`--invoke`), if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) invoke: Option<String>,
    /// Whether unknown function imports were stubbed to trap
    /// (`--stub-imports`): the module loads only so.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) stub_imports: bool,
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

/// Writes the bundles of one run or map into their directory.
pub(crate) struct BundleWriter {
    dir: PathBuf,
    module: ModuleRef,
    init: Option<InitRef>,
    /// Whether the module was loaded with its unknown imports stubbed.
    stub_imports: bool,
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

impl BundleWriter {
    /// A writer into `dir` (made if missing) for the module at `path`,
    /// started from `init`'s snapshot if given, loaded with its unknown
    /// imports stubbed if `stub_imports`.
    pub(crate) fn new(
        dir: &Path,
        path: &Path,
        init: Option<&Initializer>,
        stub_imports: bool,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot make the replay directory `{}`", dir.display()))?;
        let bytes = std::fs::read(path)
            .with_context(|| format!("cannot read `{}` to hash it", path.display()))?;
        let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
        Ok(BundleWriter {
            dir: dir.to_owned(),
            module: ModuleRef {
                path,
                blake3: blake3::hash(&bytes).to_hex().to_string(),
            },
            init: init.map(|init| InitRef {
                name: init.name().to_owned(),
                argument: String::from_utf8_lossy(init.input()).into_owned(),
            }),
            stub_imports,
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
        let invoke = match inputs.entry {
            Entry::Export(name) => Some(name.clone()),
            _ => None,
        };
        let bundle = Bundle {
            wasmproc_replay: if invoke.is_some() || self.stub_imports {
                VERSION
            } else if self.init.is_some() {
                VERSION_WITH_INIT
            } else {
                VERSION_WITHOUT_INIT
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
            invoke,
            stub_imports: self.stub_imports,
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
                    say!(
                        "wasmproc: warning: cannot write replay bundles to `{}`: {error}",
                        self.dir.display()
                    );
                }
                None
            }
        }
    }
}

impl Bundle {
    /// Reads the bundle at `path`, refusing a file that is not one and a
    /// format later than this wasmproc's.
    pub(crate) fn read(path: &Path) -> anyhow::Result<Bundle> {
        let text = std::fs::read(path).map_err(|error| {
            usage(format!(
                "cannot read the bundle `{}`: {error}",
                path.display()
            ))
        })?;
        let bundle: Bundle = serde_json::from_slice(&text).map_err(|error| {
            usage(format!(
                "`{}` is not a wasmproc replay bundle: {error}",
                path.display()
            ))
        })?;
        if !(VERSION_WITHOUT_INIT..=VERSION).contains(&bundle.wasmproc_replay) {
            return Err(usage(format!(
                "`{}` is a replay bundle of format {}, and this wasmproc reads formats \
                 {VERSION_WITHOUT_INIT} to {VERSION}",
                path.display(),
                bundle.wasmproc_replay
            )));
        }
        Ok(bundle)
    }
}

/// A reader that keeps a copy of what it passes on, up to a cap: the stdin
/// a guest read, for its bundle.
pub(crate) struct TeeReader<R> {
    inner: R,
    kept: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    cap: usize,
}

impl<R> TeeReader<R> {
    pub(crate) fn new(inner: R, cap: usize) -> (Self, std::sync::Arc<std::sync::Mutex<Vec<u8>>>) {
        let kept = std::sync::Arc::default();
        (
            TeeReader {
                inner,
                kept: std::sync::Arc::clone(&kept),
                cap,
            },
            kept,
        )
    }
}

impl<R: std::io::Read> std::io::Read for TeeReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut kept = crate::poison::lock(&self.kept);
        let room = self.cap.saturating_sub(kept.len());
        kept.extend_from_slice(&buf[..n.min(room)]);
        Ok(n)
    }
}
