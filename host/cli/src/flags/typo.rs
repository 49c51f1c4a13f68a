//! The host option that a misspelt word in the guest's argv meant.

use clap::CommandFactory;

use super::Cli;

/// The host option of `run` that `word` (from the guest's argv) most
/// likely meant, if it looks like a misspelt one: `--timout` is
/// `--timeout`.
pub(crate) fn misspelt_host_option(word: &str) -> Option<String> {
    let name = word.strip_prefix("--")?.split('=').next()?;
    let command = Cli::command();
    let run = command.find_subcommand("run")?;
    run.get_arguments()
        .filter_map(|arg| arg.get_long())
        .map(|long| (strsim::damerau_levenshtein(name, long), long))
        .filter(|(distance, long)| *distance <= 2 && *distance < long.len() / 2 + 1)
        .min()
        .map(|(_, long)| format!("--{long}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn misspelt_host_options_are_recognized() {
        assert_eq!(
            misspelt_host_option("--timout").as_deref(),
            Some("--timeout")
        );
        assert_eq!(
            misspelt_host_option("--max-memroy=1").as_deref(),
            Some("--max-memory")
        );
        assert_eq!(misspelt_host_option("--verbose"), None);
        assert_eq!(misspelt_host_option("timeout"), None);
    }
}
