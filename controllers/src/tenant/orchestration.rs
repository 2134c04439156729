//! The Tenant reconcile's orchestration against a scripted API server (the fast tier, see
//! `crate::testing`): which parts run, what a refusal becomes in status, what is retried.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use kube::runtime::reflector::store;
use landlord_crds::Tenant;
use serde_json::{Value, json};

use super::{State, Stores, services};
use crate::{
    Context,
    config::Config,
    metrics::Metrics,
    reflectors::{
        Synced,
        compact::{Compact, Wire},
    },
    testing::{self, Log, Rule},
};

fn state(mut rules: Vec<Rule>) -> (State, Log) {
    // A status write answers with the Tenant as stored, its status replaced.
    rules.push(Box::new(|r| {
        (r.method == "PATCH" && r.resource() == ("tenants", true)).then(|| {
            let mut stored = tenant_json(json!({"tier": "shared"}));
            stored["status"] = r.body["status"].clone();
            (200, stored)
        })
    }));
    let (client, log) = testing::client(rules);
    let metrics = Metrics::new(&prometheus::Registry::new()).unwrap();
    let ctx = Context::new(client, Config::default(), metrics, None);
    // The tenant's namespace exists (as after the first pass): a refused object inside it
    // does not hold back the parts that live in it.
    let namespaces = Compact::default();
    namespaces.apply(&kube::runtime::watcher::Event::Apply(
        Wire::of(&namespace()).expect("a Namespace encodes"),
    ));
    let stores = Stores {
        namespaces,
        roles: Compact::default(),
        role_bindings: Compact::default(),
        cluster_roles: Compact::default(),
        cluster_role_bindings: Compact::default(),
        quotas: Compact::default(),
        limit_ranges: Compact::default(),
        network_policies: Compact::default(),
        config_maps: Compact::default(),
        services: Compact::default(),
        stateful_sets: Compact::default(),
        service_accounts: Compact::default(),
        deployments: Compact::default(),
        flag_sets: store().0,
        workloads: services::Caches {
            catalog: store().0,
            workloads: crate::reflectors::workloads::Caches {
                deployments: store().0,
                services: store().0,
                disruption_budgets: store().0,
                autoscalers: store().0,
                synced: Synced::default(),
            },
            catalog_synced: Synced::default(),
        },
        domains: store().0,
        shared: super::SharedSynced {
            flag_sets: Synced::default(),
            domains: Synced::default(),
        },
    };
    let state = State {
        ctx: Arc::new(ctx),
        stores,
        undecodable: Default::default(),
        tenants: store().0,
        stores_ready: tokio::sync::OnceCell::new(),
    };
    (state, log)
}

/// The tenant's namespace as Landlord makes it (owned by the Tenant).
fn namespace() -> k8s_openapi::api::core::v1::Namespace {
    let tenant = tenant(json!({"tier": "shared"}));
    let owner = super::desired::owner_reference(&tenant).unwrap();
    super::desired::namespace_stack(&tenant, &owner, &Config::default()).namespace
}

fn tenant_json(spec: Value) -> Value {
    json!({
        "apiVersion": "landlord.dev/v1alpha1", "kind": "Tenant",
        "metadata": {"name": "acme", "uid": "tenant-uid", "generation": 1},
        "spec": spec,
    })
}

fn tenant(spec: Value) -> Tenant {
    serde_json::from_value(tenant_json(spec)).unwrap()
}

/// The conditions of the last status the reconcile wrote, by type: (status, reason, message).
fn written_conditions(log: &Log) -> Vec<(String, String, String, String)> {
    let log = log.lock().unwrap();
    let status = log
        .iter()
        .rev()
        .find(|r| r.method == "PATCH" && r.resource() == ("tenants", true))
        .expect("a status write");
    status.body["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let s = |k: &str| c[k].as_str().unwrap_or_default().to_string();
            (s("type"), s("status"), s("reason"), s("message"))
        })
        .collect()
}

