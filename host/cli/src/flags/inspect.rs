//! The flags of `wasmproc compile` and `wasmproc inspect`.

use std::path::PathBuf;

use clap::Args;

use super::common::{GrantArgs, InitArgs, LimitArgs, LoadArgs};

#[derive(Debug, Args)]
pub(crate) struct CompileArgs {
    #[command(flatten)]
    pub(crate) init: InitArgs,

    #[command(flatten)]
    pub(crate) limits: LimitArgs,

    #[command(flatten)]
    pub(crate) load: LoadArgs,

    #[command(flatten)]
    pub(crate) grants: GrantArgs,

    /// The module file.
    #[arg(value_name = "MODULE")]
    pub(crate) module: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct InspectArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    pub(crate) json: bool,

    #[command(flatten)]
    pub(crate) load: LoadArgs,

    /// The module file.
    #[arg(value_name = "MODULE")]
    pub(crate) module: PathBuf,
}
