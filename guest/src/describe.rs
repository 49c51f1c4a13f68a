//! What a task's argument and result look like as JSON, recorded in the
//! module so that `wasmproc inspect` can show a record's fields and a
//! mistaken `--args` can be answered with a complete example.
//!
//! Every type has a [`Shape`]: numbers, strings and the standard
//! containers have theirs here; a struct or enum of yours has one when it
//! derives [`Describe`](macro@crate::Describe) beside serde's derives.
//! A type without one is recorded as `any`: its task still runs, and
//! `inspect` shows its Rust type name only. The shapes are computed at
//! compile time into the module's `wasmproc_signatures` custom section;
//! nothing runs in the guest for them.

/// The JSON form of a type, as the host will read and write it.
#[derive(Debug)]
pub enum Shape {
    /// A JSON integer (`u8` … `u128`, `i8` … `i128`, `usize`, `isize`).
    Integer,
    /// A JSON number (`f32`, `f64`).
    Number,
    /// A JSON string (`String`, `&str`, paths).
    String,
    /// A JSON string of one character (`char`).
    Char,
    /// `true` or `false`.
    Bool,
    /// `null` (`()`, a unit struct, a unit enum variant's payload).
    Null,
    /// Not described: any JSON the type's `Deserialize` accepts.
    Any,
    /// A JSON array of values of one shape (`Vec`, sets, slices, arrays).
    List(&'static Shape),
    /// `null` or the value (`Option`).
    Option(&'static Shape),
    /// A JSON object from strings to values of one shape (maps).
    Map(&'static Shape),
    /// A JSON array of fixed length (tuples, tuple structs).
    Tuple(&'static [&'static Shape]),
    /// A JSON object with named fields (a struct).
    Record {
        /// The Rust type's name.
        name: &'static str,
        /// Its fields, in order.
        fields: &'static [Field],
    },
    /// One of several variants (an externally tagged enum, serde's
    /// default): a unit variant is its name as a string, another is
    /// `{"Variant": payload}`.
    Enum {
        /// The Rust type's name.
        name: &'static str,
        /// Its variants, in order.
        variants: &'static [Variant],
    },
}

/// A field of a [`Shape::Record`].
#[derive(Debug)]
pub struct Field {
    /// Its name in JSON (serde's `rename` applied).
    pub name: &'static str,
    /// Its Rust type, as written.
    pub ty: &'static str,
    /// Its shape.
    pub shape: &'static Shape,
    /// Whether it may be left out (`#[serde(default)]`, `Option`).
    pub optional: bool,
}

/// A variant of a [`Shape::Enum`].
#[derive(Debug)]
pub struct Variant {
    /// Its name in JSON.
    pub name: &'static str,
    /// Its payload's shape ([`Shape::Null`] for a unit variant).
    pub shape: &'static Shape,
}

/// A type whose JSON form is known: derive it with
/// `#[derive(wasmproc_guest::Describe)]` beside serde's derives.
///
/// ```
/// use serde::Deserialize;
///
/// #[derive(Deserialize, wasmproc_guest::Describe)]
/// pub struct Point {
///     x: f64,
///     y: f64,
/// }
///
/// #[wasmproc_guest::task]
/// fn norm(p: Point) -> f64 {
///     p.x.hypot(p.y)
/// }
/// # let _ = norm;
/// ```
///
/// `wasmproc inspect` then shows `Point { x: f64, y: f64 }` under the task,
/// and `--args '{"x": 1}'` is answered with `--args '{"x": 0.0, "y": 0.0}'`.
/// The derive follows serde's `rename`, `rename_all`, `default` and `skip`;
/// an enum with `tag` or `untagged`, and a type with type parameters, are
/// described as `any`. A recursive type (a tree holding itself) cannot
/// derive it: leave the derive off, and it shows as `any`.
pub trait Describe {
    /// The type's shape.
    const SHAPE: &'static Shape;
}

macro_rules! described {
    ($shape:expr => $($ty:ty),*) => {
        $(impl Describe for $ty {
            const SHAPE: &'static Shape = &$shape;
        })*
    };
}

described!(Shape::Integer => u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize);
described!(Shape::Number => f32, f64);
described!(Shape::String => String, str, std::path::PathBuf);
described!(Shape::Char => char);
described!(Shape::Bool => bool);
described!(Shape::Null => ());
described!(Shape::Any => serde_json::Value);

impl<T: Describe + ?Sized> Describe for &T {
    const SHAPE: &'static Shape = T::SHAPE;
}
impl<T: Describe + ?Sized> Describe for Box<T> {
    const SHAPE: &'static Shape = T::SHAPE;
}
impl<T: Describe> Describe for Option<T> {
    const SHAPE: &'static Shape = &Shape::Option(T::SHAPE);
}
/// A task's result `Result<T, E>`: what a success holds.
impl<T: Describe, E> Describe for Result<T, E> {
    const SHAPE: &'static Shape = T::SHAPE;
}
impl<T: Describe> Describe for [T] {
    const SHAPE: &'static Shape = &Shape::List(T::SHAPE);
}
impl<T: Describe, const N: usize> Describe for [T; N] {
    const SHAPE: &'static Shape = &Shape::List(T::SHAPE);
}
macro_rules! lists {
    ($($list:ident)::*) => {
        impl<T: Describe> Describe for $($list)::*<T> {
            const SHAPE: &'static Shape = &Shape::List(T::SHAPE);
        }
    };
}
lists!(Vec);
lists!(std::collections::VecDeque);
lists!(std::collections::BTreeSet);
impl<T: Describe, S> Describe for std::collections::HashSet<T, S> {
    const SHAPE: &'static Shape = &Shape::List(T::SHAPE);
}
impl<K, V: Describe> Describe for std::collections::BTreeMap<K, V> {
    const SHAPE: &'static Shape = &Shape::Map(V::SHAPE);
}
impl<K, V: Describe, S> Describe for std::collections::HashMap<K, V, S> {
    const SHAPE: &'static Shape = &Shape::Map(V::SHAPE);
}
macro_rules! tuples {
    ($(($($t:ident),+))*) => {
        $(impl<$($t: Describe),+> Describe for ($($t,)+) {
            const SHAPE: &'static Shape = &Shape::Tuple(&[$($t::SHAPE),+]);
        })*
    };
}
tuples! { (A) (A, B) (A, B, C) (A, B, C, D) (A, B, C, D, E) (A, B, C, D, E, F) }

/// `Probe::<T>::SHAPE` is `T`'s shape where `T: Describe`, else (through
/// [`Undescribed`], which the expansions bring into scope) [`Shape::Any`]:
/// the inherent constant wins when its bound holds.
#[doc(hidden)]
pub struct Probe<T: ?Sized>(core::marker::PhantomData<T>);

impl<T: Describe + ?Sized> Probe<T> {
    #[doc(hidden)]
    pub const SHAPE: &'static Shape = T::SHAPE;
}

/// The fallback of [`Probe`] for types without a [`Describe`].
#[doc(hidden)]
pub trait Undescribed {
    #[doc(hidden)]
    const SHAPE: &'static Shape = &Shape::Any;
}

impl<T: ?Sized> Undescribed for Probe<T> {}

/// A piece of a signature record: JSON text, or a shape rendered as JSON.
#[doc(hidden)]
pub enum Piece {
    Text(&'static str),
    Shape(&'static Shape),
}

/// The record's length in bytes.
#[doc(hidden)]
pub const fn record_len(pieces: &[Piece]) -> usize {
    render_pieces(&mut [], pieces)
}

/// The record's bytes (`N` is [`record_len`]).
#[doc(hidden)]
pub const fn record_bytes<const N: usize>(pieces: &[Piece]) -> [u8; N] {
    let mut bytes = [0u8; N];
    render_pieces(&mut bytes, pieces);
    bytes
}

/// Writes what fits of `pieces` into `out`; returns the whole length.
const fn render_pieces(out: &mut [u8], pieces: &[Piece]) -> usize {
    let (mut at, mut i) = (0, 0);
    while i < pieces.len() {
        at = match &pieces[i] {
            Piece::Text(text) => put(out, at, text),
            Piece::Shape(shape) => render(out, at, shape),
        };
        i += 1;
    }
    at
}

const fn put(out: &mut [u8], mut at: usize, text: &str) -> usize {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if at < out.len() {
            out[at] = bytes[i];
        }
        at += 1;
        i += 1;
    }
    at
}

/// `text` as a JSON string (names and Rust types: `"` and `\` escaped).
const fn put_string(out: &mut [u8], at: usize, text: &str) -> usize {
    let mut at = put(out, at, "\"");
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'"' || bytes[i] == b'\\' {
            at = put(out, at, "\\");
        }
        if at < out.len() {
            out[at] = bytes[i];
        }
        at += 1;
        i += 1;
    }
    put(out, at, "\"")
}

/// `shape` as JSON: `"integer"`, `{"list": …}`, `{"record": NAME,
/// "fields": [{"name", "type", "shape", "optional"}]}`, …
const fn render(out: &mut [u8], at: usize, shape: &Shape) -> usize {
    match shape {
        Shape::Integer => put(out, at, "\"integer\""),
        Shape::Number => put(out, at, "\"number\""),
        Shape::String => put(out, at, "\"string\""),
        Shape::Char => put(out, at, "\"char\""),
        Shape::Bool => put(out, at, "\"bool\""),
        Shape::Null => put(out, at, "\"null\""),
        Shape::Any => put(out, at, "\"any\""),
        Shape::List(item) => wrapped(out, at, "{\"list\":", item),
        Shape::Option(item) => wrapped(out, at, "{\"option\":", item),
        Shape::Map(value) => wrapped(out, at, "{\"map\":", value),
        Shape::Tuple(items) => {
            let mut at = put(out, at, "{\"tuple\":[");
            let mut i = 0;
            while i < items.len() {
                if i > 0 {
                    at = put(out, at, ",");
                }
                at = render(out, at, items[i]);
                i += 1;
            }
            put(out, at, "]}")
        }
        Shape::Record { name, fields } => {
            let mut at = put(out, at, "{\"record\":");
            at = put_string(out, at, name);
            at = put(out, at, ",\"fields\":[");
            let mut i = 0;
            while i < fields.len() {
                let field = &fields[i];
                if i > 0 {
                    at = put(out, at, ",");
                }
                at = put(out, at, "{\"name\":");
                at = put_string(out, at, field.name);
                at = put(out, at, ",\"type\":");
                at = put_string(out, at, field.ty);
                at = put(out, at, ",\"shape\":");
                at = render(out, at, field.shape);
                at = put(
                    out,
                    at,
                    if field.optional {
                        ",\"optional\":true}"
                    } else {
                        "}"
                    },
                );
                i += 1;
            }
            put(out, at, "]}")
        }
        Shape::Enum { name, variants } => {
            let mut at = put(out, at, "{\"enum\":");
            at = put_string(out, at, name);
            at = put(out, at, ",\"variants\":[");
            let mut i = 0;
            while i < variants.len() {
                if i > 0 {
                    at = put(out, at, ",");
                }
                at = put(out, at, "{\"name\":");
                at = put_string(out, at, variants[i].name);
                at = put(out, at, ",\"shape\":");
                at = render(out, at, variants[i].shape);
                at = put(out, at, "}");
                i += 1;
            }
            put(out, at, "]}")
        }
    }
}

const fn wrapped(out: &mut [u8], at: usize, open: &str, inner: &Shape) -> usize {
    let at = put(out, at, open);
    let at = render(out, at, inner);
    put(out, at, "}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(shape: &'static Shape) -> String {
        let pieces = [Piece::Shape(shape)];
        let mut bytes = vec![0u8; record_len(&pieces)];
        render_pieces(&mut bytes, &pieces);
        String::from_utf8(bytes).unwrap()
    }

    struct Opaque;

    #[test]
    fn shapes_render_as_json() {
        assert_eq!(
            json(<Vec<Option<u8>>>::SHAPE),
            r#"{"list":{"option":"integer"}}"#
        );
        assert_eq!(
            json(<(String, std::collections::HashMap<String, f64>)>::SHAPE),
            r#"{"tuple":["string",{"map":"number"}]}"#
        );
        assert_eq!(json(Probe::<Opaque>::SHAPE), r#""any""#);
        assert_eq!(
            json(<(char, &str)>::SHAPE),
            r#"{"tuple":["char","string"]}"#
        );
        assert_eq!(json(Probe::<Result<bool, String>>::SHAPE), r#""bool""#);
        const RECORD: Shape = Shape::Record {
            name: "P\"",
            fields: &[Field {
                name: "x",
                ty: "f64",
                shape: &Shape::Number,
                optional: true,
            }],
        };
        assert_eq!(
            json(&RECORD),
            r#"{"record":"P\"","fields":[{"name":"x","type":"f64","shape":"number","optional":true}]}"#
        );
    }
}