#[tokio::test]
async fn a_refused_object_is_its_parts_condition_and_the_other_parts_still_run() {
    let refuse_policies: Rule = Box::new(|r| {
        (r.method == "PATCH" && r.resource().0 == "networkpolicies").then(|| {
            testing::refusal(
                403,
                "Forbidden",
                "networkpolicies \"landlord-default-deny\" is forbidden: exceeded quota: walls, requested: count/networkpolicies.networking.k8s.io=1, used: count/networkpolicies.networking.k8s.io=0, limited: count/networkpolicies.networking.k8s.io=0",
            )
        })
    });
    let (state, log) = state(vec![refuse_policies]);
    let action = super::apply(&tenant(json!({"tier": "shared"})), &state).await;
    // A quota is for a person to fix: no retry storm, status says why.
    assert!(action.is_ok(), "{action:?}");
    let conditions = written_conditions(&log);
    let namespace = conditions
        .iter()
        .find(|c| c.0 == "NamespaceReady")
        .expect("NamespaceReady");
    assert_eq!(
        (namespace.1.as_str(), namespace.2.as_str()),
        ("False", "QuotaExceeded")
    );
    assert!(namespace.3.contains("NetworkPolicy"), "{}", namespace.3);
    assert!(
        namespace.3.contains("exceeded quota: walls"),
        "{}",
        namespace.3
    );
    // The parts after the namespace still ran and reported.
    for type_ in ["FlagsReady", "RuntimeReady"] {
        assert!(
            conditions.iter().any(|c| c.0 == type_),
            "{type_} missing: {conditions:?}"
        );
    }
    let log = log.lock().unwrap();
    assert!(
        log.iter().any(|r| testing::writes(r, "configmaps")),
        "the flags part wrote nothing after the refusal"
    );
}

#[tokio::test]
async fn an_unavailable_api_server_is_retried_with_backoff_after_status_says_so() {
    let unavailable: Rule = Box::new(|r| {
        (r.method == "PATCH" && r.resource().0 == "limitranges")
            .then(|| testing::refusal(503, "ServiceUnavailable", "etcd leader changed"))
    });
    let (state, log) = state(vec![unavailable]);
    let error = super::apply(&tenant(json!({"tier": "shared"})), &state)
        .await
        .expect_err("a transient failure is retried");
    assert!(matches!(error, super::Error::PartsFailed(_)), "{error}");
    let conditions = written_conditions(&log);
    let namespace = conditions.iter().find(|c| c.0 == "NamespaceReady").unwrap();
    assert_eq!(namespace.2, "ApiUnavailable");
    assert!(
        namespace.3.contains("etcd leader changed"),
        "{}",
        namespace.3
    );
}

