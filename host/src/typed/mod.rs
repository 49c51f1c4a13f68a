//! Typed component exports as tasks: any exported WIT function of a
//! component runs as `--task NAME --args JSON`, its JSON arguments made
//! into component values and its result made into JSON.
//!
//! - `wit`: types and signatures written as WIT, for `inspect` and errors.
//! - `from_json`: JSON to values, checked against the WIT type (the JSON
//!   form of each type is documented there).
//! - `to_json`: values back to JSON.
//!
//! This is the language-neutral counterpart of the SDK's `#[task]`: a
//! component from wit-bindgen, componentize-py, jco or TinyGo is a set of
//! typed tasks with no wasmproc code in it.

mod from_json;
mod to_json;
mod wit;

use serde_json::Value as Json;
use wasmtime::Engine;
use wasmtime::component::types::{ComponentFunc, ComponentItem, Type};
use wasmtime::component::{Component, ComponentExportIndex, Val};

pub(crate) use wit::{func_text, type_text};

/// An exported function of a component, as a task.
#[derive(Clone)]
pub(crate) struct TypedExport {
    /// The task's name: the function's own at the top level,
    /// `interface#function` inside an exported interface.
    pub(crate) name: String,
    /// Where the function is, for the call.
    pub(crate) index: ComponentExportIndex,
    /// The parameters, named as in the WIT.
    pub(crate) params: Vec<(String, Type)>,
    /// The result type, if the function returns one.
    pub(crate) result: Option<Type>,
}

/// What a call returned, as JSON.
#[derive(Debug, PartialEq)]
pub(crate) enum Returned {
    /// The result (`null` for a function without one; the `ok` payload of
    /// a top-level `result`).
    Value(Json),
    /// The `err` payload of a top-level `result`: the task failed, and
    /// says why.
    Error(Json),
}

impl TypedExport {
    /// The WIT signature: `polar: func(p: record { x: f64, y: f64 }) -> …`.
    pub(crate) fn signature(&self) -> String {
        wit::signature_text(
            &self.name,
            self.params.iter().map(|(name, ty)| (name.as_str(), ty)),
            self.result.as_ref(),
        )
    }

    /// The call's arguments from the task's JSON input: nothing (or
    /// `null`) for no parameters, the value itself for one, an array in
    /// order or an object by name for several.
    ///
    /// # Errors
    ///
    /// What does not fit, where, and the signature, in one message.
    /// `example` gives a complete example of the arguments where there is
    /// one, to end the message: it is called only then (making it walks
    /// the types, which a task that fits never needs).
    pub(crate) fn arguments(
        &self,
        input: &[u8],
        example: impl Fn() -> Option<String>,
    ) -> Result<Vec<Val>, String> {
        let refuse = |why: String| {
            format!(
                "the arguments do not fit `{}`: {why}; {}",
                self.signature(),
                self.how_to_give_arguments(example().as_deref())
            )
        };
        let json: Json = if input.iter().all(u8::is_ascii_whitespace) {
            Json::Null
        } else {
            serde_json::from_slice(input).map_err(|error| refuse(format!("not JSON ({error})")))?
        };
        let given: Vec<(&str, &Json)> = match (self.params.as_slice(), &json) {
            ([], Json::Null) => Vec::new(),
            ([], Json::Array(items)) if items.is_empty() => Vec::new(),
            ([], other) => {
                return Err(refuse(format!(
                    "it takes no arguments, and was given {}",
                    from_json::describe(other)
                )));
            }
            ([(name, _)], json) => vec![(name.as_str(), json)],
            (params, Json::Array(items)) if items.len() == params.len() => params
                .iter()
                .map(|(name, _)| name.as_str())
                .zip(items)
                .collect(),
            (params, Json::Object(object)) => {
                if let Some(unknown) = object
                    .keys()
                    .find(|key| !params.iter().any(|(name, _)| name == *key))
                {
                    return Err(refuse(format!("it has no parameter `{unknown}`")));
                }
                let mut given = Vec::with_capacity(params.len());
                for (name, _) in params {
                    let value = object
                        .get(name)
                        .ok_or_else(|| refuse(format!("the parameter `{name}` is missing")))?;
                    given.push((name.as_str(), value));
                }
                given
            }
            (params, other) => {
                return Err(refuse(format!(
                    "it takes {} arguments, and was given {}",
                    params.len(),
                    from_json::describe(other)
                )));
            }
        };
        self.params
            .iter()
            .zip(given)
            .map(|((_, ty), (name, json))| {
                from_json::to_val(ty, json, name).map_err(|misfit| refuse(misfit.to_string()))
            })
            .collect()
    }

