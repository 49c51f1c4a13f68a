//! `#[derive(Describe)]` follows serde's attributes: the shapes it records
//! are the JSON forms serde reads and writes.

use serde::{Deserialize, Serialize};
use wasmproc_guest::__private::{Piece, record_bytes, record_len};
use wasmproc_guest::Describe;

/// A shape as the JSON the host reads.
fn json<T: Describe + ?Sized>() -> serde_json::Value {
    let pieces = [Piece::Shape(T::SHAPE)];
    // The length is known only at run time here: render into a large buffer.
    assert!(record_len(&pieces) <= 4096);
    let bytes: [u8; 4096] = record_bytes(&pieces);
    let text = std::str::from_utf8(&bytes[..record_len(&pieces)]).unwrap();
    serde_json::from_str(text).unwrap()
}

#[derive(Deserialize, Serialize, Describe)]
#[serde(rename_all = "camelCase")]
struct Options {
    max_items: u32,
    #[serde(default)]
    verbose: bool,
    #[serde(rename = "where")]
    place: Option<String>,
    #[serde(skip)]
    #[allow(dead_code)]
    cache: Vec<u8>,
}

#[derive(Deserialize, Describe)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
enum Mode {
    Fast,
    SlowAndSteady(u32),
    Custom { level: u8 },
}

#[derive(Deserialize, Describe)]
#[serde(tag = "type")]
#[allow(dead_code)]
enum Tagged {
    A,
}

/// No derive: recorded as `any`.
struct Opaque;

#[derive(Describe)]
#[allow(dead_code)]
struct Holder(Opaque, Vec<Mode>);

#[test]
fn records_follow_serde_renames_defaults_and_skips() {
    assert_eq!(
        json::<Options>(),
        serde_json::json!({"record": "Options", "fields": [
            {"name": "maxItems", "type": "u32", "shape": "integer"},
            {"name": "verbose", "type": "bool", "shape": "bool", "optional": true},
            {"name": "where", "type": "Option<String>", "shape": {"option": "string"}, "optional": true},
        ]})
    );
}

#[test]
fn enums_list_their_variants_and_other_forms_are_any() {
    assert_eq!(
        json::<Mode>(),
        serde_json::json!({"enum": "Mode", "variants": [
            {"name": "fast", "shape": "null"},
            {"name": "slow_and_steady", "shape": "integer"},
            {"name": "custom", "shape": {"record": "custom", "fields": [
                {"name": "level", "type": "u8", "shape": "integer"}
            ]}},
        ]})
    );
    assert_eq!(json::<Tagged>(), serde_json::json!("any"));
    assert_eq!(
        json::<Holder>(),
        serde_json::json!({"tuple": ["any", {"list": {"enum": "Mode", "variants": [
            {"name": "fast", "shape": "null"},
            {"name": "slow_and_steady", "shape": "integer"},
            {"name": "custom", "shape": {"record": "custom", "fields": [
                {"name": "level", "type": "u8", "shape": "integer"}
            ]}},
        ]}}]})
    );
}
