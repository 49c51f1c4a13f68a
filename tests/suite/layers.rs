//! The layers point one way. Read from the source of the three host
//! crates, `host/src` (the library), `host/cli/src` and `host/cluster/src`:
//!
//! - The library's top-level modules are declared in `lib.rs` from the
//!   bottom layer up; a module may use only modules declared before it. The
//!   cluster's are listed bottom-up in ARCHITECTURE.md's cluster table.
//! - In every crate, no two modules of one directory (the crate's own
//!   included) use each other, directly or through others (their items in
//!   the directory's `mod.rs` are the shared surface, and do not count).
//!   The directories are walked, so new files are covered as they come.
//! - The library's root re-exports (`pub use` in `lib.rs`) name items of
//!   modules that exist, each item once, under one path.
//!
//! Paths are read from code, not comments: `crate::…`, `super::…` and
//! `self::…`, brace groups included.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module's path below the crate root, e.g. `["pool", "process"]`.
type ModPath = Vec<String>;

struct Source {
    module: ModPath,
    /// The file, from the repository root (what a failure names).
    file: String,
    code: String,
}

/// The repository root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The library's source directory.
fn host_src() -> PathBuf {
    root().join("host/src")
}

/// The source directories of the three host crates, from the repository
/// root: the library, the binary's and the cluster's.
const CRATES: [&str; 3] = ["host/src", "host/cli/src", "host/cluster/src"];

/// Every module of the library.
fn sources() -> Vec<Source> {
    crate_sources("host/src")
}

/// Every module of the crate whose source directory is `src` (from the
/// repository root), its library root `lib.rs` at the top; `main.rs`, a
/// crate of its own, is left out.
fn crate_sources(src: &str) -> Vec<Source> {
    let mut found = Vec::new();
    collect(&root().join(src), src, &mut Vec::new(), &mut found);
    assert!(
        found.iter().any(|s| s.module.is_empty()),
        "{src} has its lib.rs"
    );
    found
}

fn collect(dir: &Path, shown: &str, prefix: &mut ModPath, found: &mut Vec<Source>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{shown} is readable: {e}"))
        .map(|e| e.expect("a directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let shown = format!("{shown}/{}", path.file_name().unwrap().to_string_lossy());
        if path.is_dir() {
            prefix.push(name);
            collect(&path, &shown, prefix, found);
            prefix.pop();
        } else if path.extension().is_some_and(|e| e == "rs") {
            if prefix.is_empty() && name == "main" {
                continue;
            }
            let mut module = prefix.clone();
            if name != "mod" && name != "lib" {
                module.push(name);
            }
            let text = std::fs::read_to_string(&path).unwrap();
            found.push(Source {
                module,
                file: shown,
                code: without_comments(&text),
            });
        }
    }
}

fn without_comments(text: &str) -> String {
    text.lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every module path a piece of code refers to, made absolute from `here`
/// (the module the code is in).
fn references(here: &ModPath, code: &str) -> Vec<ModPath> {
    let mut found = Vec::new();
    let bytes = code.as_bytes();
    let is_ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    for start in 0..bytes.len() {
        if !code.is_char_boundary(start)
            || (start > 0 && (is_ident(bytes[start - 1]) || bytes[start - 1] == b':'))
        {
            continue;
        }
        let rest = &code[start..];
        let base: ModPath = if rest.starts_with("crate::") {
            Vec::new()
        } else if rest.starts_with("super::") || rest.starts_with("self::") {
            here.clone()
        } else {
            continue;
        };
        parse_path(rest, base, &mut found);
    }
    found
}

/// Parses a path such as `super::super::a::{b, c::d}` into absolute paths.
fn parse_path(text: &str, mut path: ModPath, found: &mut Vec<ModPath>) {
    let mut rest = text;
    loop {
        let ident_len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        let ident = &rest[..ident_len];
        match ident {
            "crate" | "self" => {}
            "super" => {
                path.pop();
            }
            "" => {
                if let Some(group) = rest.strip_prefix('{') {
                    for part in split_group(group) {
                        parse_path(part.trim(), path.clone(), found);
                    }
                }
                found.push(path);
                return;
            }
            name => path.push(name.to_owned()),
        }
        match rest[ident_len..].strip_prefix("::") {
            Some(next) => rest = next,
            None => {
                found.push(path);
                return;
            }
        }
    }
}

/// The top-level, comma-separated parts of a brace group's inside.
fn split_group(group: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut from) = (0, 0);
    for (at, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => {
                parts.push(&group[from..at]);
                return parts;
            }
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&group[from..at]);
                from = at + 1;
            }
            _ => {}
        }
    }
    parts
}

