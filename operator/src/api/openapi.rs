//! The API's OpenAPI 3.1 document, built from the route table ([`super::endpoints`]) and the
//! JSON Schemas of the same Rust types the CRDs are generated from (`schemars`), so the
//! document cannot drift from the routes or from the CRDs. OpenAPI 3.1 schemas are JSON
//! Schema 2020-12, what schemars produces.

use axum::{Json, http::header, response::IntoResponse};
use landlord_crds::{
    DomainSpec, DomainStatus, FeatureFlagSetSpec, FeatureFlagSetStatus, TenantSpec, TenantStatus,
    WebhookEndpointSpec, WebhookEndpointStatus,
};
use serde_json::{Map, Value, json};

use super::{auth::Caller, connection::Connection, operation::Operation, problem::MEDIA_TYPE};

/// `GET /v1/openapi.json`.
pub async fn serve() -> impl IntoResponse {
    ([(header::CACHE_CONTROL, "no-cache")], Json(document()))
}

/// The document.
pub fn document() -> Value {
    let mut schemas = Map::new();
    let mut add = |name: &str, schema: schemars::Schema| {
        let mut value = schema.to_value();
        // Definitions of nested types move to components; references follow them.
        if let Some(Value::Object(defs)) = value.as_object_mut().and_then(|o| o.remove("$defs")) {
            schemas.extend(defs);
        }
        if let Some(o) = value.as_object_mut() {
            o.remove("$schema");
        }
        schemas.insert(name.to_string(), value);
    };
    add("TenantSpec", schemars::schema_for!(TenantSpec));
    add("TenantStatus", schemars::schema_for!(TenantStatus));
    add("Operation", schemars::schema_for!(Operation));
    add("Caller", schemars::schema_for!(Caller));
    add("Connection", schemars::schema_for!(Connection));
    add("DomainSpec", schemars::schema_for!(DomainSpec));
    add("DomainStatus", schemars::schema_for!(DomainStatus));
    add(
        "FeatureFlagSetSpec",
        schemars::schema_for!(FeatureFlagSetSpec),
    );
    add(
        "FeatureFlagSetStatus",
        schemars::schema_for!(FeatureFlagSetStatus),
    );
    add(
        "WebhookEndpointSpec",
        schemars::schema_for!(WebhookEndpointSpec),
    );
    add(
        "WebhookEndpointStatus",
        schemars::schema_for!(WebhookEndpointStatus),
    );
    add("Catalog", schemars::schema_for!(super::catalog::Catalog));
    add(
        "HistoryPage",
        schemars::schema_for!(super::history::HistoryPage),
    );
    let object_meta = json!({
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "uid": {"type": "string"},
            "generation": {"type": "integer"},
            "resourceVersion": {"type": "string"},
            "creationTimestamp": {"type": "string"},
            "deletionTimestamp": {"type": "string"},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
            "finalizers": {"type": "array", "items": {"type": "string"}},
        },
    });
    // A Landlord object as the API shows it: its metadata, spec and status.
    let resource = |kind: &str| {
        json!({
            "type": "object",
            "required": ["apiVersion", "kind", "metadata", "spec"],
            "properties": {
                "apiVersion": {"const": "landlord.dev/v1alpha1"},
                "kind": {"const": kind},
                "metadata": object_meta,
                "spec": {"$ref": format!("#/components/schemas/{kind}Spec")},
                "status": {"$ref": format!("#/components/schemas/{kind}Status")},
            },
        })
    };
    schemas.insert("Tenant".into(), resource("Tenant"));
    schemas.insert(
        "TenantList".into(),
        json!({
            "type": "object",
            "required": ["items", "nextCursor"],
            "properties": {
                "items": {"type": "array", "items": {"$ref": "#/components/schemas/Tenant"}},
                "nextCursor": {"type": ["string", "null"], "description": "Pass as `cursor` for the next page; null on the last."},
            },
        }),
    );
    // A tenant's own objects (super::objects): the object, its list, a create's body.
    for kind in ["Domain", "FeatureFlagSet", "WebhookEndpoint"] {
        schemas.insert(kind.into(), resource(kind));
        schemas.insert(
            format!("{kind}List"),
            json!({
                "type": "object",
                "required": ["items"],
                "properties": {
                    "items": {"type": "array", "items": {"$ref": format!("#/components/schemas/{kind}")}},
                },
            }),
        );
        schemas.insert(
            format!("New{kind}"),
            json!({
                "type": "object",
                "required": ["metadata", "spec"],
                "additionalProperties": false,
                "properties": {
                    "apiVersion": {"const": "landlord.dev/v1alpha1"},
                    "kind": {"const": kind},
                    "metadata": {
                        "type": "object",
                        "required": ["name"],
                        "additionalProperties": false,
                        "properties": {
                            "name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", "maxLength": 253},
                        },
                    },
                    "spec": {"$ref": format!("#/components/schemas/{kind}Spec")},
                },
            }),
        );
    }
    schemas.insert(
        "EffectiveFlags".into(),
        json!({
            "type": "object",
            "description": "The tenant's flags as Landlord resolved them (the ConfigMap landlord-flags that tenant-runtime serves over OFREP).",
        }),
    );
    let labels = json!({"type": "object", "additionalProperties": {"type": "string"}});
    schemas.insert(
        "NewTenant".into(),
        json!({
            "type": "object",
            "required": ["metadata", "spec"],
            "additionalProperties": false,
            "properties": {
                "apiVersion": {"const": "landlord.dev/v1alpha1"},
                "kind": {"const": "Tenant"},
                "metadata": {
                    "type": "object",
                    "required": ["name"],
                    "additionalProperties": false,
                    "properties": {
                        "name": {
                            "type": "string",
                            "pattern": landlord_crds::tenant::NAME_PATTERN,
                            "maxLength": landlord_crds::tenant::NAME_MAX_LENGTH,
                        },
                        "labels": labels,
                        "annotations": labels,
                    },
                },
                "spec": {"$ref": "#/components/schemas/TenantSpec"},
            },
        }),
    );
    schemas.insert(
        "TenantPatch".into(),
        json!({
            "type": "object",
            "additionalProperties": false,
            "description": "A JSON merge patch (RFC 7386) of the Tenant: null removes a field.",
            "properties": {
                "metadata": {
                    "type": "object",
                    "additionalProperties": false,
                    "properties": {"labels": {"type": "object"}, "annotations": {"type": "object"}},
                },
                "spec": {"type": "object"},
            },
        }),
    );
    schemas.insert(
        "Problem".into(),
        json!({
            "type": "object",
            "description": "RFC 9457 problem details.",
            "required": ["type", "title", "status", "detail"],
            "properties": {
                "type": {"type": "string", "format": "uri"},
                "title": {"type": "string"},
                "status": {"type": "integer"},
                "detail": {"type": "string"},
                "requestId": {"type": "string", "description": "Also the auditID of the API server's audit events of the request."},
                "errors": {"type": "array", "items": {
                    "type": "object",
                    "required": ["field", "reason", "message"],
                    "properties": {"field": {"type": "string"}, "reason": {"type": "string"}, "message": {"type": "string"}},
                }},
            },
        }),
    );
    let mut paths = Map::new();
    for (endpoint, _) in super::endpoints() {
        let mut responses = Map::new();
        for (code, schema) in endpoint.responses {
            let mut response = json!({"description": status_text(*code)});
            if let Some(schema) = schema {
                response["content"] = json!({endpoint.produces: {"schema": {"$ref": format!("#/components/schemas/{schema}")}}});
            } else if *code == 200 {
                response["content"] = json!({endpoint.produces: {}});
            }
            responses.insert(code.to_string(), response);
        }
        let mut problems: Vec<u16> = endpoint.problems.to_vec();
        if endpoint.authenticated {
            problems.push(401);
        }
        problems.extend([500, 503]);
        for code in problems {
            responses.insert(
                code.to_string(),
                json!({"description": status_text(code),
                       "content": {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}}),
            );
        }
        let mut parameters: Vec<Value> = endpoint
            .path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string", "minLength": 1}}))
            .collect();
        parameters.extend(
            endpoint
                .query
                .map(|q| query_parameters(q()))
                .unwrap_or_default(),
        );
        parameters.extend(header_parameters(endpoint.operation_id));
        let mut operation = json!({
            "operationId": endpoint.operation_id,
            "summary": endpoint.summary,
            "parameters": parameters,
            "responses": responses,
        });
        if !endpoint.authenticated {
            operation["security"] = json!([]);
        }
        if let Some((media_type, schema)) = endpoint.request {
            operation["requestBody"] = json!({
                "required": true,
                "content": {media_type: {"schema": {"$ref": format!("#/components/schemas/{schema}")}}},
            });
        }
        let path = paths
            .entry(endpoint.path.to_string())
            .or_insert_with(|| json!({}));
        path[endpoint.method.as_str().to_lowercase()] = operation;
    }
    let document = json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Landlord API",
            "version": "v1",
            "description": "Landlord's self-service API. Every call is made as the caller (TokenReview, then impersonation): Kubernetes RBAC decides. Errors are application/problem+json (RFC 9457).",
        },
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "A token the cluster accepts for the audience landlord-api, e.g. `kubectl create token <sa> --audience landlord-api`."}},
            "schemas": schemas,
        },
    });
    // schemars refers to nested types under `$defs`; here they are components.
    let text = document
        .to_string()
        .replace("\"#/$defs/", "\"#/components/schemas/");
    serde_json::from_str(&text).unwrap_or(document)
}

