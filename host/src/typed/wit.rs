//! Component types written as WIT, for signatures in `inspect` and in
//! error messages: `polar: func(p: record { x: f64, y: f64 }) -> ...`.
//!
//! A compiled component keeps its types' structure but not their WIT
//! names (`point`), so records, variants, enums and flags are written out
//! in place, with their fields and cases: what a caller needs to build the
//! JSON argument.

use std::fmt::Write;

use wasmtime::component::types::Type;

/// `ty` in WIT syntax, nested types written out in place.
pub(crate) fn type_text(ty: &Type) -> String {
    let mut text = String::new();
    write_type(&mut text, ty);
    text
}

/// A function's signature: `name: func(a: s32, b: s32) -> s32`.
pub(crate) fn signature_text<'a>(
    name: &str,
    params: impl IntoIterator<Item = (&'a str, &'a Type)>,
    result: Option<&Type>,
) -> String {
    format!("{name}: {}", func_text(params, result))
}

/// A function's type: `func(a: s32, b: s32) -> s32`.
pub(crate) fn func_text<'a>(
    params: impl IntoIterator<Item = (&'a str, &'a Type)>,
    result: Option<&Type>,
) -> String {
    let mut text = String::from("func(");
    for (i, (param, ty)) in params.into_iter().enumerate() {
        if i > 0 {
            text.push_str(", ");
        }
        text.push_str(param);
        text.push_str(": ");
        write_type(&mut text, ty);
    }
    text.push(')');
    if let Some(result) = result {
        text.push_str(" -> ");
        write_type(&mut text, result);
    }
    text
}

fn write_type(out: &mut String, ty: &Type) {
    match ty {
        Type::Bool => out.push_str("bool"),
        Type::S8 => out.push_str("s8"),
        Type::U8 => out.push_str("u8"),
        Type::S16 => out.push_str("s16"),
        Type::U16 => out.push_str("u16"),
        Type::S32 => out.push_str("s32"),
        Type::U32 => out.push_str("u32"),
        Type::S64 => out.push_str("s64"),
        Type::U64 => out.push_str("u64"),
        Type::Float32 => out.push_str("f32"),
        Type::Float64 => out.push_str("f64"),
        Type::Char => out.push_str("char"),
        Type::String => out.push_str("string"),
        Type::ErrorContext => out.push_str("error-context"),
        Type::List(list) => generic(out, "list", [list.ty()]),
        Type::FixedLengthList(list) => {
            out.push_str("list<");
            write_type(out, &list.ty());
            let _ = write!(out, ", {}>", list.len());
        }
        Type::Map(map) => generic(out, "map", [map.key(), map.value()]),
        Type::Tuple(tuple) => generic(out, "tuple", tuple.types()),
        Type::Option(option) => generic(out, "option", [option.ty()]),
        Type::Record(record) => {
            out.push_str("record { ");
            for (i, field) in record.fields().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(field.name);
                out.push_str(": ");
                write_type(out, &field.ty);
            }
            out.push_str(" }");
        }
        Type::Variant(variant) => {
            out.push_str("variant { ");
            for (i, case) in variant.cases().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(case.name);
                if let Some(payload) = &case.ty {
                    generic_with(out, "", "(", [payload.clone()], ")");
                }
            }
            out.push_str(" }");
        }
        Type::Enum(cases) => {
            let _ = write!(
                out,
                "enum {{ {} }}",
                cases.names().collect::<Vec<_>>().join(", ")
            );
        }
        Type::Flags(flags) => {
            let _ = write!(
                out,
                "flags {{ {} }}",
                flags.names().collect::<Vec<_>>().join(", ")
            );
        }
        Type::Result(result) => match (result.ok(), result.err()) {
            (None, None) => out.push_str("result"),
            (Some(ok), None) => generic(out, "result", [ok]),
            (ok, Some(err)) => {
                out.push_str("result<");
                match ok {
                    Some(ok) => write_type(out, &ok),
                    None => out.push('_'),
                }
                out.push_str(", ");
                write_type(out, &err);
                out.push('>');
            }
        },
        Type::Own(_) => out.push_str("own<resource>"),
        Type::Borrow(_) => out.push_str("borrow<resource>"),
        Type::Future(future) => match future.ty() {
            Some(ty) => generic(out, "future", [ty]),
            None => out.push_str("future"),
        },
        Type::Stream(stream) => match stream.ty() {
            Some(ty) => generic(out, "stream", [ty]),
            None => out.push_str("stream"),
        },
    }
}

/// `name<a, b>`.
fn generic(out: &mut String, name: &str, args: impl IntoIterator<Item = Type>) {
    generic_with(out, name, "<", args, ">");
}

fn generic_with(
    out: &mut String,
    name: &str,
    open: &str,
    args: impl IntoIterator<Item = Type>,
    close: &str,
) {
    out.push_str(name);
    out.push_str(open);
    for (i, arg) in args.into_iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        write_type(out, &arg);
    }
    out.push_str(close);
}
