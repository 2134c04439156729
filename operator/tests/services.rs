//! Catalog Services end to end: the real operator binary, authenticated as the chart's
//! ServiceAccount, against the local control plane, where kwok makes pods Ready (except pods
//! labelled `landlord.dev/test-never-ready`, see e2e/scripts/kwok-stages.yaml).
//!
//! Tests in this file share the platform namespace and the operator's Lease, so they run one
//! at a time, each with an operator of its own.

use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{Namespace, ResourceQuota, Service as KubeService},
    policy::v1::PodDisruptionBudget,
};
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams},
};
use landlord_crds::{Service, conditions, tenant::Phase};
use landlord_e2e::{
    audit::{self, operator_writes},
    manifests::ensure_namespace,
    tenants::{self, Harness},
    unique_name, wait,
};

const LANDLORD: &str = env!("CARGO_BIN_EXE_landlord");
/// The operator's default platform namespace, where the catalog and the pools live.
const PLATFORM: &str = "landlord-platform";
const TIMEOUT: Duration = Duration::from_secs(90);

/// An operator of this test's own, once the platform namespace exists.
async fn harness() -> anyhow::Result<Harness<Catalog>> {
    let setup = Harness::setup(LANDLORD).await?.timeout(TIMEOUT);
    ensure_namespace(&setup.client, PLATFORM).await?;
    let catalog = Catalog {
        api: Api::namespaced(setup.client.clone(), PLATFORM),
    };
    setup.start_with(catalog).await
}

/// The catalog Services in the platform namespace.
struct Catalog {
    api: Api<Service>,
}

impl Catalog {
    fn catalog(&self) -> Api<Service> {
        self.api.clone()
    }

    async fn create_service(
        &self,
        prefix: &str,
        spec: serde_json::Value,
    ) -> anyhow::Result<String> {
        let name = unique_name(prefix);
        let service: Service = serde_json::from_value(serde_json::json!({
            "apiVersion": "landlord.dev/v1alpha1", "kind": "Service",
            "metadata": {"name": name, "namespace": PLATFORM},
            "spec": spec,
        }))?;
        self.catalog()
            .create(&PostParams::default(), &service)
            .await?;
        Ok(name)
    }

    async fn delete_service(&self, name: &str) -> anyhow::Result<()> {
        self.catalog()
            .delete(name, &DeleteParams::default())
            .await?;
        Ok(())
    }
}

/// Waits until a Deployment has rolled out its current spec (as `kubectl rollout status`)
/// and is Available.
async fn rolled_out(client: &Client, namespace: &str, name: &str) -> anyhow::Result<Deployment> {
    let api = Api::<Deployment>::namespaced(client.clone(), namespace);
    wait::until(
        &format!("Deployment {namespace}/{name} rolled out"),
        TIMEOUT,
        || async {
            let d = api.get(name).await?;
            let desired = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
            let s = d.status.clone().unwrap_or_default();
            let available = s
                .conditions
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Available" && c.status == "True");
            // Counts of zero are left out of the status.
            let done = s.observed_generation >= d.metadata.generation
                && s.updated_replicas.unwrap_or(0) == desired
                && s.replicas.unwrap_or(0) == desired
                && s.available_replicas.unwrap_or(0) == desired
                && available;
            Ok(done.then_some(d))
        },
    )
    .await
}

fn template_container(d: &Deployment) -> anyhow::Result<&k8s_openapi::api::core::v1::Container> {
    d.spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|p| p.containers.first())
        .context("Deployment without a container")
}

/// The container's env as (name, value) with Secret references shown as `secret:<name>/<key>`
/// (`secret?:` for an optional one: only the pool's secondary tenant key, there during a
/// rotation, is).
fn env_of(d: &Deployment) -> anyhow::Result<Vec<(String, String)>> {
    template_container(d)?
        .env
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|v| {
            let shown = match (&v.value, &v.value_from) {
                (Some(value), _) => value.clone(),
                (None, Some(from)) => {
                    let s = from.secret_key_ref.as_ref().context("not a Secret ref")?;
                    let optional = s.optional == Some(true);
                    anyhow::ensure!(
                        optional == (v.name == "LANDLORD_TENANT_KEY_SECONDARY"),
                        "{} optional: {optional}",
                        v.name
                    );
                    let mark = if optional { "?" } else { "" };
                    format!("secret{mark}:{}/{}", s.name, s.key)
                }
                (None, None) => String::new(),
            };
            Ok((v.name, shown))
        })
        .collect()
}