/// The schema of a query type `Q`, with its nested types (enums) inline: a parameter's
/// schema has no `$defs` of its own.
pub fn query_schema<Q: schemars::JsonSchema>() -> schemars::Schema {
    schemars::generate::SchemaSettings::draft2020_12()
        .with(|s| s.inline_subschemas = true)
        .into_generator()
        .into_root_schema_for::<Q>()
}

/// One `in: query` parameter per property of a query type's schema, with its description;
/// required when the schema requires it. An optional field is left out of a query rather
/// than sent as null, so its schema loses the null schemars gives an `Option`.
fn query_parameters(schema: schemars::Schema) -> Vec<Value> {
    let value = schema.to_value();
    let required: Vec<&str> = value["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let Some(properties) = value["properties"].as_object() else {
        return vec![];
    };
    let is_null =
        |v: &Value| v.is_null() || v == "null" || v.get("type").is_some_and(|t| t == "null");
    properties
        .iter()
        .map(|(name, property)| {
            let mut property = property.clone();
            let description = property
                .as_object_mut()
                .and_then(|p| p.remove("description"))
                .unwrap_or_default();
            if let Some(list) = property.get_mut("type").and_then(Value::as_array_mut) {
                list.retain(|t| !is_null(t));
                if let [only] = list.as_slice() {
                    let only = only.clone();
                    property["type"] = only;
                }
            }
            for key in ["anyOf", "oneOf", "enum"] {
                if let Some(options) = property.get_mut(key).and_then(Value::as_array_mut) {
                    options.retain(|o| !is_null(o));
                }
            }
            // `Option` of an enum: the enum's own schema, once its null is gone.
            if let Some([only]) = property
                .get("anyOf")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
            {
                property = only.clone();
            }
            let mut parameter = json!({"name": name, "in": "query", "schema": property,
                                       "required": required.contains(&name.as_str())});
            if description.is_string() {
                parameter["description"] = description;
            }
            parameter
        })
        .collect()
}

