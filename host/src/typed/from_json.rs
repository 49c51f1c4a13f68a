//! JSON to component values, checked against the WIT type at each step.
//!
//! The JSON form of each type (README, "Typed component exports"):
//!
//! | WIT | JSON |
//! | --- | --- |
//! | `bool`, `string` | a boolean, a string |
//! | `s8` … `u64` | an integer in the type's range |
//! | `f32`, `f64` | a number, or `"NaN"`, `"Infinity"`, `"-Infinity"` |
//! | `char` | a string of one character |
//! | `list<T>`, `tuple<…>` | an array |
//! | `record` | an object with every field (an `option` field may be left out) |
//! | `variant` | `{"case": payload}`, or `"case"` for a case without one |
//! | `enum` | `"case"` |
//! | `option<T>` | `null` or the value |
//! | `result<T, E>` | `{"ok": value}` or `{"err": value}` |
//! | `flags` | an array of the names that are set |
//!
//! Resources, futures and streams have no JSON form: an export that takes
//! one is refused with a message.

use serde_json::Value as Json;
use wasmtime::component::Val;
use wasmtime::component::types::Type;

use super::wit::type_text;

/// Where and why a JSON value does not fit a type.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Misfit {
    /// The path to the value: `p.x`, `values[2]`.
    pub(crate) at: String,
    /// What was expected, in words.
    pub(crate) expected: String,
    /// What was there, in words.
    pub(crate) found: String,
}

impl std::fmt::Display for Misfit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "at `{}`: expected {}, found {}",
            self.at, self.expected, self.found
        )
    }
}