#[tokio::test]
async fn dedicated_tenant_runs_its_services_with_the_documented_env_and_follows_image_changes()
-> anyhow::Result<()> {
    let h = harness().await?;
    let api = h
        .create_service(
            "api",
            serde_json::json!({
                "image": "registry.example.com/shop/api:1.0.0",
                "ports": [{"name": "http", "port": 8080}],
                "env": [{"name": "LOG_LEVEL", "value": "info"}, {"name": "REGION", "value": "eu"}],
                "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}},
                "readinessProbe": {"path": "/ready", "port": "http"},
                "uses": {"database": true, "topics": true, "flags": true},
            }),
        )
        .await?;
    let worker = h
        .create_service(
            "worker",
            serde_json::json!({
                "image": "registry.example.com/shop/worker:1.0.0",
                "tiers": ["dedicated"],
                "uses": {"flags": false},
            }),
        )
        .await?;
    let tenant = h
        .new_tenant(
            "globex",
            serde_json::json!({
                "tier": "dedicated",
                "plan": "enterprise",
                "database": {"enabled": true},
                "topics": [{"name": "orders"}, {"name": "order-events"}],
                "services": [
                    {"name": api, "replicas": 2, "env": [{"name": "LOG_LEVEL", "value": "debug"}]},
                    {"name": worker},
                ],
            }),
        )
        .await?;
    let ns = format!("tenant-{tenant}");
    let ready = h
        .wait_condition(&tenant, "ServicesReady", "True", Some("Ready"))
        .await?;
    let message = tenants::condition(&ready, "ServicesReady")
        .map(|c| c.message.clone())
        .unwrap_or_default();
    assert!(
        message.contains(&api) && message.contains(&worker),
        "{message}"
    );

    // Both Deployments Available through kwok, in the tenant namespace, named as the catalog.
    let api_deployment = rolled_out(&h.client, &ns, &api).await?;
    let worker_deployment = rolled_out(&h.client, &ns, &worker).await?;
    assert_eq!(
        api_deployment.spec.as_ref().and_then(|s| s.replicas),
        Some(2)
    );
    assert_eq!(
        api_deployment.labels().get("landlord.dev/tenant"),
        Some(&tenant)
    );
    assert_eq!(
        api_deployment.labels().get("landlord.dev/service"),
        Some(&api)
    );
    let expected: Vec<(String, String)> = [
        ("LANDLORD_TENANT", tenant.as_str()),
        ("LANDLORD_TENANT_TIER", "dedicated"),
        ("LANDLORD_TENANT_PLAN", "enterprise"),
        ("LANDLORD_DATABASE_HOST", "secret:landlord-database/host"),
        ("LANDLORD_DATABASE_PORT", "secret:landlord-database/port"),
        ("LANDLORD_DATABASE_NAME", "secret:landlord-database/dbname"),
        ("LANDLORD_DATABASE_USER", "secret:landlord-database/user"),
        (
            "LANDLORD_DATABASE_PASSWORD",
            "secret:landlord-database/password",
        ),
        ("LANDLORD_DATABASE_URL", "secret:landlord-database/uri"),
        ("LANDLORD_NATS_URL", "secret:landlord-nats/url"),
        ("LANDLORD_NATS_CREDS", "secret:landlord-nats/creds"),
        ("LANDLORD_TOPICS", "orders,order-events"),
        (
            "LANDLORD_TOPIC_ORDERS_SUBJECT",
            &format!("tenant.{tenant}.orders"),
        ),
        (
            "LANDLORD_TOPIC_ORDER_EVENTS_SUBJECT",
            &format!("tenant.{tenant}.order-events"),
        ),
        (
            "LANDLORD_FLAGS_URL",
            &format!("http://landlord-runtime.{ns}.svc:8080"),
        ),
        ("LOG_LEVEL", "debug"),
        ("REGION", "eu"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(env_of(&api_deployment)?, expected);
    assert_eq!(
        env_of(&worker_deployment)?,
        [
            ("LANDLORD_TENANT".to_string(), tenant.clone()),
            ("LANDLORD_TENANT_TIER".to_string(), "dedicated".to_string()),
            ("LANDLORD_TENANT_PLAN".to_string(), "enterprise".to_string()),
        ],
        "the worker uses nothing but the tenant context"
    );
    let sc = template_container(&api_deployment)?
        .security_context
        .clone()
        .context("no security context")?;
    assert_eq!(
        (
            sc.run_as_non_root,
            sc.allow_privilege_escalation,
            sc.read_only_root_filesystem
        ),
        (Some(true), Some(false), Some(true))
    );

    // The Service (ports named as in the catalog) and a PDB for each instance.
    let service = Api::<KubeService>::namespaced(h.client.clone(), &ns)
        .get(&api)
        .await?;
    let ports = service.spec.and_then(|s| s.ports).unwrap_or_default();
    assert_eq!(
        ports
            .iter()
            .map(|p| (p.name.clone(), p.port))
            .collect::<Vec<_>>(),
        [(Some("http".to_string()), 8080)]
    );
    assert!(
        Api::<KubeService>::namespaced(h.client.clone(), &ns)
            .get_opt(&worker)
            .await?
            .is_none(),
        "a Service without ports gets no Kubernetes Service"
    );
    let pdbs = Api::<PodDisruptionBudget>::namespaced(h.client.clone(), &ns);
    pdbs.get(&api).await?;
    pdbs.get(&worker).await?;

    // The catalog counts the tenant; api (both tiers) also has a pool, worker has none.
    let catalog = h.catalog();
    for (name, pooled) in [(&api, true), (&worker, false)] {
        wait::until(
            &format!("Service {name} counts the tenant"),
            TIMEOUT,
            || async {
                let s = catalog.get(name).await?.status.unwrap_or_default();
                anyhow::ensure!(s.pool.is_some() == pooled, "pool: {:?}", s.pool);
                Ok((s.tenants == 1
                    && s.tenants_ready == 1
                    && conditions::is_true(&s.conditions, "Ready"))
                .then_some(()))
            },
        )
        .await?;
    }

    // Settled: an unchanged world causes no write (Deployments' defaults are not drift).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let start = audit::end(h.cluster)?;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let (_, writes) = operator_writes(h.cluster, start)?;
    assert!(
        writes.is_empty(),
        "writes to an unchanged world:\n{}",
        writes.join("\n")
    );

    // A new image in the catalog rolls out to the tenant (and the pool).
    let image = "registry.example.com/shop/api:1.1.0";
    catalog
        .patch(
            &api,
            &PatchParams::default(),
            &Patch::Merge(&serde_json::json!({"spec": {"image": image}})),
        )
        .await?;
    let api_deployments = Api::<Deployment>::namespaced(h.client.clone(), &ns);
    wait::until(
        "the new image in the tenant's Deployment",
        TIMEOUT,
        || async {
            let d = api_deployments.get(&api).await?;
            Ok((template_container(&d)?.image.as_deref() == Some(image)).then_some(()))
        },
    )
    .await?;
    let rolled = rolled_out(&h.client, &ns, &api).await?;
    assert_eq!(template_container(&rolled)?.image.as_deref(), Some(image));
    assert!(
        rolled.metadata.generation > api_deployment.metadata.generation,
        "the Deployment was updated in place"
    );
    let pool = rolled_out(&h.client, PLATFORM, &api).await?;
    assert_eq!(template_container(&pool)?.image.as_deref(), Some(image));
    h.wait_condition(&tenant, "ServicesReady", "True", Some("Ready"))
        .await?;

    h.delete_tenant(&tenant).await?;
    h.delete_service(&api).await?;
    h.delete_service(&worker).await
}

#[tokio::test]
async fn shared_tenants_are_served_by_the_pool_without_workloads_of_their_own() -> anyhow::Result<()>
{
    let h = harness().await?;
    let web = h
        .create_service(
            "web",
            serde_json::json!({
                "image": "registry.example.com/shop/web:2.0.0",
                "ports": [{"name": "http", "port": 80}],
                "replicas": 2,
                "uses": {"database": true},
            }),
        )
        .await?;
    let acme = h
        .new_tenant(
            "acme",
            serde_json::json!({"tier": "shared", "services": [{"name": web}]}),
        )
        .await?;
    let initech = h
        .new_tenant(
            "initech",
            serde_json::json!({"tier": "shared", "services": [{"name": web}]}),
        )
        .await?;
    for tenant in [&acme, &initech] {
        let t = h
            .wait_condition(tenant, "ServicesReady", "True", Some("Ready"))
            .await?;
        let c = tenants::condition(&t, "ServicesReady").context("ServicesReady")?;
        assert!(c.message.contains("shared pool"), "{}", c.message);
    }

    let pool = rolled_out(&h.client, PLATFORM, &web).await?;
    assert_eq!(pool.spec.as_ref().and_then(|s| s.replicas), Some(2));
    assert!(!pool.labels().contains_key("landlord.dev/tenant"));
    assert_eq!(
        env_of(&pool)?,
        [
            ("LANDLORD_TENANT_TIER".to_string(), "shared".to_string()),
            (
                "LANDLORD_TENANT_KEY".to_string(),
                "secret:landlord-tenant-keys/primary".to_string()
            ),
            (
                "LANDLORD_TENANT_KEY_SECONDARY".to_string(),
                "secret?:landlord-tenant-keys/secondary".to_string()
            ),
            (
                "LANDLORD_FLAGS_URL".to_string(),
                format!("http://landlord-runtime.{PLATFORM}.svc:8080")
            ),
        ],
        "the pool carries no tenant and no tenant's credentials, only the keys that check \
         its routes' tenant assertions"
    );
    Api::<KubeService>::namespaced(h.client.clone(), PLATFORM)
        .get(&web)
        .await?;
    for tenant in [&acme, &initech] {
        let instances =
            Api::<Deployment>::namespaced(h.client.clone(), &format!("tenant-{tenant}"))
                .list(&ListParams::default().labels("landlord.dev/service"))
                .await?;
        assert!(
            instances.items.is_empty(),
            "shared tenant {tenant} has Deployments of its own: {:?}",
            instances
                .items
                .iter()
                .map(|d| d.name_any())
                .collect::<Vec<_>>()
        );
    }
    let catalog = h.catalog();
    let status = wait::until("the pool counts both tenants", TIMEOUT, || async {
        let s = catalog.get(&web).await?.status.unwrap_or_default();
        Ok((s.tenants == 2 && s.tenants_ready == 2).then_some(s))
    })
    .await?;
    let pool_status = status.pool.context("no pool status")?;
    assert_eq!((pool_status.replicas, pool_status.ready_replicas), (2, 2));

    // A service missing from the catalog blocks ServicesReady, naming it.
    let missing = unique_name("missing");
    h.tenants()
        .patch(
            &initech,
            &PatchParams::default(),
            &Patch::Merge(
                &serde_json::json!({"spec": {"services": [{"name": web}, {"name": missing}]}}),
            ),
        )
        .await?;
    let t = h
        .wait_condition(&initech, "ServicesReady", "False", Some("ServiceNotFound"))
        .await?;
    let c = tenants::condition(&t, "ServicesReady").context("ServicesReady")?;
    assert!(c.message.contains(&missing), "{}", c.message);

    h.delete_tenant(&acme).await?;
    h.delete_tenant(&initech).await?;
    h.delete_service(&web).await
}

#[tokio::test]
async fn a_rollout_that_cannot_finish_is_reported_stuck_naming_the_service() -> anyhow::Result<()> {
    let h = harness().await?;
    let healthy = h
        .create_service(
            "fine",
            serde_json::json!({"image": "example/fine:1", "tiers": ["dedicated"]}),
        )
        .await?;
    let slow = h
        .create_service(
            "slow",
            serde_json::json!({
                "image": "example/slow:1",
                "tiers": ["dedicated"],
                "rollout": {"progressDeadlineSeconds": 10},
                "podLabels": {"landlord.dev/test-never-ready": "true"},
            }),
        )
        .await?;
    let tenant = h
        .new_tenant(
            "hooli",
            serde_json::json!({"tier": "dedicated", "services": [{"name": healthy}, {"name": slow}]}),
        )
        .await?;
    let t = h
        .wait_condition(&tenant, "ServicesReady", "False", Some("RolloutStuck"))
        .await?;
    let status = t.status.clone().context("status")?;
    let c = conditions::find(&status.conditions, "ServicesReady").context("ServicesReady")?;
    assert!(
        c.message.starts_with(&format!("service {slow}:"))
            && c.message.contains("progress deadline"),
        "{}",
        c.message
    );
    let ready = conditions::find(&status.conditions, "Ready").context("Ready")?;
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "RolloutStuck")
    );
    rolled_out(&h.client, &format!("tenant-{tenant}"), &healthy).await?;
    let catalog = h.catalog();
    wait::until(
        "the stuck Service counts its tenant as not ready",
        TIMEOUT,
        || async {
            let s = catalog.get(&slow).await?.status.unwrap_or_default();
            Ok((s.tenants == 1 && s.tenants_ready == 0).then_some(()))
        },
    )
    .await?;

    // Fixing the catalog Service rolls out and clears the condition.
    catalog
        .patch(
            &slow,
            &PatchParams::default(),
            &Patch::Merge(&serde_json::json!({"spec": {"podLabels": null}})),
        )
        .await?;
    h.wait_condition(&tenant, "ServicesReady", "True", Some("Ready"))
        .await?;

    h.delete_tenant(&tenant).await?;
    h.delete_service(&healthy).await?;
    h.delete_service(&slow).await
}

