//! Component values to JSON, in the form `from_json` reads (see there).

use serde_json::{Map, Value as Json};
use wasmtime::component::Val;

/// The JSON form of `val`; `None` for a value that has none (a resource,
/// a future, a stream), which the caller reports.
pub(crate) fn to_json(val: &Val) -> Option<Json> {
    Some(match val {
        Val::Bool(b) => Json::Bool(*b),
        Val::S8(n) => (*n).into(),
        Val::U8(n) => (*n).into(),
        Val::S16(n) => (*n).into(),
        Val::U16(n) => (*n).into(),
        Val::S32(n) => (*n).into(),
        Val::U32(n) => (*n).into(),
        Val::S64(n) => (*n).into(),
        Val::U64(n) => (*n).into(),
        Val::Float32(n) => float(f64::from(*n)),
        Val::Float64(n) => float(*n),
        Val::Char(c) => Json::String(c.to_string()),
        Val::String(s) => Json::String(s.clone()),
        Val::List(items) | Val::Tuple(items) | Val::FixedLengthList(items) => {
            Json::Array(items.iter().map(to_json).collect::<Option<_>>()?)
        }
        Val::Map(pairs) => {
            // String keys make an object; others, an array of pairs.
            if pairs.iter().all(|(key, _)| matches!(key, Val::String(_))) {
                let mut object = Map::new();
                for (key, value) in pairs {
                    if let Val::String(key) = key {
                        object.insert(key.clone(), to_json(value)?);
                    }
                }
                Json::Object(object)
            } else {
                Json::Array(
                    pairs
                        .iter()
                        .map(|(key, value)| Some(Json::Array(vec![to_json(key)?, to_json(value)?])))
                        .collect::<Option<_>>()?,
                )
            }
        }
        Val::Record(fields) => Json::Object(
            fields
                .iter()
                .map(|(name, value)| Some((name.clone(), to_json(value)?)))
                .collect::<Option<_>>()?,
        ),
        Val::Variant(name, payload) => case(name, payload.as_deref())?,
        Val::Enum(name) => Json::String(name.clone()),
        Val::Option(None) => Json::Null,
        Val::Option(Some(value)) => to_json(value)?,
        Val::Result(Ok(payload)) => tagged("ok", payload.as_deref())?,
        Val::Result(Err(payload)) => tagged("err", payload.as_deref())?,
        Val::Flags(names) => Json::Array(names.iter().cloned().map(Json::String).collect()),
        Val::Resource(_) | Val::Future(_) | Val::Stream(_) | Val::ErrorContext(_) => return None,
    })
}

/// A number, or the name JSON lacks a number for.
fn float(n: f64) -> Json {
    match serde_json::Number::from_f64(n) {
        Some(n) => Json::Number(n),
        None if n.is_nan() => Json::String("NaN".into()),
        None if n > 0.0 => Json::String("Infinity".into()),
        None => Json::String("-Infinity".into()),
    }
}

/// A variant's case: `"name"`, or `{"name": payload}`.
fn case(name: &str, payload: Option<&Val>) -> Option<Json> {
    match payload {
        None => Some(Json::String(name.to_owned())),
        Some(value) => tagged(name, Some(value)),
    }
}

/// `{"name": payload}`, `null` for no payload.
fn tagged(name: &str, payload: Option<&Val>) -> Option<Json> {
    let value = match payload {
        Some(value) => to_json(value)?,
        None => Json::Null,
    };
    Some(Json::Object(Map::from_iter([(name.to_owned(), value)])))
}
