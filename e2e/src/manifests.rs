//! Applying YAML manifests (CRDs, examples, test cases) to the local cluster as they are,
//! through the API server's discovery, so a test sends exactly what a user would.

use std::path::Path;

use anyhow::Context;
use k8s_openapi::{
    api::core::v1::Namespace,
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client, ResourceExt,
    api::{DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams},
    discovery::{self, ApiCapabilities, ApiResource, Scope},
    runtime::{conditions, wait::await_condition},
};
use tokio::sync::OnceCell;

use crate::cluster::repo_root;

/// Field manager of objects the tests apply.
pub const FIELD_MANAGER: &str = "landlord-e2e";

/// Parses a multi-document YAML stream into objects, skipping empty documents.
pub fn parse_documents(text: &str) -> anyhow::Result<Vec<DynamicObject>> {
    use serde::Deserialize;
    serde_yaml::Deserializer::from_str(text)
        .map(|document| serde_yaml::Value::deserialize(document).context("parsing YAML"))
        .filter(|value| !matches!(value, Ok(serde_yaml::Value::Null)))
        .map(|value| Ok(serde_yaml::from_value::<DynamicObject>(value?)?))
        .collect()
}

/// Reads every `.yaml` file of a directory (sorted), or one file.
pub fn read_documents(path: &Path) -> anyhow::Result<Vec<DynamicObject>> {
    let mut files = if path.is_dir() {
        std::fs::read_dir(path)?
            .map(|entry| entry.map(|e| e.path()))
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
            .collect()
    } else {
        vec![path.to_path_buf()]
    };
    files.sort();
    let mut objects = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("reading {}", file.display()))?;
        objects.extend(parse_documents(&text).with_context(|| format!("in {}", file.display()))?);
    }
    Ok(objects)
}

/// The API of an object's kind, in its namespace (or `namespace` when given, for namespaced
/// kinds).
pub async fn api_for(
    client: &Client,
    object: &DynamicObject,
    namespace: Option<&str>,
) -> anyhow::Result<Api<DynamicObject>> {
    let types = object
        .types
        .as_ref()
        .context("object without apiVersion/kind")?;
    let gvk = GroupVersionKind::try_from(types)?;
    let (resource, capabilities): (ApiResource, ApiCapabilities) =
        discovery::pinned_kind(client, &gvk)
            .await
            .with_context(|| format!("discovering {}/{}", types.api_version, types.kind))?;
    Ok(match capabilities.scope {
        Scope::Cluster => Api::all_with(client.clone(), &resource),
        Scope::Namespaced => {
            let ns = namespace
                .map(str::to_string)
                .or_else(|| object.namespace())
                .unwrap_or_else(|| "default".into());
            Api::namespaced_with(client.clone(), &ns, &resource)
        }
    })
}

/// Server-side applies an object with the tests' field manager.
pub async fn apply(
    client: &Client,
    object: &DynamicObject,
    namespace: Option<&str>,
) -> anyhow::Result<DynamicObject> {
    let api = api_for(client, object, namespace).await?;
    let mut object = object.clone();
    if let Some(ns) = namespace {
        object.metadata.namespace = Some(ns.to_string());
    }
    let params = PatchParams::apply(FIELD_MANAGER).force();
    Ok(api
        .patch(&object.name_any(), &params, &Patch::Apply(&object))
        .await?)
}

/// Creates an object, optionally as a server-side dry run, returning the API server's answer
/// unchanged so that tests can read its error.
pub async fn create(
    client: &Client,
    object: &DynamicObject,
    namespace: Option<&str>,
    dry_run: bool,
) -> anyhow::Result<Result<DynamicObject, kube::Error>> {
    let api = api_for(client, object, namespace).await?;
    let mut object = object.clone();
    if let Some(ns) = namespace {
        object.metadata.namespace = Some(ns.to_string());
    }
    let params = PostParams {
        dry_run,
        ..Default::default()
    };
    Ok(api.create(&params, &object).await)
}

static CRDS: OnceCell<()> = OnceCell::const_new();

/// Installs Landlord's CRDs and admission policies from `manifests/` (once per test process)
/// and waits until the CRDs are established.
pub async fn install_crds(client: &Client) -> anyhow::Result<()> {
    CRDS.get_or_try_init(|| install_crds_on(client)).await?;
    Ok(())
}

/// Installs Landlord's CRDs and admission policies into the cluster of `client` every time
/// it is called (for a second stack, which the once-per-process `install_crds` would skip).
pub async fn install_crds_on(client: &Client) -> anyhow::Result<()> {
    let root = repo_root();
    let crds = read_documents(&root.join("manifests/crds"))?;
    for crd in &crds {
        apply(client, crd, None).await?;
    }
    let api = Api::<CustomResourceDefinition>::all(client.clone());
    for crd in &crds {
        let name = crd.name_any();
        tokio::time::timeout(
            std::time::Duration::from_secs(60),
            await_condition(api.clone(), &name, conditions::is_crd_established()),
        )
        .await
        .with_context(|| format!("CRD {name} not established within 60s"))??;
    }
    for policy in read_documents(&root.join("manifests/policies"))? {
        // A policy's parameters live in the operator's namespace, which may not exist yet.
        if let Some(namespace) = policy.namespace() {
            ensure_namespace(client, &namespace).await?;
        }
        apply(client, &policy, None).await?;
    }
    Ok(())
}

/// Creates a namespace unless it exists.
pub async fn ensure_namespace(client: &Client, name: &str) -> anyhow::Result<()> {
    ensure_namespace_labelled(client, name, serde_json::json!({})).await
}

/// Creates a platform namespace for an operator's `--platform-namespace`: labelled
/// `landlord.dev/platform`, which the operator-scope admission policy requires of every
/// namespace the operator writes in (other than tenant namespaces and its defaults).
pub async fn ensure_platform_namespace(client: &Client, name: &str) -> anyhow::Result<()> {
    ensure_namespace_labelled(
        client,
        name,
        serde_json::json!({"landlord.dev/platform": "true"}),
    )
    .await
}

/// Creates namespace `name` with `labels`, unless it exists.
pub async fn ensure_namespace_labelled(
    client: &Client,
    name: &str,
    labels: serde_json::Value,
) -> anyhow::Result<()> {
    let namespace: Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": name, "labels": labels}}))?;
    match Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
        Err(e) => Err(e).with_context(|| format!("creating namespace {name}")),
    }
}
