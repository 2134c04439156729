//! Schema fragments shared by several resource kinds.
//!
//! Kubernetes' structural schemas need a few shapes that schemars does not derive on its own
//! (int-or-string quantities, free-form JSON objects, map lists). Each lives here once.

use schemars::{Schema, SchemaGenerator, json_schema};

/// Pattern of a DNS-1123 label: what Kubernetes accepts as a namespace or Service name.
pub const DNS_LABEL: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";

/// A resource quantity such as `500m`, `2`, `1Gi`: an int or a string, checked by the API
/// server's own quantity parser and refused when negative.
pub fn quantity(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "description": "A Kubernetes resource quantity, such as 500m, 2 or 1Gi. Must not be negative.",
        "x-kubernetes-int-or-string": true,
        "x-kubernetes-validations": [{
            "rule": "isQuantity(string(self)) && !quantity(string(self)).isLessThan(quantity('0'))",
            "message": "must be a non-negative Kubernetes quantity such as 500m, 2 or 1Gi"
        }]
    })
}

/// An optional quantity: the same schema; `Option` only decides whether the field is required.
pub fn optional_quantity(generator: &mut SchemaGenerator) -> Schema {
    quantity(generator)
}

/// A flag's object value: free-form JSON with at most 64 top-level properties (the operator
/// also bounds its encoded size, see `flags::resolve::MAX_OBJECT_VALUE_BYTES`).
pub fn flag_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "maxProperties": 64,
        "x-kubernetes-preserve-unknown-fields": true
    })
}

/// Conditions in KEP-1623 shape, kept as a list map keyed on `type` so that server-side apply
/// merges them per condition.
pub fn conditions(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "description": "Conditions in the standard Kubernetes shape, one per type.",
        "type": "array",
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["type"],
        "maxItems": 32,
        "items": {
            "type": "object",
            "required": ["type", "status", "lastTransitionTime", "reason", "message"],
            "properties": {
                "type": {"type": "string", "maxLength": 316,
                    "description": "Type of the condition, in CamelCase (Ready, NamespaceReady, ...)."},
                "status": {"type": "string", "enum": ["True", "False", "Unknown"],
                    "description": "Status of the condition: True, False or Unknown."},
                "observedGeneration": {"type": "integer", "format": "int64", "minimum": 0,
                    "description": "The .metadata.generation the condition was computed from."},
                "lastTransitionTime": {"type": "string", "format": "date-time",
                    "description": "When the condition last changed status."},
                "reason": {"type": "string", "maxLength": 1024,
                    "description": "A CamelCase word saying why the condition has its status."},
                "message": {"type": "string", "maxLength": 32768,
                    "description": "A human readable message; names the blocking child when not True."}
            }
        }
    })
}

/// An optional point in time (`metav1.Time`): an RFC 3339 string.
pub fn optional_time(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "format": "date-time"
    })
}