#[tokio::test]
async fn deletion_says_terminating_first_and_removes_the_namespace_last() {
    let read_namespace: Rule = Box::new(|r| {
        (r.method == "GET" && r.path == "/api/v1/namespaces/tenant-acme")
            .then(|| (200, serde_json::to_value(namespace()).unwrap()))
    });
    let (state, log) = state(vec![read_namespace]);
    let mut deleted = tenant(json!({"tier": "shared"}));
    deleted.metadata.deletion_timestamp = Some(super::now());
    let error = super::cleanup(&deleted, &state)
        .await
        .expect_err("the namespace is still terminating");
    assert!(
        matches!(error, super::Error::CleanupPending(ref what) if what.contains("tenant-acme")),
        "{error}"
    );
    let log = log.lock().unwrap();
    let writes: Vec<_> = log
        .iter()
        .filter(|r| r.method != "GET" && r.resource().0 != "events")
        .map(|r| (r.method.as_str(), r.resource()))
        .collect();
    // Terminating reaches status before anything is removed; the namespace goes last (the
    // parts before it may need what is in it); status then says what the deletion waits for.
    assert_eq!(
        writes.first(),
        Some(&("PATCH", ("tenants", true))),
        "{writes:?}"
    );
    let namespace_delete = writes
        .iter()
        .position(|w| *w == ("DELETE", ("namespaces", false)))
        .expect("the namespace is deleted");
    assert!(
        writes[..namespace_delete]
            .iter()
            .all(|w| w.1 != ("namespaces", false)),
        "{writes:?}"
    );
    assert_eq!(
        writes.last(),
        Some(&("PATCH", ("tenants", true))),
        "{writes:?}"
    );
    let last_status = log
        .iter()
        .rev()
        .find(|r| r.resource() == ("tenants", true))
        .unwrap();
    let ready = last_status.body["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap()
        .clone();
    assert_eq!(ready["reason"], "NamespaceTerminating", "{ready}");
}

/// Answers a JSON patch of the Tenant's finalizers with the Tenant as stored (`finalizers`).
fn finalizers_patched(finalizers: Value) -> Rule {
    Box::new(move |r| {
        (r.method == "PATCH" && r.resource() == ("tenants", false)).then(|| {
            let mut stored = tenant_json(json!({"tier": "shared"}));
            stored["metadata"]["finalizers"] = finalizers.clone();
            (200, stored)
        })
    })
}

/// The non-read requests of the log, without events: (method, resource, status subresource).
fn writes(log: &Log) -> Vec<(String, String, bool)> {
    log.lock()
        .unwrap()
        .iter()
        .filter(|r| r.method != "GET" && r.resource().0 != "events")
        .map(|r| (r.method.clone(), r.resource().0.to_string(), r.resource().1))
        .collect()
}

#[tokio::test]
async fn a_new_tenant_gets_its_finalizer_and_is_provisioned_in_the_same_reconcile() {
    use crate::runner::Reconciler;
    let (state, log) = state(vec![finalizers_patched(json!([
        landlord_crds::CLEANUP_FINALIZER
    ]))]);
    let action = state
        .reconcile(Arc::new(tenant(json!({"tier": "shared"}))))
        .await;
    assert!(action.is_ok(), "{action:?}");
    let writes = writes(&log);
    // The finalizer first (nothing is made that a deletion could leave behind), then the
    // stack and its status, in one reconcile: a new Tenant does not wait for a second turn
    // in the queue.
    assert_eq!(
        writes.first(),
        Some(&("PATCH".to_string(), "tenants".to_string(), false)),
        "{writes:?}"
    );
    assert_eq!(
        writes.last(),
        Some(&("PATCH".to_string(), "tenants".to_string(), true)),
        "{writes:?}"
    );
    assert!(
        writes.iter().any(|w| w.1 == "networkpolicies"),
        "{writes:?}"
    );
    let first = log
        .lock()
        .unwrap()
        .iter()
        .find(|r| r.method == "PATCH")
        .cloned()
        .unwrap();
    // The list is tested as seen: a concurrent change of the finalizers fails the patch
    // instead of being overwritten.
    assert_eq!(
        first.body,
        json!([
            {"op": "test", "path": "/metadata/finalizers", "value": null},
            {"op": "add", "path": "/metadata/finalizers", "value": [landlord_crds::CLEANUP_FINALIZER]},
        ])
    );
    let finalize = state
        .ctx
        .metrics
        .writes
        .with_label_values(&["landlord/tenant", "Tenant", "finalize"])
        .get();
    assert_eq!(finalize, 1, "the finalizer write is counted once");
}

#[tokio::test]
async fn a_finished_cleanup_releases_the_finalizer_last() {
    use crate::runner::Reconciler;
    let (state, log) = state(vec![finalizers_patched(json!([]))]);
    let mut deleted = tenant(json!({"tier": "shared"}));
    deleted.metadata.deletion_timestamp = Some(super::now());
    deleted.metadata.finalizers = Some(vec![
        "example.com/other".into(),
        landlord_crds::CLEANUP_FINALIZER.into(),
    ]);
    let action = state.reconcile(Arc::new(deleted)).await;
    assert!(action.is_ok(), "{action:?}");
    let writes = writes(&log);
    assert_eq!(
        writes.last(),
        Some(&("PATCH".to_string(), "tenants".to_string(), false)),
        "{writes:?}"
    );
    let last = log.lock().unwrap().last().cloned().unwrap();
    // Only Landlord's own finalizer is removed, by its index, tested first.
    assert_eq!(
        last.body,
        json!([
            {"op": "test", "path": "/metadata/finalizers/1", "value": landlord_crds::CLEANUP_FINALIZER},
            {"op": "remove", "path": "/metadata/finalizers/1"},
        ])
    );
}