#[tokio::test]
async fn deleting_a_tenant_stops_its_workloads_before_its_namespace_goes() -> anyhow::Result<()> {
    let h = harness().await?;
    let app = h
        .create_service(
            "app",
            serde_json::json!({"image": "example/app:1", "tiers": ["dedicated"]}),
        )
        .await?;
    let tenant = h
        .new_tenant(
            "umbrella",
            serde_json::json!({"tier": "dedicated", "services": [{"name": app}]}),
        )
        .await?;
    h.wait_condition(&tenant, "ServicesReady", "True", Some("Ready"))
        .await?;
    let ns = format!("tenant-{tenant}");
    let deployments = Api::<Deployment>::namespaced(h.client.clone(), &ns);
    // A finalizer of the test's holds the Deployment, so the order is visible.
    let hold =
        |finalizers: serde_json::Value| serde_json::json!({"metadata": {"finalizers": finalizers}});
    deployments
        .patch(
            &app,
            &PatchParams::default(),
            &Patch::Merge(&hold(serde_json::json!(["landlord.dev/e2e-hold"]))),
        )
        .await?;
    h.tenants()
        .delete(&tenant, &DeleteParams::default())
        .await?;
    wait::until("the Deployment being deleted", TIMEOUT, || async {
        Ok(deployments
            .get(&app)
            .await?
            .metadata
            .deletion_timestamp
            .map(|_| ()))
    })
    .await?;
    let namespaces = Api::<Namespace>::all(h.client.clone());
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        namespaces
            .get(&ns)
            .await?
            .metadata
            .deletion_timestamp
            .is_none(),
        "namespace {ns} is terminating while the tenant's workloads still run"
    );
    let phase = h.tenants().get(&tenant).await?.status.and_then(|s| s.phase);
    assert_eq!(phase, Some(Phase::Terminating));
    deployments
        .patch(
            &app,
            &PatchParams::default(),
            &Patch::Merge(&hold(serde_json::Value::Null)),
        )
        .await?;
    wait::until("namespace and Tenant gone", TIMEOUT, || async {
        let ns_gone = namespaces.get_opt(&ns).await?.is_none();
        let tenant_gone = h.tenants().get_opt(&tenant).await?.is_none();
        Ok((ns_gone && tenant_gone).then_some(()))
    })
    .await?;
    assert!(
        h.operator.log_text().contains("the workloads of services"),
        "the operator never reported waiting for the workloads"
    );
    h.delete_service(&app).await
}

