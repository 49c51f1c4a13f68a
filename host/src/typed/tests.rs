//! The JSON forms against real component types, read by wasmtime from
//! components written in the text format.

use serde_json::json;
use wasmtime::component::{Component, Val};
use wasmtime::{Config, Engine};

use super::{Returned, TypedExport, find, typed_exports};

/// The types and functions of the tests: a component that exports each
/// function as a lifted core function of the right shape. Only types are
/// read; nothing is instantiated.
const COMPONENT: &str = r#"(component
  (type $point' (record (field "x" float64) (field "y" float64)))
  (export $point "point" (type $point'))
  (type $shape' (variant (case "circle" float64) (case "rectangle" (tuple float64 float64)) (case "dot")))
  (export $shape "shape" (type $shape'))
  (type $unit' (enum "metres" "feet"))
  (export $unit "unit" (type $unit'))
  (type $style' (flags "bold" "italic"))
  (export $style "style" (type $style'))
  (type $label' (record (field "text" string) (field "style" $style) (field "note" (option string))))
  (export $label "label" (type $label'))
  (core module $m
    (memory (export "memory") 1)
    (func (export "realloc") (param i32 i32 i32 i32) (result i32) unreachable)
    (func (export "i32-i32") (param i32) (result i32) unreachable)
    (func (export "i32-i32-i32") (param i32 i32) (result i32) unreachable)
    (func (export "polar") (param f64 f64) (result i32) unreachable)
    (func (export "area") (param i32 f64 f64 i32) (result f64) unreachable)
    (func (export "list") (param i32 i32) (result i32) unreachable)
    (func (export "label") (param i32 i32 i32 i32 i32 i32) (result i32) unreachable)
    (func (export "none") unreachable))
  (core instance $i (instantiate $m))
  (func (export "square") (param "x" s32) (result s32) (canon lift (core func $i "i32-i32")))
  (func (export "add") (param "a" u8) (param "b" u8) (result u8) (canon lift (core func $i "i32-i32-i32")))
  (func (export "polar") (param "p" $point) (result $point)
    (canon lift (core func $i "polar") (memory (core memory $i "memory"))))
  (func (export "area") (param "s" $shape) (param "u" $unit) (result float64) (canon lift (core func $i "area")))
  (func (export "largest") (param "values" (list s64)) (result (option s64))
    (canon lift (core func $i "list") (memory (core memory $i "memory")) (realloc (core func $i "realloc"))))
  (func (export "parse") (param "text" string) (result (result u32 (error string)))
    (canon lift (core func $i "list") (memory (core memory $i "memory")) (realloc (core func $i "realloc"))))
  (func (export "render") (param "l" $label) (result string)
    (canon lift (core func $i "label") (memory (core memory $i "memory")) (realloc (core func $i "realloc"))))
  (func (export "nothing") (canon lift (core func $i "none")))
)"#;

fn exports() -> Vec<TypedExport> {
    let mut config = Config::new();
    config.wasm_component_model(true);
    let engine = Engine::new(&config).expect("an engine with the component model");
    let wasm = wat::parse_str(COMPONENT).expect("the test component is well formed");
    let component = Component::new(&engine, wasm).expect("the test component is valid");
    typed_exports(&component, &engine)
}

fn export(name: &str) -> TypedExport {
    let exports = exports();
    let names: Vec<String> = exports.iter().map(|e| e.name.clone()).collect();
    let found = find(&names, name).expect("exported");
    exports.into_iter().find(|e| &e.name == found).unwrap()
}

fn args(name: &str, json: serde_json::Value) -> Result<Vec<Val>, String> {
    export(name).arguments(json.to_string().as_bytes(), || None)
}

#[test]
fn every_exported_function_is_a_task_with_its_wit_signature() {
    let signatures: Vec<String> = exports().iter().map(TypedExport::signature).collect();
    assert_eq!(
        signatures,
        [
            "square: func(x: s32) -> s32",
            "add: func(a: u8, b: u8) -> u8",
            "polar: func(p: record { x: f64, y: f64 }) -> record { x: f64, y: f64 }",
            "area: func(s: variant { circle(f64), rectangle(tuple<f64, f64>), dot }, \
             u: enum { metres, feet }) -> f64",
            "largest: func(values: list<s64>) -> option<s64>",
            "parse: func(text: string) -> result<u32, string>",
            "render: func(l: record { text: string, style: flags { bold, italic }, \
             note: option<string> }) -> string",
            "nothing: func()",
        ]
    );
}

#[test]
fn one_parameter_takes_the_value_itself_and_several_an_array_or_an_object() {
    assert_eq!(args("square", json!(7)).unwrap(), [Val::S32(7)]);
    assert_eq!(
        args("add", json!([1, 2])).unwrap(),
        [Val::U8(1), Val::U8(2)]
    );
    assert_eq!(
        args("add", json!({"b": 2, "a": 1})).unwrap(),
        [Val::U8(1), Val::U8(2)]
    );
    assert_eq!(export("nothing").arguments(b"", || None).unwrap(), []);
    assert_eq!(args("nothing", json!(null)).unwrap(), []);
}

#[test]
fn integers_are_range_checked_and_the_message_quotes_the_signature() {
    let error = args("add", json!([1, 300])).unwrap_err();
    assert!(error.contains("`add: func(a: u8, b: u8) -> u8`"), "{error}");
    assert!(error.contains("at `b`: expected u8"), "{error}");
    assert!(error.contains("the number 300"), "{error}");
    assert!(args("square", json!(1.5)).is_err());
    assert!(args("square", json!("7")).is_err());
    assert!(
        args("add", json!([1]))
            .unwrap_err()
            .contains("takes 2 arguments")
    );
    let error = args("add", json!({"a": 1, "c": 2})).unwrap_err();
    assert!(error.contains("no parameter `c`"), "{error}");
    let error = export("square").arguments(b"{oops", || None).unwrap_err();
    assert!(error.contains("not JSON"), "{error}");
}

#[test]
fn records_are_objects_with_every_field_but_optional_ones() {
    assert_eq!(
        args("polar", json!({"x": 3, "y": 4.5})).unwrap(),
        [Val::Record(vec![
            ("x".into(), Val::Float64(3.0)),
            ("y".into(), Val::Float64(4.5)),
        ])]
    );
    let missing = args("polar", json!({"x": 3})).unwrap_err();
    assert!(
        missing.contains("at `p.y`: expected f64, found nothing"),
        "{missing}"
    );
    let extra = args("polar", json!({"x": 3, "y": 4, "z": 5})).unwrap_err();
    assert!(extra.contains("the field `z`"), "{extra}");
    assert_eq!(
        args("render", json!({"text": "hi", "style": ["bold"]})).unwrap(),
        [Val::Record(vec![
            ("text".into(), Val::String("hi".into())),
            ("style".into(), Val::Flags(vec!["bold".into()])),
            ("note".into(), Val::Option(None)),
        ])]
    );
    let flag = args("render", json!({"text": "hi", "style": ["loud"]})).unwrap_err();
    assert!(
        flag.contains("at `l.style[0]`: expected one of the flags"),
        "{flag}"
    );
}

#[test]
fn variants_and_enums_are_named_cases() {
    assert_eq!(
        args("area", json!([{"rectangle": [2, 3]}, "feet"])).unwrap(),
        [
            Val::Variant(
                "rectangle".into(),
                Some(Box::new(Val::Tuple(vec![
                    Val::Float64(2.0),
                    Val::Float64(3.0)
                ])))
            ),
            Val::Enum("feet".into()),
        ]
    );
    assert_eq!(
        args("area", json!(["dot", "metres"])).unwrap()[0],
        Val::Variant("dot".into(), None)
    );
    assert!(
        args("area", json!(["circle", "metres"])).is_err(),
        "circle needs its radius"
    );
    assert!(args("area", json!(["dot", "yards"])).is_err());
    assert!(args("area", json!([{"hexagon": 1}, "metres"])).is_err());
}

#[test]
fn lists_and_options() {
    assert_eq!(
        args("largest", json!([3, -1])).unwrap(),
        [Val::List(vec![Val::S64(3), Val::S64(-1)])]
    );
    let error = args("largest", json!([3, "x"])).unwrap_err();
    assert!(error.contains("at `values[1]`"), "{error}");
}

#[test]
fn results_come_back_as_json_and_a_top_level_error_is_the_task_failing() {
    let parse = export("parse");
    assert_eq!(
        parse.returned(&[Val::Result(Ok(Some(Box::new(Val::U32(7)))))]),
        Ok(Returned::Value(json!(7)))
    );
    assert_eq!(
        parse.returned(&[Val::Result(Err(Some(Box::new(Val::String("no".into())))))]),
        Ok(Returned::Error(json!("no")))
    );
    let polar = export("polar");
    assert_eq!(
        polar.returned(&[Val::Record(vec![
            ("x".into(), Val::Float64(f64::NAN)),
            ("y".into(), Val::Float64(0.5)),
        ])]),
        Ok(Returned::Value(json!({"x": "NaN", "y": 0.5})))
    );
    assert_eq!(
        export("nothing").returned(&[]),
        Ok(Returned::Value(json!(null)))
    );
    assert_eq!(
        export("area").returned(&[Val::Variant(
            "circle".into(),
            Some(Box::new(Val::Float64(1.0)))
        )]),
        Ok(Returned::Value(json!({"circle": 1.0})))
    );
}
