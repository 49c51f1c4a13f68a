//! What the guest SDK records of each task: its parameters and result as
//! written in Rust, with their JSON shapes (the fields of a record, the
//! variants of an enum, as the SDK's `Describe` computes them), one JSON
//! line per task in the module's `wasmproc_signatures` custom section.
//! `inspect` shows them and messages about an argument of the wrong shape
//! quote them with a complete example. Modules without the section (any
//! WASI command, older SDK builds) simply have none; older SDK builds have
//! no shapes.

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
    /// The JSON shape of a successful result (`None` from an SDK that did
    /// not record shapes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_shape: Option<Shape>,
}

impl TaskSignature {
    /// Whether it is a connection handler (`#[handler]`), which `serve`
    /// runs with a connection, not `run` with an argument.
    pub fn is_handler(&self) -> bool {
        self.kind == "handler"
    }

    /// A complete example of its argument as JSON, when every parameter's
    /// shape is known: `{"x": 0.0, "y": 0.0}`, `[0, 0]` for two integers,
    /// `null` for none.
    pub fn example_argument(&self) -> Option<String> {
        let examples: Option<Vec<String>> = self
            .params
            .iter()
            .map(|param| param.shape.as_ref().and_then(Shape::example))
            .collect();
        match examples?.as_slice() {
            [] => Some("null".to_owned()),
            [one] => Some(one.clone()),
            many => Some(format!("[{}]", many.join(", "))),
        }
    }

    /// The records and enums its parameters and result use, each once, in
    /// the order they appear: `Point { x: f64, y: f64 }`.
    pub fn named_shapes(&self) -> Vec<&Shape> {
        let mut found = Vec::new();
        let shapes = self.params.iter().filter_map(|param| param.shape.as_ref());
        for shape in shapes.chain(self.result_shape.as_ref()) {
            shape.collect_named(&mut found);
        }
        found
    }
}

/// One parameter of a [`TaskSignature`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Param {
    /// The parameter's name (its pattern, as written).
    pub name: String,
    /// Its Rust type, as written.
    #[serde(rename = "type")]
    pub ty: String,
    /// Its JSON shape (`None` from an SDK that did not record shapes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shape: Option<Shape>,
}

/// The JSON form of a parameter or result, as the guest SDK recorded it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Shape {
    /// A JSON integer.
    Integer,
    /// A JSON number.
    Number,
    /// A JSON string.
    String,
    /// A JSON string of one character (a Rust `char`, a WIT `char`).
    Char,
    /// `true` or `false`.
    Bool,
    /// `null`.
    Null,
    /// Not described by the guest: whatever its decoder accepts.
    Any,
    /// An array of values of one shape.
    List(Box<Shape>),
    /// `null` or the value.
    Option(Box<Shape>),
    /// An object from strings to values of one shape.
    Map(Box<Shape>),
    /// An array of fixed length.
    Tuple(Vec<Shape>),
    /// An object with named fields (a struct).
    #[serde(untagged)]
    Record {
        /// The Rust type's name.
        record: String,
        /// Its fields, in order.
        fields: Vec<ShapeField>,
    },
    /// One of several variants: a unit variant is its name as a string,
    /// another `{"ShapeVariant": payload}`.
    #[serde(untagged)]
    Enum {
        /// The Rust type's name.
        #[serde(rename = "enum")]
        name: String,
        /// Its variants, in order.
        variants: Vec<ShapeVariant>,
    },
}

/// A field of a [`Shape::Record`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ShapeField {
    /// Its name in JSON.
    pub name: String,
    /// Its Rust type, as written.
    #[serde(rename = "type")]
    pub ty: String,
    /// Its shape.
    pub shape: Shape,
    /// Whether it may be left out.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub optional: bool,
}

/// A variant of a [`Shape::Enum`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ShapeVariant {
    /// Its name in JSON.
    pub name: String,
    /// Its payload's shape ([`Shape::Null`] for a unit variant).
    pub shape: Shape,
}

impl Shape {
    /// An example value of this shape, as JSON text with a space after
    /// each `,` and `:` (`{"x": 0.0, "y": 0.0}`; a record's optional fields
    /// left out); `None` where a part is [`Shape::Any`].
    pub fn example(&self) -> Option<String> {
        Some(match self {
            Shape::Integer => "0".to_owned(),
            Shape::Number => "0.0".to_owned(),
            Shape::String => "\"\"".to_owned(),
            Shape::Char => "\"a\"".to_owned(),
            Shape::Bool => "false".to_owned(),
            Shape::Null | Shape::Option(_) => "null".to_owned(),
            Shape::Any => return None,
            Shape::List(_) => "[]".to_owned(),
            Shape::Map(_) => "{}".to_owned(),
            Shape::Tuple(items) => {
                let items: Option<Vec<String>> = items.iter().map(Shape::example).collect();
                format!("[{}]", items?.join(", "))
            }
            Shape::Record { fields, .. } => {
                let fields: Option<Vec<String>> = fields
                    .iter()
                    .filter(|field| !field.optional)
                    .map(|field| {
                        Some(format!(
                            "{}: {}",
                            json_string(&field.name),
                            field.shape.example()?
                        ))
                    })
                    .collect();
                format!("{{{}}}", fields?.join(", "))
            }
            Shape::Enum { variants, .. } => {
                let first = variants.first()?;
                match first.shape {
                    Shape::Null => json_string(&first.name),
                    ref payload => {
                        format!("{{{}: {}}}", json_string(&first.name), payload.example()?)
                    }
                }
            }
        })
    }