/// The module tree: each module path and its child modules.
fn tree(sources: &[Source]) -> BTreeMap<ModPath, BTreeSet<String>> {
    let mut tree: BTreeMap<ModPath, BTreeSet<String>> = BTreeMap::new();
    for source in sources {
        for depth in 0..source.module.len() {
            tree.entry(source.module[..depth].to_vec())
                .or_default()
                .insert(source.module[depth].clone());
        }
    }
    tree
}

/// Edges between sibling modules: `(parent, from child, to child)`.
fn sibling_edges(sources: &[Source]) -> BTreeSet<(ModPath, String, String)> {
    let tree = tree(sources);
    let mut edges = BTreeSet::new();
    for source in sources {
        for target in references(&source.module, &source.code) {
            let common = source
                .module
                .iter()
                .zip(&target)
                .take_while(|(a, b)| a == b)
                .count();
            let (Some(from), Some(to)) = (source.module.get(common), target.get(common)) else {
                continue; // within one module, or up to an ancestor's items
            };
            let parent = source.module[..common].to_vec();
            if tree
                .get(&parent)
                .is_some_and(|children| children.contains(to))
            {
                edges.insert((parent, from.clone(), to.clone()));
            }
        }
    }
    edges
}

/// The top-level modules in the order `lib.rs` declares them.
fn declared_layers() -> Vec<String> {
    let lib = std::fs::read_to_string(host_src().join("lib.rs")).unwrap();
    lib.lines()
        .filter_map(|line| {
            let line = line.trim();
            let line = line.strip_prefix("pub ").unwrap_or(line);
            line.strip_prefix("mod ")?
                .strip_suffix(';')
                .map(str::to_owned)
        })
        .collect()
}

#[test]
fn the_path_parser_reads_every_form() {
    let here: ModPath = vec!["pool".into(), "process".into(), "child".into()];
    let found = references(
        &here,
        "use crate::error::{Error, ErrorKind}; use super::{protocol::ToChild, WorkerPids};\n\
         let x = super::super::job::Job::new(); crate::run::run_chunk(); notcrate::x",
    );
    let has = |path: &[&str]| found.iter().any(|p| p == path);
    assert!(has(&["error", "Error"]) && has(&["error", "ErrorKind"]));
    assert!(has(&["pool", "process", "protocol", "ToChild"]));
    assert!(has(&["pool", "process", "WorkerPids"]));
    assert!(has(&["pool", "job", "Job", "new"]));
    assert!(has(&["run", "run_chunk"]));
    assert!(!found.iter().any(|p| p.first().is_some_and(|s| s == "x")));
}

#[test]
fn top_level_modules_use_only_the_layers_below_them() {
    let sources = sources();
    let layers = declared_layers();
    assert!(layers.len() > 5, "lib.rs declares the layers: {layers:?}");
    let rank = |name: &str| layers.iter().position(|l| l == name);
    let mut violations = Vec::new();
    for (parent, from, to) in sibling_edges(&sources) {
        if !parent.is_empty() {
            continue;
        }
        match (rank(&from), rank(&to)) {
            (Some(a), Some(b)) if b < a => {}
            _ => violations.push(format!("`{from}` uses `{to}`, which is not below it")),
        }
    }
    assert!(
        violations.is_empty(),
        "layers must point down (lib.rs declares them bottom-up: {layers:?}):\n{}",
        violations.join("\n")
    );
}

