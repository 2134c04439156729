//! Feature flags end to end: FeatureFlagSets in the platform namespace and in a tenant's
//! namespace, resolved by the real operator binary (as the chart's ServiceAccount) into the
//! tenant's `landlord-flags` ConfigMap, with `FlagsReady` on the Tenant and status on the sets.
//!
//! Each test's operator has a platform namespace of its own (`--platform-namespace`), so its
//! platform sets never change the flags of other tests' tenants.

use std::time::{Duration, Instant};

use anyhow::Context;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, Patch, PatchParams, PostParams},
};
use landlord_crds::{FeatureFlagSet, Tenant, conditions, tenant::Phase};
use landlord_e2e::{
    TestNamespace,
    audit::{self, operator_writes},
    cluster::repo_root,
    tenants::{self, Harness},
    unique_name, wait,
};
use serde_json::{Value, json};

const LANDLORD: &str = env!("CARGO_BIN_EXE_landlord");
const TIMEOUT: Duration = Duration::from_secs(60);
/// How soon a change of a set must show in the ConfigMap (the operator reacts to watch
/// events; this bound only keeps a broken test from hanging).
const PROPAGATION: Duration = Duration::from_secs(20);

/// The operator's platform namespace, this test's own.
struct Platform {
    platform: TestNamespace,
}

async fn harness() -> anyhow::Result<Harness<Platform>> {
    let setup = Harness::setup(LANDLORD).await?;
    let platform = TestNamespace::platform(&setup.client, "platform").await?;
    setup
        .args(["--platform-namespace".to_string(), platform.name.clone()])
        .start_with(Platform { platform })
        .await
}

/// An example manifest from manifests/examples, as a FeatureFlagSet to adapt.
fn example(file: &str) -> anyhow::Result<FeatureFlagSet> {
    let path = repo_root().join("manifests/examples").join(file);
    let text = std::fs::read_to_string(&path).with_context(|| format!("{}", path.display()))?;
    Ok(serde_yaml::from_str(&text)?)
}

fn flag_set(namespace: &str, name: &str, spec: Value) -> anyhow::Result<FeatureFlagSet> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "landlord.dev/v1alpha1",
        "kind": "FeatureFlagSet",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }))?)
}

async fn create_set(client: &Client, mut set: FeatureFlagSet) -> anyhow::Result<()> {
    let ns = set.namespace().context("set without namespace")?;
    set.metadata.resource_version = None;
    Api::<FeatureFlagSet>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &set)
        .await?;
    Ok(())
}

async fn delete_set(client: &Client, namespace: &str, name: &str) -> anyhow::Result<()> {
    Api::<FeatureFlagSet>::namespaced(client.clone(), namespace)
        .delete(name, &DeleteParams::default())
        .await?;
    Ok(())
}

/// Creates a Tenant labelled with its test's `group` and waits until it is Ready.
async fn ready_tenant(client: &Client, name: &str, spec: Value, group: &str) -> anyhow::Result<()> {
    let labels = [("e2e-flags", group), ("segment", "wholesale")];
    Api::<Tenant>::all(client.clone())
        .create(
            &PostParams::default(),
            &tenants::tenant_labelled(name, &labels, spec)?,
        )
        .await?;
    tenants::wait_phase(client, name, Phase::Ready, TIMEOUT).await?;
    Ok(())
}

/// The `flags.json` document of a tenant's `landlord-flags` ConfigMap, once `check` holds.
async fn flags_when(
    client: &Client,
    tenant: &str,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> anyhow::Result<Value> {
    let api = Api::<ConfigMap>::namespaced(client.clone(), &format!("tenant-{tenant}"));
    wait::until(
        &format!("landlord-flags of {tenant}: {what}"),
        PROPAGATION,
        || async {
            let Some(cm) = api.get_opt("landlord-flags").await? else {
                anyhow::bail!("no ConfigMap landlord-flags");
            };
            let text = cm
                .data
                .unwrap_or_default()
                .remove("flags.json")
                .context("no key flags.json")?;
            let doc: Value = serde_json::from_str(&text)?;
            if check(&doc) {
                Ok(Some(doc))
            } else {
                anyhow::bail!("document is {doc}")
            }
        },
    )
    .await
}

/// A set, once `check` holds for its status.
async fn set_when(
    client: &Client,
    namespace: &str,
    name: &str,
    what: &str,
    check: impl Fn(&landlord_crds::FeatureFlagSetStatus) -> bool,
) -> anyhow::Result<FeatureFlagSet> {
    let api = Api::<FeatureFlagSet>::namespaced(client.clone(), namespace);
    wait::until(
        &format!("FeatureFlagSet {namespace}/{name}: {what}"),
        PROPAGATION,
        || async {
            let set = api.get(name).await?;
            match &set.status {
                Some(status) if check(status) => Ok(Some(set)),
                other => anyhow::bail!("status is {other:?}"),
            }
        },
    )
    .await
}

fn condition<'a>(
    status: &'a landlord_crds::FeatureFlagSetStatus,
    type_: &str,
) -> Option<(&'a str, &'a str, &'a str)> {
    conditions::find(&status.conditions, type_)
        .map(|c| (c.status.as_str(), c.reason.as_str(), c.message.as_str()))
}

