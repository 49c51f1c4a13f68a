//! `wasmproc cache`'s flags.

use clap::Args;

#[derive(Debug, Args)]
pub(crate) struct CacheArgs {
    #[command(subcommand)]
    pub(crate) action: CacheAction,
}

/// What `wasmproc cache` does.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum CacheAction {
    /// One line per entry, least recently used first: its size, when it was
    /// last used, its kind (`compiled`, `snapshot`, or for a module that was
    /// snapshotted its `instrumented` copy and the `functions` its later
    /// snapshots reuse), its file; then the total.
    List {
        /// One JSON object per entry instead.
        #[arg(long)]
        json: bool,
    },
    /// Remove every entry: each module is compiled again at its next load.
    Clear,
}
