//! Where the pods Landlord makes in a tenant's namespace run: the Tenant's
//! `spec.placement` (node labels to require, taints to tolerate) on their pod spec. One
//! definition for every such workload (the dedicated PostgreSQL server, the dedicated
//! service instances, the tenant's own tenant-runtime), so none of them lands outside the
//! tenant's nodes. The platform's shared workloads (the pool, the pooled tenant-runtime)
//! get the operator's `pool_placement` the same way ([`place_at`]).

use k8s_openapi::api::core::v1::{PodSpec, Toleration};
use landlord_crds::tenant::{Placement, TaintEffect, Tenant, TolerationOperator};

/// Sets `pod`'s `nodeSelector` and `tolerations` from the tenant's placement (clears them
/// when it has none, so removing the placement moves the pods back).
pub fn place(pod: &mut PodSpec, tenant: &Tenant) {
    place_at(pod, &tenant.spec.placement.clone().unwrap_or_default());
}

/// Sets `pod`'s `nodeSelector` and `tolerations` from `placement` (clears them when it is
/// empty).
pub fn place_at(pod: &mut PodSpec, placement: &Placement) {
    let placement = placement.clone();
    let Placement {
        node_selector,
        tolerations,
    } = placement;
    pod.node_selector = (!node_selector.is_empty()).then_some(node_selector);
    pod.tolerations = (!tolerations.is_empty()).then(|| {
        tolerations
            .into_iter()
            .map(|t| Toleration {
                key: t.key,
                operator: Some(
                    match t.operator {
                        TolerationOperator::Equal => "Equal",
                        TolerationOperator::Exists => "Exists",
                    }
                    .into(),
                ),
                value: t.value,
                effect: t.effect.map(|e| {
                    match e {
                        TaintEffect::NoSchedule => "NoSchedule",
                        TaintEffect::PreferNoSchedule => "PreferNoSchedule",
                        TaintEffect::NoExecute => "NoExecute",
                    }
                    .into()
                }),
                toleration_seconds: t.toleration_seconds,
            })
            .collect()
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn tenant(placement: Option<Placement>) -> Tenant {
        let mut t: Tenant = serde_json::from_value(serde_json::json!({
            "apiVersion": "landlord.dev/v1alpha1", "kind": "Tenant",
            "metadata": {"name": "acme"}, "spec": {"tier": "dedicated"}
        }))
        .expect("a valid Tenant");
        t.spec.placement = placement;
        t
    }

    #[test]
    fn a_placement_becomes_the_pods_node_selector_and_tolerations() {
        let placement: Placement = serde_json::from_value(serde_json::json!({
            "nodeSelector": {"pool.example.com/customer": "acme"},
            "tolerations": [
                {"key": "pool.example.com/dedicated", "operator": "Exists", "effect": "NoSchedule"},
                {"key": "maintenance", "value": "soon", "effect": "NoExecute", "tolerationSeconds": 60}
            ]
        }))
        .expect("a valid Tenant");
        let mut pod = PodSpec::default();
        place(&mut pod, &tenant(Some(placement)));
        assert_eq!(
            pod.node_selector,
            Some(BTreeMap::from([(
                "pool.example.com/customer".to_string(),
                "acme".to_string()
            )]))
        );
        let tolerations = serde_json::to_value(&pod.tolerations).expect("serialisable");
        assert_eq!(
            tolerations,
            serde_json::json!([
                {"key": "pool.example.com/dedicated", "operator": "Exists", "effect": "NoSchedule"},
                {"key": "maintenance", "operator": "Equal", "value": "soon", "effect": "NoExecute", "tolerationSeconds": 60}
            ])
        );
    }

    #[test]
    fn no_placement_clears_what_a_previous_one_set() {
        let mut pod = PodSpec {
            node_selector: Some(BTreeMap::from([("a".into(), "b".into())])),
            tolerations: Some(vec![Toleration::default()]),
            ..Default::default()
        };
        place(&mut pod, &tenant(None));
        assert_eq!(pod.node_selector, None);
        assert_eq!(pod.tolerations, None);
    }
}