/// The value of type `ty` that `json` stands for; `at` names it in errors.
pub(crate) fn to_val(ty: &Type, json: &Json, at: &str) -> Result<Val, Misfit> {
    let misfit = |expected: String| Misfit {
        at: at.to_owned(),
        expected,
        found: describe(json),
    };
    let expected = || format!("{} ({})", type_text(ty), shape_of(ty));
    Ok(match ty {
        Type::Bool => Val::Bool(json.as_bool().ok_or_else(|| misfit(expected()))?),
        Type::S8 => Val::S8(integer(json).ok_or_else(|| misfit(expected()))?),
        Type::U8 => Val::U8(integer(json).ok_or_else(|| misfit(expected()))?),
        Type::S16 => Val::S16(integer(json).ok_or_else(|| misfit(expected()))?),
        Type::U16 => Val::U16(integer(json).ok_or_else(|| misfit(expected()))?),
        Type::S32 => Val::S32(integer(json).ok_or_else(|| misfit(expected()))?),
        Type::U32 => Val::U32(integer(json).ok_or_else(|| misfit(expected()))?),
        Type::S64 => Val::S64(integer(json).ok_or_else(|| misfit(expected()))?),
        Type::U64 => Val::U64(integer(json).ok_or_else(|| misfit(expected()))?),
        // An `f32` is the nearest one to the number given, if in range.
        Type::Float32 => Val::Float32(
            float(json)
                .map(|n| n as f32)
                .filter(|n| n.is_finite() || json.is_string())
                .ok_or_else(|| misfit(expected()))?,
        ),
        Type::Float64 => Val::Float64(float(json).ok_or_else(|| misfit(expected()))?),
        Type::Char => {
            let text = json.as_str().ok_or_else(|| misfit(expected()))?;
            let mut chars = text.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => Val::Char(c),
                _ => return Err(misfit(expected())),
            }
        }
        Type::String => Val::String(json.as_str().ok_or_else(|| misfit(expected()))?.to_owned()),
        Type::List(list) => {
            let items = json.as_array().ok_or_else(|| misfit(expected()))?;
            let item = list.ty();
            Val::List(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, json)| to_val(&item, json, &format!("{at}[{i}]")))
                    .collect::<Result<_, _>>()?,
            )
        }
        Type::FixedLengthList(list) => {
            let items = json
                .as_array()
                .filter(|items| items.len() == list.len() as usize)
                .ok_or_else(|| misfit(expected()))?;
            let item = list.ty();
            Val::FixedLengthList(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, json)| to_val(&item, json, &format!("{at}[{i}]")))
                    .collect::<Result<_, _>>()?,
            )
        }
        Type::Map(map) => {
            let (key, value) = (map.key(), map.value());
            let pairs = match json {
                Json::Object(object) if key == Type::String => object
                    .iter()
                    .map(|(k, v)| {
                        Ok((
                            Val::String(k.clone()),
                            to_val(&value, v, &format!("{at}.{k}"))?,
                        ))
                    })
                    .collect::<Result<_, Misfit>>()?,
                Json::Array(pairs) => pairs
                    .iter()
                    .enumerate()
                    .map(|(i, pair)| match pair.as_array().map(Vec::as_slice) {
                        Some([k, v]) => Ok((
                            to_val(&key, k, &format!("{at}[{i}][0]"))?,
                            to_val(&value, v, &format!("{at}[{i}][1]"))?,
                        )),
                        _ => Err(Misfit {
                            at: format!("{at}[{i}]"),
                            expected: "a [key, value] pair".into(),
                            found: describe(pair),
                        }),
                    })
                    .collect::<Result<_, Misfit>>()?,
                _ => return Err(misfit(expected())),
            };
            Val::Map(pairs)
        }
        Type::Record(record) => {
            let object = json.as_object().ok_or_else(|| misfit(expected()))?;
            let fields: Vec<_> = record.fields().collect();
            if let Some(unknown) = object
                .keys()
                .find(|key| !fields.iter().any(|field| field.name == key.as_str()))
            {
                return Err(Misfit {
                    at: at.to_owned(),
                    expected: expected(),
                    found: format!("the field `{unknown}`, which the record does not have"),
                });
            }
            let mut values = Vec::with_capacity(fields.len());
            for field in fields {
                let at = format!("{at}.{}", field.name);
                let value = match object.get(field.name) {
                    Some(json) => to_val(&field.ty, json, &at)?,
                    // An optional field may be left out.
                    None if matches!(field.ty, Type::Option(_)) => Val::Option(None),
                    None => {
                        return Err(Misfit {
                            at,
                            expected: type_text(&field.ty),
                            found: "nothing (the field is missing)".into(),
                        });
                    }
                };
                values.push((field.name.to_owned(), value));
            }
            Val::Record(values)
        }
        Type::Tuple(tuple) => {
            let types: Vec<_> = tuple.types().collect();
            let items = json
                .as_array()
                .filter(|items| items.len() == types.len())
                .ok_or_else(|| misfit(expected()))?;
            Val::Tuple(
                types
                    .iter()
                    .zip(items)
                    .enumerate()
                    .map(|(i, (ty, json))| to_val(ty, json, &format!("{at}[{i}]")))
                    .collect::<Result<_, _>>()?,
            )
        }
        Type::Variant(variant) => {
            let (name, payload) = case_of(json).ok_or_else(|| misfit(expected()))?;
            let case = variant
                .cases()
                .find(|case| case.name == name)
                .ok_or_else(|| misfit(expected()))?;
            let payload = match (&case.ty, payload) {
                (None, None | Some(Json::Null)) => None,
                (Some(ty), Some(json)) => {
                    Some(Box::new(to_val(ty, json, &format!("{at}.{name}"))?))
                }
                _ => return Err(misfit(expected())),
            };
            Val::Variant(name.to_owned(), payload)
        }
        Type::Enum(cases) => {
            let name = json
                .as_str()
                .filter(|name| cases.names().any(|case| case == *name))
                .ok_or_else(|| misfit(expected()))?;
            Val::Enum(name.to_owned())
        }
        Type::Option(option) => match json {
            Json::Null => Val::Option(None),
            json => Val::Option(Some(Box::new(to_val(&option.ty(), json, at)?))),
        },
        Type::Result(result) => {
            let (name, payload) = case_of(json)
                .filter(|(name, _)| matches!(*name, "ok" | "err"))
                .ok_or_else(|| misfit(expected()))?;
            let ty = if name == "ok" {
                result.ok()
            } else {
                result.err()
            };
            let payload = match (ty, payload) {
                (None, None | Some(Json::Null)) => None,
                (Some(ty), Some(json)) => {
                    Some(Box::new(to_val(&ty, json, &format!("{at}.{name}"))?))
                }
                _ => return Err(misfit(expected())),
            };
            Val::Result(if name == "ok" {
                Ok(payload)
            } else {
                Err(payload)
            })
        }
        Type::Flags(flags) => {
            let set = json.as_array().ok_or_else(|| misfit(expected()))?;
            let mut names = Vec::with_capacity(set.len());
            for (i, name) in set.iter().enumerate() {
                let name = name
                    .as_str()
                    .filter(|name| flags.names().any(|flag| flag == *name))
                    .ok_or_else(|| Misfit {
                        at: format!("{at}[{i}]"),
                        expected: format!("one of the flags ({})", type_text(ty)),
                        found: describe(name),
                    })?;
                if !names.iter().any(|set: &String| set == name) {
                    names.push(name.to_owned());
                }
            }
            Val::Flags(names)
        }
        Type::Own(_) | Type::Borrow(_) | Type::Future(_) | Type::Stream(_) | Type::ErrorContext => {
            return Err(misfit(unsupported(ty)));
        }
    })
}

