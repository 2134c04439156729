//! The flags part of a tenant: its effective feature flags, resolved from the FeatureFlagSets
//! that apply to it, in ConfigMap `landlord-flags` of its namespace (tenant-runtime serves
//! them), and `FlagsReady`.
//!
//! A problem in the sets (a type conflict, an override of a locked flag) makes `FlagsReady`
//! False, naming the flag and the sets, and publishes a Warning event; it does not make the
//! Tenant's `Ready` False. The flags are still resolved deterministically and served, the
//! tenant's stack runs, and the problem belongs to whoever wrote the sets: one platform set
//! with a typo must not turn every tenant Degraded (and page everyone) at once. The sets
//! themselves report it too (their `Conflict` and `Ready` conditions).

use landlord_crds::conditions::Reason;
use std::collections::BTreeMap;

use k8s_openapi::{
    api::core::v1::ConfigMap,
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference},
};
use kube::{
    Api, ResourceExt,
    runtime::{events::EventType, reflector::ObjectRef},
};
use landlord_crds::{
    Tenant,
    conditions::{self, Observation, Status, tenant::FLAGS_READY},
};
use serde::Serialize;

use super::{
    State, desired,
    error::{Error, Result},
};
use crate::{
    apply::{self, EnsureError, Outcome},
    flags::{
        resolve::{EffectiveFlag, Resolution},
        resolve_for,
    },
    labels,
};

/// Name of the ConfigMap holding a tenant's effective flags.
pub const CONFIG_MAP: &str = "landlord-flags";
/// Its one key.
pub const KEY: &str = "flags.json";
/// `landlord.dev/component` of the ConfigMap.
pub const COMPONENT: &str = "flags";
const MANAGER: &str = "landlord/flags";
/// How many problems a condition message spells out before it counts the rest.
const SHOWN: usize = 3;

/// The content of `flags.json`.
#[derive(Serialize)]
struct Document<'a> {
    tenant: &'a str,
    revision: String,
    flags: &'a BTreeMap<String, EffectiveFlag>,
}

/// The `landlord-flags` ConfigMap of a tenant.
pub fn config_map(
    tenant: &Tenant,
    owner: &OwnerReference,
    resolution: &Resolution,
) -> serde_json::Result<ConfigMap> {
    let name = tenant.name_any();
    let document = Document {
        tenant: &name,
        revision: resolution.revision(),
        flags: &resolution.flags,
    };
    let mut labels = labels::tenant_labels(&name);
    labels.insert(labels::COMPONENT.to_string(), COMPONENT.to_string());
    Ok(ConfigMap {
        metadata: ObjectMeta {
            name: Some(CONFIG_MAP.to_string()),
            namespace: Some(tenant.namespace_name()),
            labels: Some(labels),
            owner_references: Some(vec![owner.clone()]),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            KEY.to_string(),
            serde_json::to_string_pretty(&document)?,
        )])),
        ..Default::default()
    })
}

/// `FlagsReady`: True when every applicable definition is served, else False naming the
/// problems (the most serious kind first, as the reason).
pub fn observation(resolution: &Resolution) -> Observation {
    let mut problems = resolution.problems.clone();
    problems.sort();
    problems.dedup();
    let Some(first) = problems.first() else {
        return Observation::new(
            FLAGS_READY,
            Status::True,
            Reason::Resolved,
            format!(
                "{} flags from {} FeatureFlagSets in ConfigMap {CONFIG_MAP} (revision {})",
                resolution.flags.len(),
                resolution.sets.len(),
                &resolution.revision()[..12]
            ),
        );
    };
    let mut message: Vec<String> = problems.iter().take(SHOWN).map(|p| p.to_string()).collect();
    if problems.len() > SHOWN {
        message.push(format!("and {} more problems", problems.len() - SHOWN));
    }
    Observation::new(
        FLAGS_READY,
        Status::False,
        first.reason(),
        format!(
            "{}; the other flags are served from ConfigMap {CONFIG_MAP}",
            message.join("; ")
        ),
    )
}

