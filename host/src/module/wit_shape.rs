//! A component's exported functions as task signatures, their WIT types as
//! the JSON shapes `inspect` and argument errors show for every task
//! ([`Shape`]): the same records, enums and examples as the SDK's
//! `Describe` gives a Rust task, in the JSON form `typed` reads.

use wasmtime::component::types::Type;

use super::signature::{Param, Shape, ShapeField, ShapeVariant, TaskSignature};
use crate::typed::{TypedExport, type_text};

/// `export`'s signature as a task's (`inspect`, `Module::signatures`): the
/// types in WIT, with their shapes.
pub(crate) fn task_signature(export: &TypedExport) -> TaskSignature {
    TaskSignature {
        kind: "task".into(),
        name: export.name.clone(),
        params: export
            .params
            .iter()
            .map(|(name, ty)| Param {
                name: name.clone(),
                ty: type_text(ty),
                shape: Some(shape_of(ty)),
            })
            .collect(),
        result: export
            .result
            .as_ref()
            .map_or_else(|| "()".into(), type_text),
        result_shape: Some(match &export.result {
            None => Shape::Null,
            // A top-level `result`'s `ok` payload is the task's result.
            Some(Type::Result(result)) => result.ok().as_ref().map_or(Shape::Null, shape_of),
            Some(other) => shape_of(other),
        }),
    }
}

/// The JSON shape of a value of `ty`. A component keeps no names for its
/// types, so records and enums are named by their kind (`record`,
/// `variant`, `enum`); resources and streams, which have no JSON form,
/// are `any`.
fn shape_of(ty: &Type) -> Shape {
    match ty {
        Type::Bool => Shape::Bool,
        Type::S8 | Type::U8 | Type::S16 | Type::U16 => Shape::Integer,
        Type::S32 | Type::U32 | Type::S64 | Type::U64 => Shape::Integer,
        Type::Float32 | Type::Float64 => Shape::Number,
        Type::String => Shape::String,
        Type::Char => Shape::Char,
        Type::List(list) => Shape::List(Box::new(shape_of(&list.ty()))),
        Type::FixedLengthList(list) => {
            Shape::Tuple(vec![shape_of(&list.ty()); list.len() as usize])
        }
        Type::Map(map) if map.key() == Type::String => Shape::Map(Box::new(shape_of(&map.value()))),
        Type::Map(map) => Shape::List(Box::new(Shape::Tuple(vec![
            shape_of(&map.key()),
            shape_of(&map.value()),
        ]))),
        Type::Tuple(tuple) => Shape::Tuple(tuple.types().map(|ty| shape_of(&ty)).collect()),
        Type::Option(option) => Shape::Option(Box::new(shape_of(&option.ty()))),
        Type::Flags(_) => Shape::List(Box::new(Shape::String)),
        Type::Record(record) => Shape::Record {
            record: "record".into(),
            fields: record
                .fields()
                .map(|field| ShapeField {
                    name: field.name.to_owned(),
                    ty: type_text(&field.ty),
                    optional: matches!(field.ty, Type::Option(_)),
                    shape: shape_of(&field.ty),
                })
                .collect(),
        },
        Type::Variant(variant) => Shape::Enum {
            name: "variant".into(),
            variants: variant
                .cases()
                .map(|case| ShapeVariant {
                    name: case.name.to_owned(),
                    shape: case.ty.as_ref().map_or(Shape::Null, shape_of),
                })
                .collect(),
        },
        Type::Enum(cases) => Shape::Enum {
            name: "enum".into(),
            variants: cases
                .names()
                .map(|name| ShapeVariant {
                    name: name.to_owned(),
                    shape: Shape::Null,
                })
                .collect(),
        },
        Type::Result(result) => Shape::Enum {
            name: "result".into(),
            variants: [("ok", result.ok()), ("err", result.err())]
                .into_iter()
                .map(|(name, ty)| ShapeVariant {
                    name: name.into(),
                    // `{"ok": null}` for a result without a payload.
                    shape: ty.as_ref().map_or(Shape::Null, shape_of),
                })
                .collect(),
        },
        Type::Own(_) | Type::Borrow(_) | Type::Future(_) | Type::Stream(_) | Type::ErrorContext => {
            Shape::Any
        }
    }
}