fn flag<'a>(doc: &'a Value, key: &str) -> &'a Value {
    &doc["flags"][key]
}

#[tokio::test]
async fn platform_and_tenant_sets_resolve_into_the_tenants_flags() -> anyhow::Result<()> {
    let h = harness().await?;
    let platform = h.platform.name.clone();
    let group = unique_name("g");
    let shared = unique_name("flags-shared");
    let dedicated = unique_name("flags-dedicated");
    ready_tenant(
        &h.client,
        &shared,
        json!({"tier": "shared", "plan": "pro"}),
        &group,
    )
    .await?;
    ready_tenant(
        &h.client,
        &dedicated,
        json!({"tier": "dedicated", "plan": "enterprise"}),
        &group,
    )
    .await?;

    // The platform example in this operator's platform namespace, selecting this test's
    // tenants by label.
    let mut shop = example("flags-platform.yaml")?;
    let platform_name = unique_name("shop-defaults");
    shop.metadata.name = Some(platform_name.clone());
    shop.metadata.namespace = Some(platform.clone());
    shop.spec.selector = Some(landlord_crds::flags::TenantSelector {
        match_labels: [("e2e-flags".to_string(), group.clone())].into(),
        ..Default::default()
    });
    create_set(&h.client, shop).await?;
    let platform_id = format!("{platform}/{platform_name}");

    // The tenant example in the shared tenant's namespace, plus an override of the locked
    // payments-enabled flag.
    let own_ns = format!("tenant-{shared}");
    let mut own = example("flags-tenant.yaml")?;
    own.metadata.namespace = Some(own_ns.clone());
    own.spec.flags.push(serde_json::from_value(json!({
        "name": "payments-enabled", "type": "boolean",
        "variants": {"off": {"boolean": false}}, "defaultVariant": "off"
    }))?);
    let own_name = own.name_any();
    create_set(&h.client, own).await?;
    let own_id = format!("{own_ns}/{own_name}");

    let doc = flags_when(&h.client, &shared, "both sets resolved", |d| {
        flag(d, "holiday-banner").is_object() && flag(d, "new-checkout").is_object()
    })
    .await?;
    assert_eq!(doc["tenant"], json!(shared));
    let revision = doc["revision"].as_str().context("revision")?.to_string();
    assert!(revision.len() == 64 && revision.chars().all(|c| c.is_ascii_hexdigit()));
    // Targeting by plan: pro gets the new checkout and full recommendations.
    assert_eq!(
        flag(&doc, "new-checkout"),
        &json!({"type": "boolean", "value": true, "variant": "on",
                "reason": "TARGETING_MATCH", "source": platform_id})
    );
    assert_eq!(
        flag(&doc, "recommendation-sample-rate")["value"],
        json!(1.0)
    );
    // Targeting by label: segment=wholesale.
    assert_eq!(flag(&doc, "max-cart-items")["value"], json!(500));
    // No rule matches: the default variant.
    assert_eq!(flag(&doc, "rate-limits")["reason"], json!("DEFAULT"));
    assert_eq!(
        flag(&doc, "rate-limits")["value"],
        json!({"requestsPerMinute": 600, "burst": 100})
    );
    // Precedence: the tenant's set overrides an unlocked platform flag...
    assert_eq!(
        flag(&doc, "search-backend"),
        &json!({"type": "string", "value": "opensearch", "variant": "opensearch",
                "reason": "STATIC", "source": own_id})
    );
    assert_eq!(flag(&doc, "holiday-banner")["source"], json!(own_id));
    assert_eq!(
        flag(&doc, "loyalty-points-multiplier")["type"],
        json!("float")
    );
    // ...but not a locked one.
    assert_eq!(flag(&doc, "payments-enabled")["value"], json!(true));
    assert_eq!(flag(&doc, "payments-enabled")["source"], json!(platform_id));

    // The dedicated enterprise tenant: targeting by tier and plan, no tenant set.
    let doc = flags_when(&h.client, &dedicated, "platform set resolved", |d| {
        flag(d, "search-backend").is_object()
    })
    .await?;
    assert_eq!(
        flag(&doc, "search-backend")["reason"],
        json!("TARGETING_MATCH")
    );
    assert_eq!(flag(&doc, "search-backend")["value"], json!("opensearch"));
    assert_eq!(flag(&doc, "search-backend")["source"], json!(platform_id));
    assert_eq!(flag(&doc, "new-checkout")["value"], json!(true));
    assert_eq!(flag(&doc, "holiday-banner"), &Value::Null);
    tenants::wait_condition(&h.client, &dedicated, "FlagsReady", PROPAGATION, |c| {
        c.status == "True"
    })
    .await?;

    // The locked override: visible on the Tenant and on the set, without taking the tenant down.
    let t = tenants::wait_condition(&h.client, &shared, "FlagsReady", PROPAGATION, |c| {
        c.status == "False" && c.reason == "LockedFlagOverride"
    })
    .await?;
    let status = t.status.context("status")?;
    let flags_ready = conditions::find(&status.conditions, "FlagsReady").context("FlagsReady")?;
    for needle in ["payments-enabled", platform_id.as_str(), own_id.as_str()] {
        assert!(
            flags_ready.message.contains(needle),
            "{needle} in {}",
            flags_ready.message
        );
    }
    assert_eq!(status.phase, Some(Phase::Ready));
    assert!(conditions::is_true(&status.conditions, "Ready"));
    set_when(
        &h.client,
        &own_ns,
        &own_name,
        "locked override reported",
        |s| {
            condition(s, "Ready").is_some_and(|(st, reason, msg)| {
                st == "False" && reason == "LockedFlagOverride" && msg.contains("payments-enabled")
            }) && s.tenants == 1
        },
    )
    .await?;
    set_when(
        &h.client,
        &platform,
        &platform_name,
        "applies to 2 tenants",
        |s| {
            s.tenants == 2
                && s.flags == 6
                && condition(s, "Ready").is_some_and(|c| c.0 == "True")
                && condition(s, "Conflict").is_some_and(|c| c.0 == "False")
        },
    )
    .await?;

    // Editing the platform set reaches the ConfigMap within seconds.
    let sets = Api::<FeatureFlagSet>::namespaced(h.client.clone(), &platform);
    let mut edited = sets.get(&platform_name).await?;
    for f in &mut edited.spec.flags {
        if f.name == "max-cart-items"
            && let Some(large) = f.variants.get_mut("large")
        {
            large.integer = Some(750);
        }
    }
    edited.metadata.managed_fields = None;
    let started = Instant::now();
    sets.replace(&platform_name, &PostParams::default(), &edited)
        .await?;
    let doc = flags_when(&h.client, &shared, "edited value", |d| {
        flag(d, "max-cart-items")["value"] == json!(750)
    })
    .await?;
    println!(
        "a platform set edit reached landlord-flags after {} ms",
        started.elapsed().as_millis()
    );
    assert_ne!(doc["revision"], json!(revision));

    // tenant-runtime reads the document as written and serves it over OFREP.
    let data = Api::<ConfigMap>::namespaced(h.client.clone(), &own_ns)
        .get("landlord-flags")
        .await?
        .data;
    let served = tenant_runtime::flags::FlagsDocument::from_data(&shared, data.as_ref())?;
    assert!(
        served
            .flags
            .values()
            .all(tenant_runtime::flags::Flag::well_typed)
    );
    assert_eq!(served.flags.len(), 8);
    let reply = tenant_runtime::ofrep::evaluate(
        tenant_runtime::ofrep::Flags::Document(&served),
        "max-cart-items",
        br#"{"context": {}}"#,
    );
    assert_eq!(reply.status.as_u16(), 200, "{:?}", reply.body);
    let body = reply.body.context("OFREP body")?;
    assert_eq!(
        (&body["value"], &body["variant"], &body["reason"]),
        (&json!(750), &json!("large"), &json!("TARGETING_MATCH"))
    );

    // Deleting the tenant's set brings back the platform's values and clears the warning.
    delete_set(&h.client, &own_ns, &own_name).await?;
    let doc = flags_when(&h.client, &shared, "tenant set gone", |d| {
        flag(d, "holiday-banner").is_null()
    })
    .await?;
    assert_eq!(flag(&doc, "search-backend")["value"], json!("postgres-fts"));
    tenants::wait_condition(&h.client, &shared, "FlagsReady", PROPAGATION, |c| {
        c.status == "True"
    })
    .await?;

    // A tenant whose labels no longer match loses the platform set's flags.
    Api::<Tenant>::all(h.client.clone())
        .patch(
            &dedicated,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"e2e-flags": "elsewhere"}}})),
        )
        .await?;
    flags_when(&h.client, &dedicated, "no flags once unselected", |d| {
        d["flags"] == json!({})
    })
    .await?;
    set_when(
        &h.client,
        &platform,
        &platform_name,
        "applies to 1 tenant",
        |s| s.tenants == 1,
    )
    .await?;

    delete_set(&h.client, &platform, &platform_name).await?;
    h.delete_tenant(&shared).await?;
    h.delete_tenant(&dedicated).await?;
    h.fixture.platform.cleanup().await
}

