//! `--args` mistakes said in the user's words: what was wrong with the
//! argument as typed, and a form that works (serde's messages speak of
//! `null`, tuples and trailing characters the user never typed).

use wasmproc::{Outcome, TaskSignature};

use crate::usage;

/// Refuses `--args` text that is not JSON, saying how to write it.
pub(crate) fn check_json(text: &str) -> anyhow::Result<()> {
    let Err(error) = serde_json::from_str::<serde::de::IgnoredAny>(text) else {
        return Ok(());
    };
    let first = text.trim_start().chars().next();
    let looks_like_json = first.is_some_and(|c| "{[\"-0123456789".contains(c))
        || ["true", "false", "null"]
            .iter()
            .any(|word| text.trim_start().starts_with(word));
    Err(usage(if looks_like_json {
        format!(
            "--args is not valid JSON ({error}): write the argument as JSON, e.g. --args 3, \
             --args '\"text\"', --args '[1, 2]' or --args '{{\"n\": 3}}'"
        )
    } else {
        format!(
            "--args {text} is not JSON: a string must be quoted, as JSON wants: --args '{}'",
            serde_json::Value::String(text.to_owned())
        )
    }))
}

/// Rewrites the message of an argument that does not fit task `name`,
/// quoting its signature when the SDK recorded one.
pub(crate) fn explain(
    name: &str,
    signature: Option<&TaskSignature>,
    given: Given<'_>,
    outcome: &mut Outcome,
) {
    let (given, from_line) = match given {
        Given::Flag(given) => (given, false),
        Given::Line => (Some(""), true),
    };
    // The SDK's words for an argument of the wrong shape (its contract,
    // read by the library).
    let Some(detail) = outcome.argument_misfit() else {
        return;
    };
    let detail = detail
        .split(" at line ")
        .next()
        .unwrap_or(detail)
        .to_owned();
    let array_len = given
        .and_then(|json| serde_json::from_str::<serde_json::Value>(json).ok())
        .and_then(|value| value.as_array().map(Vec::len));
    let none_given = given.is_none() && detail.starts_with("invalid type: null, expected ");
    let (headline, fix) = if none_given {
        let wanted = &detail["invalid type: null, expected ".len()..];
        (
            format!("`{name}` takes an argument and none was given"),
            format!("add --args JSON{}", example(wanted)),
        )
    } else if let Some(rest) = detail.strip_prefix("invalid length ") {
        // "invalid length 1, expected a tuple of size 2"
        let got = rest.split(',').next().unwrap_or("?");
        let wanted = rest.rsplit(' ').next().unwrap_or("?");
        (
            format!("`{name}` takes {wanted} values and --args gives {got}"),
            format!("pass a JSON array of {wanted}, one value per parameter"),
        )
    } else if detail.starts_with("trailing characters") {
        (
            match array_len {
                Some(got) => format!("`{name}` takes fewer values than the {got} --args gives"),
                None => format!("`{name}`'s argument has more in it than the task takes"),
            },
            "pass one value per parameter".to_owned(),
        )
    } else {
        (format!("the argument does not fit `{name}`"), String::new())
    };
    let fix = match signature {
        Some(signature) => shape(signature, from_line),
        None => fix,
    };
    outcome.message = Some(match fix.is_empty() {
        true => format!("{headline} ({detail})"),
        false => format!("{headline}: {fix} ({detail})"),
    });
}

/// Where a task's argument came from.
pub(crate) enum Given<'a> {
    /// `run --args`, if given.
    Flag(Option<&'a str>),
    /// A line of `map`'s input.
    Line,
}

/// What `signature` takes, in words, with an example (for a `map` input
/// line when `from_line`, else for `--args`).
fn shape(signature: &TaskSignature, from_line: bool) -> String {
    // A complete example from the recorded shapes; from the Rust types'
    // names where a shape is missing (a type without `Describe`, an older
    // SDK).
    let values: Vec<String> = signature
        .params
        .iter()
        .map(|p| {
            p.shape
                .as_ref()
                .and_then(wasmproc::Shape::example)
                .unwrap_or_else(|| example_value(&p.ty))
        })
        .collect();
    let quoted = |json: &str| {
        if from_line {
            format!("the line {json}")
        } else if json.chars().all(|c| c.is_ascii_alphanumeric() || c == '.') {
            format!("--args {json}")
        } else {
            format!("--args '{json}'")
        }
    };
    match values.as_slice() {
        [] if from_line => format!("`{signature}` takes no argument: give the line null"),
        [] => format!("`{signature}` takes no argument: run it without --args"),
        [one] => format!("`{signature}` takes one value, e.g. {}", quoted(one)),
        many => format!(
            "`{signature}` takes a JSON array of {} values, one per parameter, e.g. {}",
            many.len(),
            quoted(&format!("[{}]", many.join(", ")))
        ),
    }
}

