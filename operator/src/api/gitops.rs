//! Writes that would fight a GitOps tool are refused up front.
//!
//! A field that Argo CD or Flux applied is owned by that tool's field manager (server-side
//! apply records it in `metadata.managedFields`); changing it through the API would be
//! reverted at the next sync. A patch touching such a field is refused with the manager and
//! the field named, so the caller changes it in Git instead.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
use serde_json::Value;

/// A field of a patch that a GitOps manager owns.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Owned {
    /// The field's path, e.g. `spec.plan`.
    pub field: String,
    pub manager: String,
}

/// The fields `patch` (a JSON merge patch) sets or removes that a manager in `managers`
/// owns, by the object's `managedFields`. A patched object or list replaces the owned one
/// whole, so owning any part of it counts.
pub fn owned_fields(
    managed: &[ManagedFieldsEntry],
    managers: &[String],
    patch: &Value,
) -> Vec<Owned> {
    let mut owned = Vec::new();
    for entry in managed {
        let Some(manager) = entry.manager.as_ref().filter(|m| managers.contains(m)) else {
            continue;
        };
        let Some(fields) = &entry.fields_v1 else {
            continue;
        };
        walk(&fields.0, patch, "", manager, &mut owned);
    }
    owned.sort_by(|a, b| (&a.field, &a.manager).cmp(&(&b.field, &b.manager)));
    owned.dedup();
    owned
}

fn walk(fields: &Value, patch: &Value, path: &str, manager: &str, owned: &mut Vec<Owned>) {
    let Some(patch) = patch.as_object() else {
        return;
    };
    for (key, value) in patch {
        let Some(node) = fields.get(format!("f:{key}")) else {
            continue;
        };
        let field = if path.is_empty() {
            key.clone()
        } else {
            format!("{path}.{key}")
        };
        match value {
            // A nested merge: only the keys it names are changed.
            Value::Object(_) if node.as_object().is_some_and(|n| !n.is_empty()) => {
                walk(node, value, &field, manager, owned)
            }
            _ => owned.push(Owned {
                field,
                manager: manager.to_string(),
            }),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::FieldsV1;
    use serde_json::json;

    fn entry(manager: &str, fields: Value) -> ManagedFieldsEntry {
        ManagedFieldsEntry {
            manager: Some(manager.into()),
            operation: Some("Apply".into()),
            fields_v1: Some(FieldsV1(fields)),
            ..Default::default()
        }
    }

    #[test]
    fn a_field_applied_by_a_gitops_tool_is_named_with_its_manager() {
        let managed = vec![
            entry(
                "argocd-controller",
                json!({"f:spec": {"f:plan": {}, "f:quota": {"f:requests": {"f:cpu": {}}}}}),
            ),
            entry("landlord-api", json!({"f:spec": {"f:suspended": {}}})),
        ];
        let managers = vec!["argocd-controller".to_string()];
        let owned = |patch: Value| owned_fields(&managed, &managers, &patch);
        assert_eq!(
            owned(json!({"spec": {"plan": "pro", "suspended": true}})),
            vec![Owned {
                field: "spec.plan".into(),
                manager: "argocd-controller".into()
            }]
        );
        // Removing an owned field is changing it too.
        assert_eq!(owned(json!({"spec": {"plan": null}})).len(), 1);
        // A nested merge reaches only what it names.
        assert_eq!(
            owned(json!({"spec": {"quota": {"requests": {"memory": "1Gi"}}}})),
            vec![]
        );
        assert_eq!(
            owned(json!({"spec": {"quota": {"requests": {"cpu": "2"}}}}))[0].field,
            "spec.quota.requests.cpu"
        );
        // Fields of other managers are not GitOps's.
        assert!(owned(json!({"spec": {"suspended": false}})).is_empty());
    }
}