/// The cluster's modules, bottom-up, as the first column of
/// ARCHITECTURE.md's table under "The cluster" lists them.
fn cluster_layers() -> Vec<String> {
    let map = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    let section = map
        .split("\n### ")
        .find(|s| s.starts_with("The cluster"))
        .expect("ARCHITECTURE.md has a section on the cluster");
    section
        .lines()
        .filter_map(|line| line.strip_prefix("| `")?.split_once(".rs`"))
        // A directory's module is its `mod.rs`; the files inside it are
        // checked against each other by the circle test.
        .map(|(name, _)| name.strip_suffix("/mod").unwrap_or(name))
        .filter(|name| !name.contains('/'))
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_clusters_modules_use_only_those_listed_above_them() {
    let layers = cluster_layers();
    assert!(layers.len() > 5, "the cluster's table: {layers:?}");
    let sources = crate_sources("host/cluster/src");
    let rank = |name: &str| layers.iter().position(|l| l == name);
    let mut violations = Vec::new();
    for (parent, from, to) in sibling_edges(&sources) {
        if !parent.is_empty() {
            continue;
        }
        // A module the table leaves out (`error.rs`) has no place to check.
        if let (Some(a), Some(b)) = (rank(&from), rank(&to))
            && b > a
        {
            violations.push(format!(
                "{} uses {}, listed above it",
                file_of(&sources, &parent, &from),
                file_of(&sources, &parent, &to)
            ));
        }
    }
    let unlisted: Vec<&str> = sources
        .iter()
        .filter(|s| s.module.len() == 1 && rank(&s.module[0]).is_none())
        .map(|s| s.file.as_str())
        .collect();
    assert!(
        violations.is_empty(),
        "the cluster's modules must use only those ARCHITECTURE.md lists above \
         them ({layers:?}; not listed: {unlisted:?}):\n{}",
        violations.join("\n")
    );
}

#[test]
fn no_two_modules_of_a_directory_use_each_other() {
    let mut circles = Vec::new();
    for src in CRATES {
        let sources = crate_sources(src);
        let mut by_parent: BTreeMap<ModPath, Vec<(String, String)>> = BTreeMap::new();
        for (parent, from, to) in sibling_edges(&sources) {
            by_parent.entry(parent).or_default().push((from, to));
        }
        for (parent, edges) in by_parent {
            if let Some(cycle) = find_cycle(&edges) {
                let files: Vec<&str> = cycle
                    .iter()
                    .map(|name| file_of(&sources, &parent, name))
                    .collect();
                circles.push(format!("in {src}: {}", files.join(" -> ")));
            }
        }
    }
    assert!(
        circles.is_empty(),
        "modules of one directory use each other in a circle (move what both \
         need down, or into their parent):\n{}",
        circles.join("\n")
    );
}

/// The file of module `parent::name` (`name.rs`, or `name/mod.rs`).
fn file_of<'s>(sources: &'s [Source], parent: &ModPath, name: &'s str) -> &'s str {
    let mut module = parent.clone();
    module.push(name.to_owned());
    sources
        .iter()
        .find(|s| s.module == module)
        .map_or(name, |s| s.file.as_str())
}

/// The paths of the library's root re-exports (`pub use` in `lib.rs`),
/// each to its item, e.g. `["pool", "Pool"]`.
fn root_reexports() -> Vec<ModPath> {
    let lib = without_comments(&std::fs::read_to_string(host_src().join("lib.rs")).unwrap());
    let mut found = Vec::new();
    let mut rest = lib.as_str();
    while let Some(at) = rest.find("pub use ") {
        rest = &rest[at + "pub use ".len()..];
        let end = rest.find(';').expect("a `pub use` ends with `;`");
        let mut paths = Vec::new();
        parse_path(&rest[..end], Vec::new(), &mut paths);
        // A brace group also yields its prefix: keep only whole paths.
        let whole: Vec<ModPath> = paths
            .iter()
            .filter(|p| !paths.iter().any(|q| q.len() > p.len() && q.starts_with(p)))
            .cloned()
            .collect();
        found.extend(whole);
        rest = &rest[end..];
    }
    found
}

#[test]
fn root_reexports_name_existing_items_once_each() {
    let sources = sources();
    let declared = declared_layers();
    let reexports = root_reexports();
    assert!(reexports.len() > 20, "lib.rs re-exports: {reexports:?}");
    let module = |path: &[String]| sources.iter().find(|s| s.module == path);
    let mut problems = Vec::new();
    let mut names: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for path in &reexports {
        let shown = path.join("::");
        let name = path.last().expect("a path names something");
        names.entry(name).or_default().push(shown.clone());
        if !declared.contains(&path[0]) {
            let through = reexports
                .iter()
                .find(|other| other.last() == Some(&path[0]) && module(other).is_some());
            problems.push(match through {
                Some(other) => format!(
                    "`{shown}` goes through the re-exported module `{}`: the item has two \
                     paths, `{name}` and `{}::{name}`",
                    other.join("::"),
                    path[0]
                ),
                None => format!("`{shown}`: `{}` is not a module lib.rs declares", path[0]),
            });
            continue;
        }
        if module(path).is_some() {
            continue; // a module itself
        }
        let parent = &path[..path.len() - 1];
        match module(parent) {
            None => problems.push(format!(
                "`{shown}`: there is no module `{}`",
                parent.join("::")
            )),
            Some(source) if !has_word(&source.code, name) => {
                problems.push(format!("`{shown}`: {} has no `{name}`", source.file))
            }
            Some(_) => {}
        }
    }
    for (name, paths) in names {
        if paths.len() > 1 {
            problems.push(format!("`{name}` is re-exported twice: {paths:?}"));
        }
    }
    assert!(
        problems.is_empty(),
        "lib.rs's re-exports must each name an item of a declared module, once:\n{}",
        problems.join("\n")
    );
}

/// Whether `word` appears in `code` as a whole identifier.
fn has_word(code: &str, word: &str) -> bool {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    code.match_indices(word).any(|(at, _)| {
        let before = code[..at].chars().next_back();
        let after = code[at + word.len()..].chars().next();
        !before.is_some_and(is_ident) && !after.is_some_and(is_ident)
    })
}

/// A cycle in a directed graph, if there is one.
fn find_cycle(edges: &[(String, String)]) -> Option<Vec<String>> {
    fn visit<'a>(
        node: &'a str,
        edges: &'a [(String, String)],
        stack: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|n| *n == node) {
            let mut cycle: Vec<String> = stack[at..].iter().map(|s| s.to_string()).collect();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if !done.insert(node) {
            return None;
        }
        stack.push(node);
        for (from, to) in edges {
            if from == node
                && let Some(cycle) = visit(to, edges, stack, done)
            {
                return Some(cycle);
            }
        }
        stack.pop();
        None
    }
    let mut done = BTreeSet::new();
    for (from, _) in edges {
        if let Some(cycle) = visit(from, edges, &mut Vec::new(), &mut done) {
            return Some(cycle);
        }
    }
    None
}

#[test]
fn the_cycle_finder_finds_cycles() {
    let edge = |a: &str, b: &str| (a.to_owned(), b.to_owned());
    assert_eq!(find_cycle(&[edge("a", "b"), edge("b", "c")]), None);
    assert!(find_cycle(&[edge("a", "b"), edge("b", "c"), edge("c", "a")]).is_some());
}
