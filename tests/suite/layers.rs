//! The library's layers point one way. Read from the source of `host/src`:
//!
//! - Top-level modules are declared in `lib.rs` from the bottom layer up;
//!   a module may use only modules declared before it.
//! - Inside a module directory, no two submodules use each other, directly
//!   or through others (their items in the directory's `mod.rs` are the
//!   shared surface, and do not count).
//!
//! Paths are read from code, not comments: `crate::…`, `super::…` and
//! `self::…`, brace groups included.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module's path below the crate root, e.g. `["pool", "process"]`.
type ModPath = Vec<String>;

struct Source {
    module: ModPath,
    code: String,
}

fn host_src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../host/src")
}

fn sources() -> Vec<Source> {
    let mut found = Vec::new();
    collect(&host_src(), &mut Vec::new(), &mut found);
    found
}

fn collect(dir: &Path, prefix: &mut ModPath, found: &mut Vec<Source>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("host/src is readable")
        .map(|e| e.expect("a directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            prefix.push(name);
            collect(&path, prefix, found);
            prefix.pop();
        } else if path.extension().is_some_and(|e| e == "rs") {
            let mut module = prefix.clone();
            if name != "mod" && name != "lib" {
                module.push(name);
            }
            let text = std::fs::read_to_string(&path).unwrap();
            found.push(Source {
                module,
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

#[test]
fn no_two_submodules_use_each_other() {
    let edges = sibling_edges(&sources());
    let mut by_parent: BTreeMap<ModPath, Vec<(String, String)>> = BTreeMap::new();
    for (parent, from, to) in edges {
        if !parent.is_empty() {
            by_parent.entry(parent).or_default().push((from, to));
        }
    }
    for (parent, edges) in by_parent {
        if let Some(cycle) = find_cycle(&edges) {
            panic!(
                "submodules of `{}` use each other in a circle: {}",
                parent.join("::"),
                cycle.join(" -> ")
            );
        }
    }
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