fn typed_flag(name: &str, type_: &str, value: Value) -> Value {
    json!({"name": name, "type": type_, "variants": {"v": {type_: value}}, "defaultVariant": "v"})
}

#[tokio::test]
async fn type_conflict_between_platform_sets_is_reported_not_resolved_silently()
-> anyhow::Result<()> {
    let h = harness().await?;
    let platform = h.platform.name.clone();
    let group = unique_name("g");
    let tenant = unique_name("flags-conflict");
    ready_tenant(&h.client, &tenant, json!({"tier": "shared"}), &group).await?;
    let selector = json!({"matchLabels": {"e2e-flags": group}});
    let high = unique_name("high");
    let low = unique_name("low");
    create_set(
        &h.client,
        flag_set(
            &platform,
            &high,
            json!({"priority": 200, "selector": selector,
                   "flags": [typed_flag("beta", "boolean", json!(true))]}),
        )?,
    )
    .await?;
    create_set(
        &h.client,
        flag_set(
            &platform,
            &low,
            json!({"priority": 100, "selector": selector,
                   "flags": [typed_flag("beta", "string", json!("on")),
                             typed_flag("other", "integer", json!(3))]}),
        )?,
    )
    .await?;
    let (high_id, low_id) = (format!("{platform}/{high}"), format!("{platform}/{low}"));

    // Both sets name each other in their Conflict condition; only the ignored one is not Ready.
    for (name, other, ready) in [(&high, &low_id, "True"), (&low, &high_id, "False")] {
        set_when(
            &h.client,
            &platform,
            name,
            "Conflict naming the other set",
            |s| {
                condition(s, "Conflict").is_some_and(|(st, reason, msg)| {
                    st == "True" && reason == "TypeConflict" && msg.contains(other.as_str())
                }) && condition(s, "Ready").is_some_and(|c| c.0 == ready)
            },
        )
        .await?;
    }

    // The higher priority set's definition is served; the rest of the lower one still is.
    let doc = flags_when(&h.client, &tenant, "both sets resolved", |d| {
        flag(d, "beta").is_object() && flag(d, "other").is_object()
    })
    .await?;
    assert_eq!(flag(&doc, "beta")["type"], json!("boolean"));
    assert_eq!(flag(&doc, "beta")["source"], json!(high_id));
    assert_eq!(flag(&doc, "other")["source"], json!(low_id));

    // The Tenant says so (naming both sets) and stays Ready.
    let t = tenants::wait_condition(&h.client, &tenant, "FlagsReady", PROPAGATION, |c| {
        c.status == "False" && c.reason == "FlagConflict"
    })
    .await?;
    let status = t.status.context("status")?;
    let message = &conditions::find(&status.conditions, "FlagsReady")
        .context("FlagsReady")?
        .message;
    assert!(
        message.contains("beta") && message.contains(&high_id) && message.contains(&low_id),
        "{message}"
    );
    assert_eq!(status.phase, Some(Phase::Ready));

    // A reported conflict is a steady state: no status or ConfigMap rewritten over and over.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let start = audit::end(h.cluster)?;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let (_, writes) = operator_writes(h.cluster, start)?;
    assert!(
        writes.is_empty(),
        "the operator kept writing while the conflict stood:\n{}",
        writes.join("\n")
    );

    // Fixing the conflict clears it everywhere.
    delete_set(&h.client, &platform, &low).await?;
    set_when(&h.client, &platform, &high, "conflict cleared", |s| {
        condition(s, "Conflict").is_some_and(|c| c.0 == "False")
    })
    .await?;
    tenants::wait_condition(&h.client, &tenant, "FlagsReady", PROPAGATION, |c| {
        c.status == "True"
    })
    .await?;

    // A tenant's own set that gives the flag another type: reported on that set (naming the
    // platform set) and on the Tenant, while the platform set, shared by every tenant, stays
    // clean; the platform's type is served.
    let own_ns = format!("tenant-{tenant}");
    create_set(
        &h.client,
        flag_set(
            &own_ns,
            "mine",
            json!({"flags": [typed_flag("beta", "integer", json!(1))]}),
        )?,
    )
    .await?;
    set_when(
        &h.client,
        &own_ns,
        "mine",
        "Conflict naming the platform set",
        |s| {
            condition(s, "Conflict")
                .is_some_and(|(st, _, msg)| st == "True" && msg.contains(high_id.as_str()))
                && condition(s, "Ready")
                    .is_some_and(|(st, reason, _)| st == "False" && reason == "FlagConflict")
        },
    )
    .await?;
    tenants::wait_condition(&h.client, &tenant, "FlagsReady", PROPAGATION, |c| {
        c.reason == "FlagConflict" && c.message.contains(&format!("{own_ns}/mine"))
    })
    .await?;
    let high_set = Api::<FeatureFlagSet>::namespaced(h.client.clone(), &platform)
        .get(&high)
        .await?;
    assert_eq!(
        high_set
            .status
            .as_ref()
            .and_then(|s| condition(s, "Conflict"))
            .map(|c| c.0),
        Some("False")
    );
    let doc = flags_when(&h.client, &tenant, "platform type served", |d| {
        flag(d, "beta")["type"] == json!("boolean")
    })
    .await?;
    assert_eq!(flag(&doc, "beta")["source"], json!(high_id));

    delete_set(&h.client, &platform, &high).await?;
    h.delete_tenant(&tenant).await?;
    h.fixture.platform.cleanup().await
}

