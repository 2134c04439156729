//! Deciding whether an object needs a write.
//!
//! Landlord applies with server-side apply, but a reconcile of an unchanged tenant must make
//! no write at all. So before applying, the desired object is compared with the live one:
//! the write is skipped when the live object carries the hash of the same desired state and
//! still holds every field Landlord sets (so an edit or a deletion by someone else is
//! corrected on the next reconcile).

use std::{
    collections::hash_map::DefaultHasher,
    hash::{Hash, Hasher},
};

use serde_json::Value;

use crate::{labels::APPLIED_HASH, quantity};

/// A stable hash of a desired object, stored in its `landlord.dev/applied-hash` annotation.
pub fn hash(desired: &Value) -> String {
    let mut hasher = DefaultHasher::new();
    // serde_json's maps are ordered (BTreeMap), so equal values serialize equally.
    desired.to_string().hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}

/// Whether the live object already is what Landlord wants: same intent hash, and every field
/// of `desired` present in `live` with the same value (quantities compared by value).
pub fn up_to_date(desired: &Value, desired_hash: &str, live: &Value) -> bool {
    let live_hash = live
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(APPLIED_HASH))
        .and_then(Value::as_str);
    live_hash == Some(desired_hash) && contains(live, desired)
}

/// Whether `live` holds every field of `desired` with an equal value. Extra fields in `live`
/// (defaults, other managers' fields, status) are ignored; lists must match element-wise.
pub fn contains(live: &Value, desired: &Value) -> bool {
    match (live, desired) {
        (_, Value::Null) => true,
        (Value::Object(l), Value::Object(d)) => d.iter().all(|(k, dv)| match l.get(k) {
            Some(lv) => contains(lv, dv),
            None => dv.is_null() || is_empty(dv),
        }),
        (Value::Array(l), Value::Array(d)) => {
            l.len() == d.len() && l.iter().zip(d).all(|(lv, dv)| contains(lv, dv))
        }
        (Value::String(l), Value::String(d)) => quantity::same(l, d),
        (Value::Number(l), Value::String(d)) | (Value::String(d), Value::Number(l)) => {
            quantity::same(&l.to_string(), d)
        }
        (l, d) => l == d,
    }
}

/// The API server drops empty maps and lists; an empty desired field matches a missing one.
fn is_empty(value: &Value) -> bool {
    match value {
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaulted_fields_in_live_do_not_count_as_drift() {
        let desired = json!({"spec": {"hard": {"pods": "10", "requests.cpu": "1000m"}}});
        let live = json!({"metadata": {"uid": "x"}, "spec": {"hard": {"pods": "10", "requests.cpu": "1"}}, "status": {}});
        assert!(contains(&live, &desired));
    }

    #[test]
    fn edited_or_missing_fields_are_drift() {
        let desired = json!({"spec": {"hard": {"pods": "10"}}});
        assert!(!contains(
            &json!({"spec": {"hard": {"pods": "11"}}}),
            &desired
        ));
        assert!(!contains(&json!({"spec": {"hard": {}}}), &desired));
        assert!(!contains(
            &json!({"spec": {"ingress": [{}, {}]}}),
            &json!({"spec": {"ingress": [{}]}})
        ));
    }

    #[test]
    fn a_new_intent_needs_a_write_even_when_fields_match() {
        let desired = json!({"metadata": {"name": "q"}});
        let live = json!({"metadata": {"name": "q", "annotations": {APPLIED_HASH: "old"}}});
        assert!(!up_to_date(&desired, &hash(&desired), &live));
        let live =
            json!({"metadata": {"name": "q", "annotations": {APPLIED_HASH: hash(&desired)}}});
        assert!(up_to_date(&desired, &hash(&desired), &live));
    }

    #[test]
    fn hash_is_stable_for_equal_values() {
        assert_eq!(
            hash(&json!({"a": 1, "b": [1, 2]})),
            hash(&json!({"b": [1, 2], "a": 1}))
        );
        assert_ne!(hash(&json!({"a": 1})), hash(&json!({"a": 2})));
    }
}