#[tokio::test]
async fn an_autoscaled_service_leaves_replicas_to_its_autoscaler_and_suspension_scales_to_zero()
-> anyhow::Result<()> {
    use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
    let h = harness().await?;
    let elastic = h
        .create_service(
            "elastic",
            serde_json::json!({
                "image": "example/elastic:1",
                "tiers": ["dedicated"],
                "resources": {"requests": {"cpu": "100m"}},
                "autoscaling": {"minReplicas": 2, "maxReplicas": 4},
            }),
        )
        .await?;
    let tenant = h
        .new_tenant(
            "wayne",
            serde_json::json!({"tier": "dedicated", "services": [{"name": elastic}]}),
        )
        .await?;
    let ns = format!("tenant-{tenant}");
    let autoscalers = Api::<HorizontalPodAutoscaler>::namespaced(h.client.clone(), &ns);
    let deployments = Api::<Deployment>::namespaced(h.client.clone(), &ns);
    // The autoscaler (Kubernetes' own controller) raises the Deployment to its minimum, and
    // Landlord does not take the count back.
    let hpa = wait::until("the autoscaler", TIMEOUT, || async {
        Ok(autoscalers.get_opt(&elastic).await?)
    })
    .await?;
    assert_eq!(
        hpa.spec.as_ref().map(|s| (s.min_replicas, s.max_replicas)),
        Some((Some(2), 4))
    );
    wait::until("the autoscaler's minimum", TIMEOUT, || async {
        let d = deployments.get(&elastic).await?;
        Ok((d.spec.as_ref().and_then(|s| s.replicas) == Some(2)).then_some(()))
    })
    .await?;
    rolled_out(&h.client, &ns, &elastic).await?;
    h.wait_condition(&tenant, "ServicesReady", "True", Some("Ready"))
        .await?;
    assert_eq!(
        deployments
            .get(&elastic)
            .await?
            .spec
            .and_then(|s| s.replicas),
        Some(2),
        "the operator took the replica count back from the autoscaler"
    );

    // Suspended: scaled to zero, and no autoscaler left to scale it back up.
    let suspend = |on: bool| serde_json::json!({"spec": {"suspended": on}});
    h.tenants()
        .patch(
            &tenant,
            &PatchParams::default(),
            &Patch::Merge(&suspend(true)),
        )
        .await?;
    h.wait_condition(&tenant, "ServicesReady", "True", Some("ScaledToZero"))
        .await?;
    let d = rolled_out(&h.client, &ns, &elastic).await?;
    assert_eq!(d.spec.and_then(|s| s.replicas), Some(0));
    assert!(
        autoscalers.get_opt(&elastic).await?.is_none(),
        "the autoscaler survived suspension"
    );

    // Resumed: the autoscaler is back and brings the minimum back.
    h.tenants()
        .patch(
            &tenant,
            &PatchParams::default(),
            &Patch::Merge(&suspend(false)),
        )
        .await?;
    wait::until("the minimum after resuming", TIMEOUT, || async {
        let d = deployments.get(&elastic).await?;
        Ok((d.spec.as_ref().and_then(|s| s.replicas) == Some(2)).then_some(()))
    })
    .await?;
    autoscalers.get(&elastic).await?;
    h.wait_condition(&tenant, "ServicesReady", "True", Some("Ready"))
        .await?;

    h.delete_tenant(&tenant).await?;
    h.delete_service(&elastic).await
}