/// One valid platform set whose flags do not fit a ConfigMap: `FlagsReady` says so (size and
/// set named), the flags served before stay, and the rest of the stack is still reconciled
/// and reported.
#[tokio::test]
async fn flags_too_large_for_a_config_map_are_a_flags_problem_of_their_own() -> anyhow::Result<()> {
    let h = harness().await?;
    let platform = h.platform.name.clone();
    let group = unique_name("g");
    let tenant = unique_name("flags-big");
    ready_tenant(&h.client, &tenant, json!({"tier": "shared"}), &group).await?;
    let before = flags_when(&h.client, &tenant, "served", |d| d["flags"].is_object()).await?;
    let big = unique_name("big");
    let flags: Vec<Value> = (0..256)
        .map(|i| typed_flag(&format!("f{i}"), "string", json!("x".repeat(4096))))
        .collect();
    create_set(
        &h.client,
        flag_set(
            &platform,
            &big,
            json!({"selector": {"matchLabels": {"e2e-flags": group}}, "flags": flags}),
        )?,
    )
    .await?;
    let t = tenants::wait_condition(&h.client, &tenant, "FlagsReady", PROPAGATION, |c| {
        c.status == "False" && c.reason == "FlagsTooLarge"
    })
    .await?;
    let status = t.status.context("status")?;
    let message = &conditions::find(&status.conditions, "FlagsReady")
        .context("FlagsReady")?
        .message;
    assert!(
        message.contains(&format!("FeatureFlagSet {platform}/{big} (256 flags"))
            && message.contains("1048576 bytes"),
        "{message}"
    );
    // The other parts were reconciled and reported in the same pass.
    for type_ in [
        "NamespaceReady",
        "DatabaseReady",
        "TopicsReady",
        "RuntimeReady",
    ] {
        assert!(
            conditions::find(&status.conditions, type_).is_some_and(|c| c.status == "True"),
            "{type_}: {:?}",
            status.conditions
        );
    }
    // Nothing was written over the flags served before.
    let after = flags_when(&h.client, &tenant, "unchanged", |d| d["flags"].is_object()).await?;
    assert_eq!(before, after);
    // Removing the set clears the problem.
    delete_set(&h.client, &platform, &big).await?;
    tenants::wait_condition(&h.client, &tenant, "FlagsReady", PROPAGATION, |c| {
        c.status == "True"
    })
    .await?;
    h.delete_tenant(&tenant).await
}