    /// How to give the arguments, with a complete example where every
    /// parameter has a JSON form, for error messages.
    fn how_to_give_arguments(&self, example: Option<&str>) -> String {
        let how = match self.params.as_slice() {
            [] => return "give no --args".into(),
            [_] => "give the value itself".to_owned(),
            params => format!(
                "give them as an array in order ({}) or an object by name",
                params
                    .iter()
                    .map(|(name, _)| name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        match example {
            Some(example) => format!("{how}, e.g. --args '{example}'"),
            None => how,
        }
    }

    /// Room for the call's results.
    pub(crate) fn result_slots(&self) -> Vec<Val> {
        match self.result {
            Some(_) => vec![Val::Bool(false)],
            None => Vec::new(),
        }
    }

    /// What the call returned, as JSON.
    ///
    /// # Errors
    ///
    /// When the result holds a value that has no JSON form (a resource).
    pub(crate) fn returned(&self, results: &[Val]) -> Result<Returned, String> {
        let no_json = || {
            format!(
                "`{}` returned {}",
                self.name,
                from_json::unsupported(self.result.as_ref().unwrap_or(&Type::Bool))
            )
        };
        match results.first() {
            None => Ok(Returned::Value(Json::Null)),
            Some(Val::Result(Err(payload))) => Ok(Returned::Error(match payload {
                Some(payload) => to_json::to_json(payload).ok_or_else(no_json)?,
                None => Json::Null,
            })),
            Some(Val::Result(Ok(payload))) => Ok(Returned::Value(match payload {
                Some(payload) => to_json::to_json(payload).ok_or_else(no_json)?,
                None => Json::Null,
            })),
            Some(value) => Ok(Returned::Value(
                to_json::to_json(value).ok_or_else(no_json)?,
            )),
        }
    }
}

/// Every function `component` exports, at the top level and inside its
/// exported interfaces, as tasks: all but WASI's own (`wasi:cli/run` is a
/// command's entry, not a task).
pub(crate) fn typed_exports(component: &Component, engine: &Engine) -> Vec<TypedExport> {
    let mut exports = Vec::new();
    let ty = component.component_type();
    for (name, export) in ty.exports(engine) {
        match export.ty {
            ComponentItem::ComponentFunc(func) => {
                if let Some(index) = component.get_export_index(None, name) {
                    exports.push(typed_export(name.to_owned(), index, &func));
                }
            }
            ComponentItem::ComponentInstance(instance) if !name.starts_with("wasi:") => {
                let Some(interface) = component.get_export_index(None, name) else {
                    continue;
                };
                for (function, export) in instance.exports(engine) {
                    let ComponentItem::ComponentFunc(func) = export.ty else {
                        continue;
                    };
                    if is_toolchain_internal(name, function) {
                        continue;
                    }
                    if let Some(index) = component.get_export_index(Some(&interface), function) {
                        exports.push(typed_export(format!("{name}#{function}"), index, &func));
                    }
                }
            }
            _ => {}
        }
    }
    exports
}

/// Whether an export is a toolchain's own rather than the author's:
/// componentize-py's build-time initializer (`exports#init`, which it
/// calls once while building the component).
fn is_toolchain_internal(interface: &str, function: &str) -> bool {
    interface == "exports" && function == "init"
}

fn typed_export(name: String, index: ComponentExportIndex, func: &ComponentFunc) -> TypedExport {
    TypedExport {
        name,
        index,
        params: func
            .params()
            .map(|(name, ty)| (name.to_owned(), ty))
            .collect(),
        result: func.results().next(),
    }
}

/// The task `wanted` names among `names` (exported functions'): a full
/// name, or for a function inside an interface its own name when no other
/// export has it (`add` for `docs:calc/math#add`).
pub(crate) fn find<'a>(names: &'a [String], wanted: &str) -> Option<&'a String> {
    names.iter().find(|name| *name == wanted).or_else(|| {
        let mut short = names
            .iter()
            .filter(|name| name.rsplit_once('#').is_some_and(|(_, f)| f == wanted));
        match (short.next(), short.next()) {
            (Some(only), None) => Some(only),
            _ => None,
        }
    })
}

#[cfg(test)]
mod tests;
