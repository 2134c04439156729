//! Deciding whether an object needs a write.
//!
//! Landlord applies with server-side apply, but a reconcile of an unchanged tenant must make
//! no write at all. So before applying, the desired object is compared with the live one:
//! the write is skipped when the live object carries the hash of the same desired state and
//! still holds every field Landlord sets (so an edit or a deletion by someone else is
//! corrected on the next reconcile).

use std::fmt::Write as _;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::{labels::APPLIED_HASH, quantity};

/// A stable hash of a desired object, stored in its `landlord.dev/applied-hash` annotation:
/// the first 64 bits of SHA-256 over the object's canonical JSON (object keys sorted, no
/// whitespace), in hex. A fixed algorithm over a fixed encoding, so the same desired state
/// hashes the same across Rust releases and Landlord versions (a changed hash would rewrite
/// every object once).
pub fn hash(desired: &Value) -> String {
    let digest = Sha256::digest(canonical(desired).as_bytes());
    digest[..8]
        .iter()
        .fold(String::with_capacity(16), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
}

/// JSON with object keys in byte order and no whitespace, whatever order the map keeps them
/// in: the one encoding Landlord hashes (applied hashes here, flag revisions in `flags`).
pub fn canonical(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
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

/// Maps whose values are quantities, by their key: a ResourceQuota's `hard`, a container's
/// `requests` and `limits`, a LimitRange item's `default`, `defaultRequest`, `max`, `min`,
/// `maxLimitRequestRatio`.
const QUANTITY_MAPS: &[&str] = &[
    "hard",
    "requests",
    "limits",
    "default",
    "defaultRequest",
    "max",
    "min",
    "maxLimitRequestRatio",
];
/// Fields that are quantities themselves (an emptyDir's `sizeLimit`).
const QUANTITY_FIELDS: &[&str] = &["sizeLimit"];

/// Whether `live` holds every field of `desired` with an equal value. Extra fields in `live`
/// (defaults, other managers' fields, status) are ignored; lists must match element-wise.
/// Values are compared as quantities only where the field is a quantity (the API server
/// rewrites `12e-1` as `1200m` there); elsewhere `1e3` and `1k` differ.
pub fn contains(live: &Value, desired: &Value) -> bool {
    contains_at(live, desired, false)
}

fn contains_at(live: &Value, desired: &Value, quantity: bool) -> bool {
    match (live, desired) {
        (_, Value::Null) => true,
        (Value::Object(l), Value::Object(d)) => d.iter().all(|(k, dv)| match l.get(k) {
            Some(lv) => {
                let child_is_quantity = match dv {
                    Value::Object(_) => QUANTITY_MAPS.contains(&k.as_str()),
                    _ => quantity || QUANTITY_FIELDS.contains(&k.as_str()),
                };
                // The flag marks a map of quantities; its own leaves are the quantities.
                match dv {
                    Value::Object(_) => contains_map(lv, dv, child_is_quantity),
                    _ => contains_at(lv, dv, child_is_quantity),
                }
            }
            None => is_empty(dv),
        }),
        (Value::Array(l), Value::Array(d)) => {
            l.len() == d.len() && l.iter().zip(d).all(|(lv, dv)| contains_at(lv, dv, false))
        }
        (Value::String(l), Value::String(d)) if quantity => quantity::same(l, d),
        (Value::Number(l), Value::String(d)) | (Value::String(d), Value::Number(l)) if quantity => {
            quantity::same(&l.to_string(), d)
        }
        (l, d) => l == d,
    }
}

/// A map whose direct values are quantities when `quantities` is set.
fn contains_map(live: &Value, desired: &Value, quantities: bool) -> bool {
    match (live, desired) {
        (Value::Object(l), Value::Object(d)) if quantities => {
            d.iter().all(|(k, dv)| match l.get(k) {
                Some(lv) => contains_at(lv, dv, !dv.is_object()),
                None => is_empty(dv),
            })
        }
        _ => contains_at(live, desired, false),
    }
}

/// The API server drops empty maps, lists and strings of `omitempty` fields (an RBAC
/// subject's `apiGroup: ""`, say): an empty desired field matches a missing one.
fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::String(s) => s.is_empty(),
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
    fn quantities_are_compared_by_value_only_where_the_field_is_a_quantity() {
        let desired = json!({"spec": {"hard": {"requests.cpu": "12e-1"},
            "limits": [{"type": "Container", "default": {"cpu": "5e-1"}}]}});
        let live = json!({"spec": {"hard": {"requests.cpu": "1200m"},
            "limits": [{"type": "Container", "default": {"cpu": "500m"}}]}});
        assert!(contains(&live, &desired));
        let desired = json!({"data": {"size": "1e3"}, "metadata": {"labels": {"v": "1k"}}});
        let live = json!({"data": {"size": "1k"}, "metadata": {"labels": {"v": "1e3"}}});
        assert!(!contains(&live, &desired));
        let containers = json!({"containers": [{"resources": {"limits": {"memory": "1024Mi"}}}]});
        let live = json!({"containers": [{"resources": {"limits": {"memory": "1Gi"}}}]});
        assert!(contains(&live, &containers));
    }

    #[test]
    fn an_empty_string_matches_a_field_the_server_leaves_out() {
        let desired = json!({"subjects": [{"kind": "ServiceAccount", "name": "ci", "namespace": "tools", "apiGroup": ""}]});
        let live =
            json!({"subjects": [{"kind": "ServiceAccount", "name": "ci", "namespace": "tools"}]});
        assert!(contains(&live, &desired));
        let desired = json!({"subjects": [{"kind": "User", "name": "a", "apiGroup": "rbac.authorization.k8s.io"}]});
        let live = json!({"subjects": [{"kind": "User", "name": "a"}]});
        assert!(!contains(&live, &desired));
    }

    #[test]
    fn the_hash_has_a_fixed_value() {
        // Golden values: a change here rewrites every object Landlord ever applied.
        assert_eq!(hash(&json!({})), "44136fa355b3678a");
        assert_eq!(
            hash(&json!({"metadata": {"name": "q"}, "spec": {"hard": {"pods": "10"}}})),
            "b870831dec7891f5"
        );
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