/// Issue 12: the API server refuses the pool (here a quota in the platform namespace that
/// allows no more Deployments). The catalog Service says so in its Ready condition, naming
/// the Deployment and quoting the server, instead of only the log; once the quota is gone,
/// the next change of the Service brings the pool up.
#[tokio::test]
async fn a_refused_pool_reaches_the_services_status() -> anyhow::Result<()> {
    let h = harness().await?;
    let quotas = Api::<ResourceQuota>::namespaced(h.client.clone(), PLATFORM);
    let quota_name = unique_name("no-deployments");
    let quota: ResourceQuota = serde_json::from_value(serde_json::json!({
        "metadata": {"name": quota_name},
        "spec": {"hard": {"count/deployments.apps": "0"}},
    }))?;
    quotas.create(&PostParams::default(), &quota).await?;
    let result = async {
        // Until the quota controller has counted, the API server refuses for another reason.
        wait::until("the quota counted", TIMEOUT, || async {
            let q = quotas.get(&quota_name).await?;
            Ok(q.status
                .and_then(|s| s.used)
                .is_some_and(|u| u.contains_key("count/deployments.apps"))
                .then_some(()))
        })
        .await?;
        let name = h
            .create_service(
                "quota",
                serde_json::json!({
                    "image": "registry.example.com/shop/web:2.0.0",
                    "ports": [{"name": "http", "port": 80}],
                    "tiers": ["shared"],
                }),
            )
            .await?;
        let catalog = h.catalog();
        let condition = wait::until(
            &format!("Service {name} Ready=False QuotaExceeded"),
            TIMEOUT,
            || async {
                let s = catalog.get(&name).await?.status.unwrap_or_default();
                Ok(conditions::find(&s.conditions, "Ready")
                    .filter(|c| c.status == "False" && c.reason == "QuotaExceeded")
                    .cloned())
            },
        )
        .await?;
        for part in [
            format!("Deployment {PLATFORM}/{name}"),
            "exceeded quota".to_string(),
            quota_name.clone(),
        ] {
            assert!(
                condition.message.contains(&part),
                "{part} not in {}",
                condition.message
            );
        }

        quotas.delete(&quota_name, &DeleteParams::default()).await?;
        catalog
            .patch(
                &name,
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"metadata": {"labels": {"retry": "1"}}})),
            )
            .await?;
        wait::until(&format!("Service {name} Ready"), TIMEOUT, || async {
            let s = catalog.get(&name).await?.status.unwrap_or_default();
            Ok(conditions::is_true(&s.conditions, "Ready").then_some(()))
        })
        .await?;
        h.delete_service(&name).await
    }
    .await;
    let _ = quotas.delete(&quota_name, &DeleteParams::default()).await;
    result
}