/// The most a ConfigMap may hold: the API server refuses one whose keys and values together
/// exceed 1 MiB.
pub const MAX_BYTES: usize = 1024 * 1024;

/// Size of a ConfigMap's data as the API server counts it (keys and values).
fn data_bytes(config_map: &ConfigMap) -> usize {
    config_map
        .data
        .iter()
        .flatten()
        .map(|(k, v)| k.len() + v.len())
        .sum()
}

/// `FlagsReady` when the effective flags do not fit a ConfigMap: the size, the limit, and the
/// sets that contribute the most, with their share. Nothing is written: the flags served
/// before (if any) stay, and the rest of the stack is reconciled as usual.
pub fn too_large(bytes: usize, resolution: &Resolution) -> Option<Observation> {
    if bytes <= MAX_BYTES {
        return None;
    }
    let mut by_set: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for flag in resolution.flags.values() {
        let entry = by_set.entry(flag.source.as_str()).or_default();
        entry.0 += flag.value.to_string().len();
        entry.1 += 1;
    }
    let mut sets: Vec<(&str, (usize, usize))> = by_set.into_iter().collect();
    sets.sort_by(|a, b| b.1.0.cmp(&a.1.0).then(a.0.cmp(b.0)));
    let mut named: Vec<String> = sets
        .iter()
        .take(SHOWN)
        .map(|(set, (size, count))| format!("FeatureFlagSet {set} ({count} flags, {size} bytes)"))
        .collect();
    if sets.len() > SHOWN {
        named.push(format!("and {} more sets", sets.len() - SHOWN));
    }
    Some(Observation::new(
        FLAGS_READY,
        Status::False,
        Reason::FlagsTooLarge,
        format!(
            "the effective flags take {bytes} bytes, more than the {MAX_BYTES} bytes ConfigMap {CONFIG_MAP} may hold; they come from {}; the flags served before are kept",
            named.join(", ")
        ),
    ))
}

/// Writes the tenant's effective flags (only when they changed) and reports `FlagsReady`.
pub async fn provision(tenant: &Tenant, state: &State) -> Result<Observation> {
    let ctx = &state.ctx;
    let resolution = resolve_for(tenant, &state.stores.flag_sets.state(), &ctx.config);
    let owner = desired::owner_reference(tenant).ok_or(Error::MissingUid)?;
    let desired = config_map(tenant, &owner, &resolution).map_err(|source| Error::Encode {
        what: "effective flags",
        source,
    })?;
    if let Some(too_large) = too_large(data_bytes(&desired), &resolution) {
        if newly_reported(tenant, &too_large) {
            super::publish(
                state,
                tenant,
                EventType::Warning,
                too_large.reason.as_str(),
                &too_large.message,
            )
            .await;
        }
        return Ok(too_large);
    }
    let ns = tenant.namespace_name();
    let live = state
        .stores
        .config_maps
        .get(&ObjectRef::new(CONFIG_MAP).within(&ns));
    let api = Api::<ConfigMap>::namespaced(ctx.client.clone(), &ns);
    match apply::ensure(&api, live.as_ref(), &desired, MANAGER, &ctx.metrics).await {
        Ok(Outcome::Applied) => tracing::info!(
            namespace = %ns,
            flags = resolution.flags.len(),
            "applied effective flags"
        ),
        Ok(Outcome::Unchanged) => {}
        Err(EnsureError::Encode(source)) => {
            return Err(Error::Encode {
                what: "effective flags",
                source,
            });
        }
        Err(EnsureError::Foreign(message)) => return Err(Error::Foreign(message)),
        Err(EnsureError::Kube(source)) => {
            return Err(Error::Kube {
                action: format!("applying ConfigMap {CONFIG_MAP}"),
                source,
            });
        }
    }
    let observation = observation(&resolution);
    if !observation.is_true() && newly_reported(tenant, &observation) {
        super::publish(
            state,
            tenant,
            EventType::Warning,
            observation.reason.as_str(),
            &observation.message,
        )
        .await;
    }
    Ok(observation)
}