/// An example JSON value of the Rust type `ty`, as written.
fn example_value(ty: &str) -> String {
    let ty = ty.trim_start_matches('&');
    let integer = [
        "u8", "u16", "u32", "u64", "u128", "usize", "i8", "i16", "i32", "i64", "i128", "isize",
    ];
    if integer.contains(&ty) {
        "1".into()
    } else if ty == "f32" || ty == "f64" {
        "1.5".into()
    } else if ty == "bool" {
        "true".into()
    } else if ty == "String" || ty == "str" || ty.starts_with("Cow<") {
        "\"text\"".into()
    } else if ty == "char" {
        "\"a\"".into()
    } else if ty.starts_with("Option<") {
        "null".into()
    } else if ["Vec<", "VecDeque<", "HashSet<", "BTreeSet<", "[", "("]
        .iter()
        .any(|start| ty.starts_with(start))
    {
        "[]".into()
    } else if ty.starts_with("HashMap<") || ty.starts_with("BTreeMap<") {
        "{}".into()
    } else {
        // A struct or enum of the guest's: its fields are in its source.
        "{…}".into()
    }
}

/// `, e.g. --args …` for a parameter serde describes as `wanted`.
fn example(wanted: &str) -> String {
    let example = if wanted.starts_with("a string") {
        "'\"text\"'".to_owned()
    } else if let Some(size) = wanted.strip_prefix("a tuple of size ") {
        let size: usize = size.parse().unwrap_or(2);
        format!("'[{}]'", vec!["…"; size].join(", "))
    } else if wanted.starts_with("struct ") || wanted.starts_with("a map") {
        "'{\"field\": …}'".to_owned()
    } else if wanted.starts_with("a sequence") {
        "'[…]'".to_owned()
    } else if [
        "u8", "u16", "u32", "u64", "i8", "i16", "i32", "i64", "f32", "f64", "usize",
    ]
    .iter()
    .any(|number| wanted.starts_with(number))
    {
        "3".to_owned()
    } else if wanted.starts_with("a boolean") {
        "true".to_owned()
    } else {
        return String::new();
    };
    format!(", e.g. --args {example}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmproc::ExitStatus;

    fn misfit(detail: &str) -> Outcome {
        Outcome::not_run(
            ExitStatus::BadInvocation,
            format!(
                "the argument does not fit the task's parameter type: {detail} at line 1 column 4"
            ),
        )
    }

    #[test]
    fn without_a_signature_the_message_still_names_the_fix() {
        let mut outcome = misfit("invalid type: null, expected a string");
        explain("greet", None, Given::Flag(None), &mut outcome);
        assert_eq!(
            outcome.message.unwrap(),
            "`greet` takes an argument and none was given: add --args JSON, e.g. --args \
             '\"text\"' (invalid type: null, expected a string)"
        );
    }

    #[test]
    fn examples_follow_the_parameter_types() {
        let signature = TaskSignature {
            kind: "task".into(),
            name: "f".into(),
            params: [
                ("n", "u32"),
                ("s", "&str"),
                ("v", "Vec<u8>"),
                ("c", "Config"),
            ]
            .iter()
            .map(|(name, ty)| wasmproc::Param {
                name: (*name).into(),
                ty: (*ty).into(),
                shape: None,
            })
            .collect(),
            result: "()".into(),
            result_shape: None,
        };
        assert_eq!(
            shape(&signature, false),
            "`f(n: u32, s: &str, v: Vec<u8>, c: Config)` takes a JSON array of 4 values, one \
             per parameter, e.g. --args '[1, \"text\", [], {…}]'"
        );
    }

    #[test]
    fn a_recorded_shape_gives_a_complete_example() {
        let signature: TaskSignature = serde_json::from_str(
            r#"{"kind":"task","name":"polar","params":[{"name":"p","type":"Point","shape":{"record":"Point","fields":[{"name":"x","type":"f64","shape":"number"},{"name":"y","type":"f64","shape":"number"}]}}],"result":"Polar"}"#,
        )
        .unwrap();
        assert_eq!(
            shape(&signature, false),
            "`polar(p: Point) -> Polar` takes one value, e.g. --args '{\"x\": 0.0, \"y\": 0.0}'"
        );
        assert_eq!(
            shape(&signature, true),
            "`polar(p: Point) -> Polar` takes one value, e.g. the line {\"x\": 0.0, \"y\": 0.0}"
        );
    }
}