fn header_parameters(operation_id: &str) -> Vec<Value> {
    let header = |name: &str, required: bool, description: &str| json!({"name": name, "in": "header", "required": required, "schema": {"type": "string"}, "description": description});
    let wait = header(
        "Prefer",
        false,
        "`wait=N`: wait up to N seconds (at most 60) for the operation to finish.",
    );
    match operation_id {
        "createTenant" => vec![
            header(
                "Idempotency-Key",
                true,
                "1 to 255 printable ASCII characters; a retry with the same key and body replays the answer.",
            ),
            wait,
        ],
        "patchTenant" | "deleteTenant" => vec![
            header(
                "If-Match",
                true,
                "The ETag of GET /v1/tenants/{name}/spec (\"g<generation>\").",
            ),
            wait,
        ],
        "rotateTenantDatabasePassword" => vec![
            header(
                "Idempotency-Key",
                false,
                "1 to 255 printable ASCII characters; a retry with the same key asks the same rotation, so it makes no second one.",
            ),
            wait,
        ],
        "suspendTenant" | "resumeTenant" | "getOperation" => vec![wait],
        "getTenant" | "getTenantSpec" => vec![header(
            "If-None-Match",
            false,
            "An ETag: 304 when it still matches.",
        )],
        _ => vec![],
    }
}