    /// The records and enums in this shape, each once, outermost first.
    fn collect_named<'a>(&'a self, found: &mut Vec<&'a Shape>) {
        match self {
            Shape::List(inner) | Shape::Option(inner) | Shape::Map(inner) => {
                inner.collect_named(found)
            }
            Shape::Tuple(items) => items.iter().for_each(|item| item.collect_named(found)),
            Shape::Record { fields, .. } if !found.contains(&self) => {
                found.push(self);
                fields
                    .iter()
                    .for_each(|field| field.shape.collect_named(found));
            }
            Shape::Enum { variants, .. } if !found.contains(&self) => {
                found.push(self);
                variants
                    .iter()
                    .for_each(|variant| variant.shape.collect_named(found));
            }
            _ => {}
        }
    }

    /// A short name of the shape: `integer`, `[string]`, `Point`, `number or null`.
    fn short(&self) -> String {
        match self {
            Shape::Integer => "integer".into(),
            Shape::Number => "number".into(),
            Shape::String => "string".into(),
            Shape::Char => "char".into(),
            Shape::Bool => "bool".into(),
            Shape::Null => "null".into(),
            Shape::Any => "any".into(),
            Shape::List(item) => format!("[{}]", item.short()),
            Shape::Option(item) => format!("{} or null", item.short()),
            Shape::Map(value) => format!("{{string: {}}}", value.short()),
            Shape::Tuple(items) => {
                let items: Vec<String> = items.iter().map(Shape::short).collect();
                format!("[{}]", items.join(", "))
            }
            Shape::Record { record, .. } => record.clone(),
            Shape::Enum { name, .. } => name.clone(),
        }
    }
}

impl fmt::Display for Shape {
    /// A record as `Point { x: f64, y: f64 }` (an optional field as
    /// `top?: usize`), an enum as `Mode: "Fast" | {"Custom": integer}`,
    /// anything else by its short name.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Shape::Record { record, fields } => {
                write!(f, "{record} {{")?;
                for (i, field) in fields.iter().enumerate() {
                    let optional = if field.optional { "?" } else { "" };
                    let comma = if i > 0 { "," } else { "" };
                    write!(f, "{comma} {}{optional}: {}", field.name, field.ty)?;
                }
                f.write_str(if fields.is_empty() { "}" } else { " }" })
            }
            Shape::Enum { name, variants } => {
                write!(f, "{name}:")?;
                for (i, variant) in variants.iter().enumerate() {
                    let bar = if i > 0 { " |" } else { "" };
                    match variant.shape {
                        Shape::Null => write!(f, "{bar} {}", json_string(&variant.name))?,
                        ref payload => write!(
                            f,
                            "{bar} {{{}: {}}}",
                            json_string(&variant.name),
                            payload.short()
                        )?,
                    }
                }
                Ok(())
            }
            other => f.write_str(&other.short()),
        }
    }
}

/// `text` as a JSON string.
fn json_string(text: &str) -> String {
    serde_json::Value::String(text.to_owned()).to_string()
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
        assert_eq!(signatures[1].example_argument().as_deref(), Some("null"));
        assert_eq!(signatures[0].example_argument(), None, "no shapes recorded");
        assert!(read(&wat::parse_str("(module)").unwrap()).is_empty());
    }

    #[test]
    fn shapes_give_fields_and_complete_examples() {
        let line = r#"{"kind":"task","name":"polar","params":[{"name":"p","type":"Point","shape":{"record":"Point","fields":[{"name":"x","type":"f64","shape":"number"},{"name":"y","type":"f64","shape":"number"},{"name":"tag","type":"Option<String>","shape":{"option":"string"},"optional":true}]}},{"name":"m","type":"Mode","shape":{"enum":"Mode","variants":[{"name":"Fast","shape":"null"},{"name":"Custom","shape":{"list":"integer"}}]}}],"result":"Vec<u8>","result_shape":{"list":"integer"}}"#;
        let signature: TaskSignature = serde_json::from_str(line).unwrap();
        assert_eq!(
            signature.example_argument().as_deref(),
            Some(r#"[{"x": 0.0, "y": 0.0}, "Fast"]"#)
        );
        let named: Vec<String> = signature
            .named_shapes()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            named,
            [
                "Point { x: f64, y: f64, tag?: Option<String> }",
                r#"Mode: "Fast" | {"Custom": [integer]}"#
            ]
        );
        // What `inspect --json` writes reads back the same.
        let again: TaskSignature =
            serde_json::from_str(&serde_json::to_string(&signature).unwrap()).unwrap();
        assert_eq!(again, signature);
        let any: Shape = serde_json::from_str(r#""any""#).unwrap();
        assert_eq!(any.example(), None);
        // A `char`'s example must be one character: `""` is refused.
        let char_and_text: Shape = serde_json::from_str(r#"{"tuple":["char","string"]}"#).unwrap();
        assert_eq!(char_and_text.example().as_deref(), Some(r#"["a", ""]"#));
        assert_eq!(char_and_text.to_string(), "[char, string]");
    }
}
