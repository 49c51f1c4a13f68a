//! What the guest SDK records of each task: its parameters and result as
//! written in Rust, one JSON line per task in the module's
//! `wasmproc_signatures` custom section. `inspect` shows them and messages
//! about an argument of the wrong shape quote them. Modules without the
//! section (any WASI command, older SDK builds) simply have none.

use std::fmt;

/// The custom section the SDK's attributes write.
pub(super) const SECTION: &str = "wasmproc_signatures";

/// A task's (or initializer's, or handler's) signature as the guest wrote
/// it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TaskSignature {
    /// `task`, `init` or `handler`.
    pub kind: String,
    /// The name it is run by.
    pub name: String,
    /// Its parameters, in order: a task with several takes a JSON array of
    /// them, one with one takes that value, one with none takes `null`.
    pub params: Vec<Param>,
    /// Its result type (`()` for none; `Result<T, E>` as written).
    pub result: String,
}

/// One parameter of a [`TaskSignature`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Param {
    /// The parameter's name (its pattern, as written).
    pub name: String,
    /// Its Rust type, as written.
    #[serde(rename = "type")]
    pub ty: String,
}

impl fmt::Display for TaskSignature {
    /// `add(a: i64, b: i64) -> i64`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}(", self.name)?;
        for (i, param) in self.params.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}: {}", param.name, param.ty)?;
        }
        f.write_str(")")?;
        if self.result != "()" {
            write!(f, " -> {}", self.result)?;
        }
        Ok(())
    }
}

/// The signatures recorded in `wasm` (none if it has no such section, and
/// lines that do not parse are skipped).
pub(super) fn read(wasm: &[u8]) -> Vec<TaskSignature> {
    let mut signatures = Vec::new();
    for payload in wasmparser::Parser::new(0).parse_all(wasm) {
        let Ok(wasmparser::Payload::CustomSection(section)) = payload else {
            continue;
        };
        if section.name() != SECTION {
            continue;
        }
        let text = String::from_utf8_lossy(section.data());
        signatures.extend(
            text.lines()
                .filter_map(|line| serde_json::from_str::<TaskSignature>(line).ok()),
        );
    }
    signatures
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_read_as_written() {
        let module = wat::parse_str(
            r#"(module (@custom "wasmproc_signatures" "{\"kind\":\"task\",\"name\":\"add\",\"params\":[{\"name\":\"a\",\"type\":\"i64\"},{\"name\":\"b\",\"type\":\"i64\"}],\"result\":\"i64\"}\n{\"kind\":\"task\",\"name\":\"ping\",\"params\":[],\"result\":\"()\"}\nnot json\n"))"#,
        )
        .unwrap();
        let signatures = read(&module);
        let shown: Vec<String> = signatures.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["add(a: i64, b: i64) -> i64", "ping()"]);
        assert!(read(&wat::parse_str("(module)").unwrap()).is_empty());
    }
}