/// Whether the Tenant's status does not say this yet (one event per new problem, not one per
/// reconcile).
fn newly_reported(tenant: &Tenant, observation: &Observation) -> bool {
    let current = tenant
        .status
        .as_ref()
        .and_then(|s| conditions::find(&s.conditions, FLAGS_READY));
    current
        .is_none_or(|c| c.reason != observation.reason.as_str() || c.message != observation.message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use landlord_crds::FeatureFlagSet;
    use serde_json::{Value, json};
    use std::sync::Arc;

    fn tenant() -> Tenant {
        serde_json::from_value(json!({
            "apiVersion": "landlord.dev/v1alpha1", "kind": "Tenant",
            "metadata": {"name": "acme", "uid": "u-1", "labels": {"segment": "wholesale"}},
            "spec": {"tier": "shared", "plan": "pro"}
        }))
        .expect("tenant fixture")
    }

    fn set(namespace: &str, name: &str, spec: Value) -> Arc<FeatureFlagSet> {
        Arc::new(
            serde_json::from_value(json!({
                "apiVersion": "landlord.dev/v1alpha1", "kind": "FeatureFlagSet",
                "metadata": {"name": name, "namespace": namespace},
                "spec": spec,
            }))
            .expect("set fixture"),
        )
    }

    fn flag(name: &str, type_: &str, value: Value) -> Value {
        json!({"name": name, "type": type_, "variants": {"v": {type_: value}}, "defaultVariant": "v"})
    }

    #[test]
    fn flags_over_a_mebibyte_are_flags_too_large_naming_the_size_and_sets() {
        let big: Vec<Value> = (0..256)
            .map(|i| flag(&format!("f{i}"), "string", json!("x".repeat(4096))))
            .collect();
        let sets = [
            set("landlord-platform", "big", json!({"flags": big})),
            set(
                "landlord-platform",
                "small",
                json!({"flags": [flag("tiny", "boolean", json!(true))]}),
            ),
        ];
        let t = tenant();
        let r = resolve_for(&t, &sets, &Config::default());
        let owner = desired::owner_reference(&t).expect("owner");
        let bytes = data_bytes(&config_map(&t, &owner, &r).expect("config map"));
        assert!(bytes > MAX_BYTES, "{bytes}");
        let o = too_large(bytes, &r).expect("too large");
        assert_eq!(
            (o.type_.as_str(), o.reason.as_str()),
            ("FlagsReady", "FlagsTooLarge")
        );
        assert!(o.message.contains(&bytes.to_string()), "{}", o.message);
        assert!(
            o.message
                .contains("FeatureFlagSet landlord-platform/big (256 flags"),
            "{}",
            o.message
        );
        // The largest set first.
        assert!(o.message.find("/big").expect("big") < o.message.find("/small").expect("small"));
        let few = resolve_for(&t, &sets[1..], &Config::default());
        assert_eq!(too_large(100, &few), None);
    }

    #[test]
    fn only_platform_and_own_namespace_sets_apply() {
        let config = Config::default();
        let sets = [
            set(
                "landlord-platform",
                "p",
                json!({"flags": [flag("a", "boolean", json!(true))]}),
            ),
            set(
                "tenant-acme",
                "own",
                json!({"flags": [flag("b", "string", json!("x"))]}),
            ),
            set(
                "tenant-other",
                "theirs",
                json!({"flags": [flag("c", "string", json!("y"))]}),
            ),
            set(
                "somewhere",
                "stray",
                json!({"flags": [flag("d", "string", json!("z"))]}),
            ),
        ];
        let r = resolve_for(&tenant(), &sets, &config);
        assert_eq!(r.flags.keys().collect::<Vec<_>>(), ["a", "b"]);
    }

    #[test]
    fn config_map_holds_the_contract_document() {
        let sets = [set(
            "landlord-platform",
            "p",
            json!({"flags": [flag("a", "boolean", json!(true))]}),
        )];
        let t = tenant();
        let r = resolve_for(&t, &sets, &Config::default());
        let owner = desired::owner_reference(&t).expect("owner");
        let cm = config_map(&t, &owner, &r).expect("config map");
        assert_eq!(cm.metadata.name.as_deref(), Some("landlord-flags"));
        assert_eq!(cm.metadata.namespace.as_deref(), Some("tenant-acme"));
        let labels = cm.metadata.labels.clone().unwrap_or_default();
        for (k, v) in [
            ("app.kubernetes.io/managed-by", "landlord"),
            ("landlord.dev/tenant", "acme"),
            ("landlord.dev/component", "flags"),
        ] {
            assert_eq!(labels.get(k).map(String::as_str), Some(v), "label {k}");
        }
        let data = cm.data.unwrap_or_default();
        let doc: Value = serde_json::from_str(&data["flags.json"]).expect("json");
        assert_eq!(
            doc,
            json!({
                "tenant": "acme",
                "revision": r.revision(),
                "flags": {"a": {"type": "boolean", "value": true, "variant": "v",
                                "reason": "STATIC", "source": "landlord-platform/p"}}
            })
        );
    }

    #[test]
    fn no_sets_still_give_a_document_and_ready_flags() {
        let t = tenant();
        let r = resolve_for(&t, &[], &Config::default());
        let owner = desired::owner_reference(&t).expect("owner");
        let cm = config_map(&t, &owner, &r).expect("config map");
        let doc: Value =
            serde_json::from_str(&cm.data.unwrap_or_default()["flags.json"]).expect("json");
        assert_eq!(doc["flags"], json!({}));
        let o = observation(&r);
        assert!(o.is_true());
        assert_eq!(o.reason, "Resolved");
    }

    #[test]
    fn problems_make_flags_ready_false_naming_flag_and_sets() {
        let mut locked = flag("pay", "boolean", json!(true));
        locked["locked"] = json!(true);
        let sets = [
            set(
                "landlord-platform",
                "a",
                json!({"priority": 2, "flags": [flag("beta", "boolean", json!(true)), locked]}),
            ),
            set(
                "landlord-platform",
                "b",
                json!({"priority": 1, "flags": [flag("beta", "string", json!("on"))]}),
            ),
            set(
                "tenant-acme",
                "mine",
                json!({"flags": [flag("pay", "boolean", json!(false))]}),
            ),
        ];
        let r = resolve_for(&tenant(), &sets, &Config::default());
        let o = observation(&r);
        assert_eq!(o.status, Status::False);
        assert_eq!(o.reason, "FlagConflict");
        for needle in [
            "beta",
            "landlord-platform/a",
            "landlord-platform/b",
            "pay",
            "tenant-acme/mine",
        ] {
            assert!(o.message.contains(needle), "{needle} in {}", o.message);
        }

        let only_locked = [sets[0].clone(), sets[2].clone()];
        let o = observation(&resolve_for(&tenant(), &only_locked, &Config::default()));
        assert_eq!(o.reason, "LockedFlagOverride");
    }

    #[test]
    fn many_problems_are_counted_not_all_spelled_out() {
        let a: Vec<Value> = (0..5)
            .map(|i| flag(&format!("f{i}"), "boolean", json!(true)))
            .collect();
        let b: Vec<Value> = (0..5)
            .map(|i| flag(&format!("f{i}"), "integer", json!(1)))
            .collect();
        let sets = [
            set("landlord-platform", "a", json!({"priority": 2, "flags": a})),
            set("landlord-platform", "b", json!({"priority": 1, "flags": b})),
        ];
        let o = observation(&resolve_for(&tenant(), &sets, &Config::default()));
        assert!(o.message.contains("and 2 more problems"), "{}", o.message);
    }
}
