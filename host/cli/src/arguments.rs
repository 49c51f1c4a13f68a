//! `--args` mistakes said in the user's words: what was wrong with the
//! argument as typed, and a form that works (serde's messages speak of
//! `null`, tuples and trailing characters the user never typed).

use wasmproc::{ExitStatus, Outcome};

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

/// The prefix of the SDK's message for an argument of the wrong shape.
const MISFIT: &str = "the argument does not fit the task's parameter type: ";

/// Rewrites the message of an argument that does not fit task `name`.
pub(crate) fn explain(name: &str, given: Option<&str>, outcome: &mut Outcome) {
    if outcome.status != ExitStatus::BadInvocation {
        return;
    }
    let Some(detail) = outcome
        .message
        .as_deref()
        .and_then(|message| message.strip_prefix(MISFIT))
    else {
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
    let better = if given.is_none() && detail.starts_with("invalid type: null, expected ") {
        let wanted = &detail["invalid type: null, expected ".len()..];
        Some(format!(
            "`{name}` takes an argument ({wanted}) and none was given: add --args JSON{}",
            example(wanted)
        ))
    } else if let Some(rest) = detail.strip_prefix("invalid length ") {
        // "invalid length 1, expected a tuple of size 2"
        let got = rest.split(',').next().unwrap_or("?");
        let wanted = rest.rsplit(' ').next().unwrap_or("?");
        Some(format!(
            "`{name}` takes {wanted} values and --args gives {got}: pass a JSON array of \
             {wanted}, one value per parameter"
        ))
    } else if detail.starts_with("trailing characters") {
        Some(match array_len {
            Some(got) => format!(
                "`{name}` takes fewer values than the {got} --args gives: pass one value per \
                 parameter"
            ),
            None => format!("`{name}`'s argument has more in it than the task takes"),
        })
    } else {
        None
    };
    if let Some(better) = better {
        outcome.message = Some(format!("{better} ({detail})"));
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
