//! The bundled example: text statistics, as a WASI command and as typed
//! wasmproc tasks in one module.
//!
//! As a command it reads the files named in its arguments (from directories
//! the host grants) and prints one JSON line per file:
//!
//! ```sh
//! cargo build --release -p wasmproc-guest --example text_stats --target wasm32-wasip1
//! wasmproc run --dir .::/repo target/wasm32-wasip1/release/examples/text_stats.wasm -- /repo/README.md
//! ```
//!
//! As typed tasks it takes serde values:
//!
//! ```sh
//! wasmproc run target/wasm32-wasip1/release/examples/text_stats.wasm \
//!     --task top_words --args '{"text": "the cat and the hat", "top": 2}'
//! ```

use std::collections::HashMap;
use std::process::ExitCode;

use serde::{Deserialize, Serialize};
use wasmproc_guest::{Failure, task};

/// The argument of [`top_words`]. `Describe` records its fields in the
/// module, for `wasmproc inspect` and for messages about a mistaken
/// argument.
#[derive(Deserialize, wasmproc_guest::Describe)]
pub struct Doc {
    /// The text to count words in.
    pub text: String,
    /// How many of the most frequent words to return (default 10).
    #[serde(default = "default_top")]
    pub top: usize,
}

fn default_top() -> usize {
    10
}

/// One word and how often it occurs.
#[derive(Serialize, wasmproc_guest::Describe)]
pub struct WordCount {
    /// The word, lowercased.
    pub word: String,
    /// Its number of occurrences.
    pub count: usize,
}

/// Summary figures of a text, as `wc` prints them.
#[derive(Serialize, wasmproc_guest::Describe)]
pub struct Stats {
    /// Lines (newline characters).
    pub lines: usize,
    /// Whitespace-separated words.
    pub words: usize,
    /// Bytes of UTF-8.
    pub bytes: usize,
}

/// Counts lines, words and bytes.
#[task]
fn stats(text: String) -> Stats {
    Stats {
        lines: text.matches('\n').count(),
        words: text.split_whitespace().count(),
        bytes: text.len(),
    }
}

/// The `top` most frequent words, most frequent first (ties alphabetical).
#[task]
fn top_words(doc: Doc) -> Result<Vec<WordCount>, Failure> {
    if doc.top == 0 {
        return Err(Failure::new(2, "`top` must be at least 1"));
    }
    let mut counts: HashMap<String, usize> = HashMap::new();
    let words = doc
        .text
        .split(|c: char| !c.is_alphanumeric() && c != '\'')
        .filter(|w| !w.is_empty());
    for word in words {
        *counts.entry(word.to_lowercase()).or_default() += 1;
    }
    let mut counts: Vec<WordCount> = counts
        .into_iter()
        .map(|(word, count)| WordCount { word, count })
        .collect();
    counts.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.word.cmp(&b.word)));
    counts.truncate(doc.top);
    Ok(counts)
}

/// The command: one JSON line per file named in argv; exit code 1 if any
/// file could not be read (the sandbox grants only `--dir` directories).
fn main() -> ExitCode {
    let mut failed = false;
    for path in std::env::args().skip(1) {
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let top = top_words(Doc {
                    text: text.clone(),
                    top: 5,
                })
                .unwrap_or_default();
                let line =
                    serde_json::json!({"file": path, "stats": stats(text), "top_words": top});
                println!("{line}");
            }
            Err(error) => {
                eprintln!("text_stats: cannot read {path}: {error}");
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