/// Why a type cannot be given from JSON.
pub(crate) fn unsupported(ty: &Type) -> String {
    format!(
        "{}, which has no JSON form: resources, futures and streams live in the guest; \
         call an export that takes plain values",
        type_text(ty)
    )
}

/// The JSON that stands for a value of `ty`, in words.
fn shape_of(ty: &Type) -> &'static str {
    match ty {
        Type::Bool => "true or false",
        Type::S8 | Type::U8 | Type::S16 | Type::U16 => "an integer in its range",
        Type::S32 | Type::U32 | Type::S64 | Type::U64 => "an integer in its range",
        Type::Float32 | Type::Float64 => "a number",
        Type::Char => "a string of one character",
        Type::String => "a string",
        Type::List(_) | Type::FixedLengthList(_) | Type::Tuple(_) => "an array",
        Type::Map(_) => "an object, or an array of [key, value] pairs",
        Type::Record(_) => "an object with these fields",
        Type::Variant(_) => "{\"case\": payload}, or \"case\" for a case without one",
        Type::Enum(_) => "one of the names, as a string",
        Type::Option(_) => "null or the value",
        Type::Result(_) => "{\"ok\": value} or {\"err\": value}",
        Type::Flags(_) => "an array of the names that are set",
        _ => "no JSON form",
    }
}

/// An integer that fits `T`.
fn integer<T: TryFrom<i64> + TryFrom<u64>>(json: &Json) -> Option<T> {
    match json {
        Json::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => T::try_from(i).ok(),
            (None, Some(u)) => T::try_from(u).ok(),
            _ => None,
        },
        _ => None,
    }
}

/// A number, or one of the names JSON has no number for.
fn float(json: &Json) -> Option<f64> {
    match json {
        Json::Number(n) => n.as_f64(),
        Json::String(s) => match s.as_str() {
            "NaN" => Some(f64::NAN),
            "Infinity" => Some(f64::INFINITY),
            "-Infinity" => Some(f64::NEG_INFINITY),
            _ => None,
        },
        _ => None,
    }
}

/// A case: `"name"`, or `{"name": payload}` with one key.
fn case_of(json: &Json) -> Option<(&str, Option<&Json>)> {
    match json {
        Json::String(name) => Some((name, None)),
        Json::Object(object) if object.len() == 1 => {
            let (name, payload) = object.iter().next()?;
            Some((name, Some(payload)))
        }
        _ => None,
    }
}

/// `json` in a few words, for an error message.
pub(crate) fn describe(json: &Json) -> String {
    let text = json.to_string();
    let short = if text.chars().count() > 60 {
        format!("{}…", text.chars().take(60).collect::<String>())
    } else {
        text
    };
    let kind = match json {
        Json::Null => return "null".into(),
        Json::Bool(_) => "the boolean",
        Json::Number(_) => "the number",
        Json::String(_) => "the string",
        Json::Array(_) => "the array",
        Json::Object(_) => "the object",
    };
    format!("{kind} {short}")
}