fn status_text(code: u16) -> &'static str {
    axum::http::StatusCode::from_u16(code)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Response")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_list_query_is_documented_from_the_type_the_handler_reads() {
        let doc = document();
        let parameters = doc["paths"]["/v1/tenants"]["get"]["parameters"]
            .as_array()
            .unwrap()
            .clone();
        let by_name = |name: &str| {
            parameters
                .iter()
                .find(|p| p["name"] == name && p["in"] == "query")
                .unwrap_or_else(|| panic!("no query parameter {name}: {parameters:?}"))
                .clone()
        };
        let limit = by_name("limit");
        assert_eq!(limit["required"], false);
        assert_eq!(limit["schema"]["type"], "integer");
        assert_eq!(
            (
                limit["schema"]["minimum"].as_f64(),
                limit["schema"]["maximum"].as_f64()
            ),
            (Some(1.0), Some(200.0))
        );
        assert!(limit["description"].as_str().unwrap().contains("Page size"));
        assert_eq!(by_name("cursor")["schema"]["type"], "string");
        let phases: Vec<Value> =
            serde_json::from_value(by_name("phase")["schema"]["enum"].clone()).unwrap();
        assert!(
            phases.contains(&json!("Ready")) && !phases.contains(&Value::Null),
            "{phases:?}"
        );
        let tiers: Vec<Value> = by_name("tier")["schema"]["oneOf"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["const"].clone())
            .collect();
        assert_eq!(tiers, [json!("shared"), json!("dedicated")]);
        // Nothing that admits null, and nothing that refers outside the parameter.
        let text = Value::Array(parameters).to_string();
        assert!(
            !text.contains("\"null\"") && !text.contains("$ref"),
            "{text}"
        );
    }

    fn refs(value: &Value, found: &mut Vec<String>) {
        match value {
            Value::Object(o) => {
                for (k, v) in o {
                    if k == "$ref" {
                        found.extend(v.as_str().map(str::to_string));
                    } else {
                        refs(v, found);
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|v| refs(v, found)),
            _ => {}
        }
    }

    #[test]
    fn every_route_is_documented_once_and_every_reference_resolves() {
        let doc = document();
        let documented: usize = doc["paths"]
            .as_object()
            .unwrap()
            .values()
            .map(|p| p.as_object().unwrap().len())
            .sum();
        assert_eq!(documented, super::super::endpoints().len());
        let mut found = Vec::new();
        refs(&doc, &mut found);
        assert!(!found.is_empty());
        for reference in found {
            let name = reference
                .strip_prefix("#/components/schemas/")
                .unwrap_or_else(|| panic!("{reference} is not a component"));
            assert!(
                doc["components"]["schemas"].get(name).is_some(),
                "{reference} does not resolve"
            );
        }
    }

    #[test]
    fn the_tenant_schema_is_the_crds() {
        let doc = document();
        let spec = &doc["components"]["schemas"]["TenantSpec"];
        // The CRD's own field, with its own documentation: the same type made both.
        let crd = landlord_crds::generate::crds_yaml().unwrap();
        for field in spec["properties"].as_object().unwrap().keys() {
            assert!(crd.contains(&format!("{field}:")), "{field} not in the CRD");
        }
        assert!(spec["properties"].get("tier").is_some());
    }
}
