//! `wasmproc replay`'s flags.

use std::path::PathBuf;

use clap::Args;

#[derive(Debug, Args)]
pub(crate) struct ReplayArgs {
    /// Print one JSON object instead of passing the guest's output through.
    #[arg(long)]
    pub(crate) json: bool,

    /// Grant the directories the bundle names without asking (a bundle is
    /// a file anyone may have edited: by default they are granted only
    /// when the same --dir flags are given here).
    #[arg(long)]
    pub(crate) yes: bool,

    /// Grant HOST at GUEST, as the bundle does: the --dir flags here must
    /// name exactly the bundle's directories (or pass --yes). Repeatable.
    #[arg(long = "dir", value_name = "HOST[::GUEST]")]
    pub(crate) dirs: Vec<String>,

    /// The bundle (`*.replay.json`).
    #[arg(value_name = "BUNDLE")]
    pub(crate) bundle: PathBuf,
}
