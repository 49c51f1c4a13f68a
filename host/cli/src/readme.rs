//! The README's shell examples, checked against the real command line:
//! every `wasmproc …` command in a ```` ```sh ```` block must parse with
//! this binary's flags (after the same hoisting of `run`'s options), so
//! the README cannot drift from the program. (`tests/cli/readme.rs` runs
//! them, in order, as they are written.)

use crate::flags::parse;

/// Splits `line` at `|`, `&&`, `&` and `;` outside quotes, without the comment
/// (` #` outside quotes).
fn commands(line: &str) -> Vec<String> {
    let (mut commands, mut current) = (Vec::new(), String::new());
    let (mut single, mut double) = (false, false);
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            '#' if !single && !double && current.ends_with(' ') => break,
            '|' | ';' if !single && !double => {
                commands.push(std::mem::take(&mut current));
                continue;
            }
            // `&&`, and a lone `&` (a command sent to the background).
            '&' if !single && !double => {
                if chars.peek() == Some(&'&') {
                    chars.next();
                }
                commands.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    commands.push(current);
    commands
}

/// Every `wasmproc` command in the README's `sh` blocks, as words.
fn readme_commands() -> Vec<Vec<String>> {
    let readme = include_str!("../../../README.md");
    let mut found = Vec::new();
    let mut in_sh = false;
    for line in readme.lines() {
        if line.starts_with("```") {
            in_sh = line == "```sh";
            continue;
        }
        if !in_sh {
            continue;
        }
        for command in commands(line) {
            let command = command
                .trim()
                .replace("cargo run --bin wasmproc --", "wasmproc")
                .replace("$P", "primes.wasm");
            if !command.starts_with("wasmproc ") {
                continue;
            }
            let words = shlex::split(&command).unwrap_or_else(|| {
                panic!("the README's `{command}` does not split as shell words")
            });
            found.push(words);
        }
    }
    found
}

#[test]
fn every_wasmproc_command_in_the_readme_parses() {
    let commands = readme_commands();
    assert!(
        commands.len() >= 20,
        "only {} commands found",
        commands.len()
    );
    for words in commands {
        if let Err(error) = parse(words.iter().map(Into::into).collect()) {
            panic!("the README's `{}` does not parse: {error}", words.join(" "));
        }
    }
}

#[test]
fn commands_split_at_pipes_and_lose_their_comments() {
    assert_eq!(
        commands(r#"seq 3 | wasmproc map m.wasm --args '"a|b"' -   # a comment"#),
        ["seq 3 ", r#" wasmproc map m.wasm --args '"a|b"' -   "#]
    );
    assert_eq!(commands("a && b"), ["a ", " b"]);
}

#[test]
fn every_file_the_readme_links_to_is_in_the_repository() {
    let readme = include_str!("../../../README.md");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut checked = 0;
    for link in readme.split("](").skip(1) {
        let target = link.split(')').next().unwrap_or_default();
        let path = target.split('#').next().unwrap_or_default();
        if path.is_empty() || path.contains("://") || path.starts_with("mailto:") {
            continue;
        }
        assert!(
            root.join(path).exists(),
            "the README links to `{path}`, which is not here"
        );
        checked += 1;
    }
    assert!(
        checked > 0,
        "no local link found: is the README where it was?"
    );
}
