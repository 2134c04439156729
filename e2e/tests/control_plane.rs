//! The local control plane behaves like a real cluster where Landlord depends on it:
//! workloads become Available on kwok's nodes, namespaces finish deleting, the garbage
//! collector removes owned objects, and the stack's DNS serves the records tests publish.

use std::time::Duration;

use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{ConfigMap, Namespace},
};
use kube::{
    Api, Resource, ResourceExt,
    api::{DeleteParams, ObjectMeta, PostParams},
    runtime::{conditions, wait::await_condition},
};
use landlord_e2e::{TestNamespace, cluster, unique_name};

const TIMEOUT: Duration = Duration::from_secs(90);

#[tokio::test]
async fn deployment_becomes_available_on_kwok_nodes() -> anyhow::Result<()> {
    let client = cluster().client().await?;
    let namespace = TestNamespace::new(&client, "deploy").await?;
    let deployments = Api::<Deployment>::namespaced(client.clone(), &namespace.name);
    let deployment: Deployment = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "registry.invalid/web:1"}]}
            }
        }
    }))?;
    deployments
        .create(&PostParams::default(), &deployment)
        .await?;
    tokio::time::timeout(
        TIMEOUT,
        await_condition(
            deployments.clone(),
            "web",
            conditions::is_deployment_completed(),
        ),
    )
    .await??;
    let web = deployments.get("web").await?;
    let status = web.status.unwrap_or_default();
    assert_eq!(
        status.available_replicas,
        Some(2),
        "deployment status: {status:?}"
    );
    assert!(
        status
            .conditions
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Available" && c.status == "True"),
        "no Available condition"
    );
    namespace.cleanup().await
}

#[tokio::test]
async fn deleted_namespace_finishes_terminating() -> anyhow::Result<()> {
    let client = cluster().client().await?;
    let namespace = TestNamespace::new(&client, "terminate").await?;
    let name = namespace.name.clone();
    let config_maps = Api::<ConfigMap>::namespaced(client.clone(), &name);
    config_maps
        .create(
            &PostParams::default(),
            &ConfigMap {
                metadata: ObjectMeta {
                    name: Some("content".into()),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await?;
    namespace.cleanup().await?;
    let namespaces = Api::<Namespace>::all(client);
    tokio::time::timeout(
        TIMEOUT,
        await_condition(namespaces, &name, conditions::is_deleted("")),
    )
    .await??;
    Ok(())
}

#[tokio::test]
async fn owned_object_is_garbage_collected_with_its_owner() -> anyhow::Result<()> {
    let client = cluster().client().await?;
    let namespace = TestNamespace::new(&client, "gc").await?;
    let config_maps = Api::<ConfigMap>::namespaced(client.clone(), &namespace.name);
    let owner_name = unique_name("owner");
    let owner = config_maps
        .create(
            &PostParams::default(),
            &ConfigMap {
                metadata: ObjectMeta {
                    name: Some(owner_name.clone()),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await?;
    let owner_ref = owner
        .controller_owner_ref(&())
        .expect("a created object has a uid");
    let child = ConfigMap {
        metadata: ObjectMeta {
            name: Some("child".into()),
            owner_references: Some(vec![owner_ref]),
            ..Default::default()
        },
        ..Default::default()
    };
    let child = config_maps.create(&PostParams::default(), &child).await?;
    config_maps
        .delete(&owner_name, &DeleteParams::background())
        .await?;
    let uid = child.uid().unwrap_or_default();
    tokio::time::timeout(
        TIMEOUT,
        await_condition(config_maps.clone(), "child", conditions::is_deleted(&uid)),
    )
    .await??;
    namespace.cleanup().await
}

/// A customer's zone added at run time (what `e2e/demo` does for `globex.example`) answers
/// the TXT records published in it, asked as the operator asks; adding it again changes
/// nothing, and a name in no served zone is refused naming the way to serve it.
#[tokio::test]
async fn the_stacks_dns_serves_a_zone_added_at_run_time() -> anyhow::Result<()> {
    use landlord_controllers::domain::dns::Resolver;
    let cluster = cluster();
    let zone = format!("{}.example", unique_name("customer"));
    let record = format!("_landlord-challenge.shop.{zone}");
    let resolver = Resolver::new(cluster.dns_server().parse()?);

    cluster.add_zone(&zone)?;
    cluster.add_zone(&zone)?;
    cluster.set_txt(&record, "landlord-domain-verification=1234")?;
    assert_eq!(
        resolver.txt(&record).await?,
        vec!["landlord-domain-verification=1234".to_string()]
    );
    // The stack's own zone still answers beside it.
    let own = format!("{}.{}", unique_name("own"), cluster.dns_zone());
    cluster.set_txt(&own, "still-here")?;
    assert_eq!(resolver.txt(&own).await?, vec!["still-here".to_string()]);
    cluster.unset_txt(&own, "still-here")?;

    cluster.unset_txt(&record, "landlord-domain-verification=1234")?;
    assert_eq!(resolver.txt(&record).await?, Vec::<String>::new());

    let refused = cluster
        .set_txt(&format!("shop.{}.invalid", unique_name("unserved")), "x")
        .expect_err("a name in no served zone is refused");
    assert!(
        format!("{refused:#}").contains("add-zone"),
        "the refusal names dns add-zone: {refused:#}"
    );
    Ok(())
}
