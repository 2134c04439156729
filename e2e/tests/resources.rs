//! The four Landlord resource types on the real API server: installation, documentation,
//! the examples, the invalid-manifest corpus and deletion protection.

use std::{path::Path, time::Duration};

use anyhow::Context;
use kube::{
    Api, ResourceExt,
    api::{DeleteParams, DynamicObject, Patch, PatchParams, PostParams},
};
use landlord_crds::Tenant;
use landlord_e2e::{
    TestNamespace, cluster,
    cluster::repo_root,
    manifests::{self, install_crds},
    unique_name,
};

#[tokio::test]
async fn crds_install_and_kubectl_explain_shows_their_docs() -> anyhow::Result<()> {
    let cluster = cluster();
    install_crds(&cluster.client().await?).await?;

    let explain = cluster.kubectl_ok(&["explain", "tenant.spec"])?;
    assert!(
        explain.contains("Isolation tier"),
        "explain tenant.spec lacks the tier docs:\n{explain}"
    );
    assert!(
        explain.contains("deletionProtection"),
        "explain tenant.spec lacks fields:\n{explain}"
    );
    let root = cluster.kubectl_ok(&["explain", "tenants"])?;
    assert!(
        root.contains("A customer of the platform"),
        "explain tenants lacks the kind's docs:\n{root}"
    );
    for (path, text) in [
        ("tenant.spec.quota.requests.cpu", "Total CPU requests"),
        ("lsvc.spec.tiers", "Tiers the service runs for"),
        ("domains.spec.hostname", "lowercase"),
        (
            "featureflagsets.spec.flags.variants",
            "Named values of the flag",
        ),
    ] {
        let out = cluster.kubectl_ok(&["explain", path])?;
        assert!(out.contains(text), "explain {path} lacks {text:?}:\n{out}");
    }
    Ok(())
}

#[tokio::test]
async fn every_example_manifest_is_accepted() -> anyhow::Result<()> {
    let cluster = cluster();
    let client = cluster.client().await?;
    install_crds(&client).await?;
    let namespace = TestNamespace::new(&client, "examples").await?;
    let examples = manifests::read_documents(&repo_root().join("manifests/examples"))?;
    let kinds: Vec<String> = examples
        .iter()
        .filter_map(|o| o.types.as_ref().map(|t| t.kind.clone()))
        .collect();
    for kind in [
        "Tenant",
        "Service",
        "Domain",
        "FeatureFlagSet",
        "WebhookEndpoint",
    ] {
        assert!(
            kinds.iter().any(|k| k == kind),
            "manifests/examples has no {kind}"
        );
    }
    assert!(
        examples.len() >= 7,
        "expected at least 7 example objects, found {}",
        examples.len()
    );
    for object in &examples {
        // Namespaced examples go to this test's namespace; a server-side dry run runs the
        // schema, CEL rules and admission exactly as a real create does.
        let mut answer = manifests::create(&client, object, Some(&namespace.name), true).await?;
        if let Err(kube::Error::Api(status)) = &answer
            && status.code == 409
        {
            // Already there (the platform namespace, made by the pooled tenant-runtime or the
            // demo): a dry-run server-side apply validates it as an update instead.
            let api = manifests::api_for(&client, object, Some(&namespace.name)).await?;
            let mut object = object.clone();
            object.metadata.namespace = Some(namespace.name.clone());
            let params = PatchParams {
                dry_run: true,
                ..PatchParams::apply("landlord-e2e").force()
            };
            answer = api
                .patch(&object.name_any(), &params, &Patch::Apply(&object))
                .await;
        }
        if let Err(e) = answer {
            panic!(
                "example {} {} rejected: {e}",
                object
                    .types
                    .as_ref()
                    .map(|t| t.kind.as_str())
                    .unwrap_or("?"),
                object.name_any()
            );
        }
    }
    namespace.cleanup().await
}

/// One file of `e2e/tests/invalid/`.
struct Case {
    file: String,
    expect: String,
    documents: Vec<DynamicObject>,
}

fn read_cases() -> anyhow::Result<Vec<Case>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/invalid");
    let mut files: Vec<_> = std::fs::read_dir(&dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    files.sort();
    files
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|path| {
            let text = std::fs::read_to_string(&path)?;
            let file = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let expect = text
                .lines()
                .find_map(|l| l.strip_prefix("# expect:"))
                .map(|e| e.trim().to_string())
                .with_context(|| format!("{file} has no `# expect:` line"))?;
            anyhow::ensure!(!expect.is_empty(), "{file} has an empty `# expect:` line");
            let documents =
                manifests::parse_documents(&text).with_context(|| format!("parsing {file}"))?;
            anyhow::ensure!(
                matches!(documents.len(), 1 | 2),
                "{file} must hold one or two documents"
            );
            Ok(Case {
                file,
                expect,
                documents,
            })
        })
        .collect()
}

/// Runs one case: the last document must be refused, with an error naming the field.
async fn refusal_of(client: &kube::Client, case: &Case, namespace: &str) -> anyhow::Result<String> {
    let last = case.documents.last().context("case without documents")?;
    if case.documents.len() == 2 {
        let original = &case.documents[0];
        if let Err(e) = manifests::create(client, original, Some(namespace), false).await? {
            anyhow::bail!("the original object was refused, so the update proves nothing: {e}");
        }
        let api = manifests::api_for(client, original, Some(namespace)).await?;
        // A full replace, as `kubectl replace` sends it: fields left out of the update are
        // removed, which is what the "removed" cases test.
        let current = api.get(&original.name_any()).await?;
        let mut update = last.clone();
        update.metadata.namespace = current.metadata.namespace.clone();
        update.metadata.resource_version = current.metadata.resource_version.clone();
        let answer = api
            .replace(&update.name_any(), &PostParams::default(), &update)
            .await;
        let _ = api
            .delete(&original.name_any(), &DeleteParams::default())
            .await;
        match answer {
            Ok(_) => anyhow::bail!("the update was accepted"),
            Err(e) => Ok(e.to_string()),
        }
    } else {
        match manifests::create(client, last, Some(namespace), true).await? {
            Ok(_) => anyhow::bail!("the object was accepted"),
            Err(e) => Ok(e.to_string()),
        }
    }
}

#[tokio::test]
async fn invalid_manifests_are_refused_with_a_message_naming_the_field() -> anyhow::Result<()> {
    let cluster = cluster();
    let client = cluster.client().await?;
    install_crds(&client).await?;
    let cases = read_cases()?;
    assert!(
        cases.len() >= 40,
        "the corpus must hold at least 40 cases, it holds {}",
        cases.len()
    );
    let namespace = TestNamespace::new(&client, "invalid").await?;
    let mut failures = Vec::new();
    for case in &cases {
        match refusal_of(&client, case, &namespace.name).await {
            Ok(message) if message.contains(&case.expect) => {}
            Ok(message) => failures.push(format!(
                "{}: refused, but the message does not name {:?}: {message}",
                case.file, case.expect
            )),
            Err(e) => failures.push(format!("{}: {e:#}", case.file)),
        }
    }
    namespace.cleanup().await?;
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    Ok(())
}

fn tenant(name: &str, protected: bool) -> anyhow::Result<Tenant> {
    Ok(serde_json::from_value(serde_json::json!({
        "apiVersion": "landlord.dev/v1alpha1",
        "kind": "Tenant",
        "metadata": {"name": name, "labels": {"landlord.dev/e2e": "true"}},
        "spec": {"tier": "shared", "deletionProtection": protected}
    }))?)
}

#[tokio::test]
async fn deletion_protection_refuses_delete_until_cleared() -> anyhow::Result<()> {
    let cluster = cluster();
    let client = cluster.client().await?;
    install_crds(&client).await?;
    let tenants = Api::<Tenant>::all(client.clone());
    let name = unique_name("protected");
    tenants
        .create(&PostParams::default(), &tenant(&name, true)?)
        .await?;

    // A new admission policy takes a moment to load; probe with dry-run deletes so the real
    // object is never deleted by a policy that is not in force yet.
    let dry_run = DeleteParams {
        dry_run: true,
        ..Default::default()
    };
    let mut refused = None;
    for _ in 0..60 {
        match tenants.delete(&name, &dry_run).await {
            Err(e) => {
                refused = Some(e.to_string());
                break;
            }
            Ok(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
    let refused = refused.context("the deletion-protection policy never refused a delete")?;
    assert!(
        refused.contains("spec.deletionProtection"),
        "refusal does not name the field: {refused}"
    );

    let denied = tenants.delete(&name, &DeleteParams::default()).await;
    assert!(denied.is_err(), "a protected Tenant was deleted");
    assert!(
        tenants.get_opt(&name).await?.is_some(),
        "the protected Tenant is gone"
    );

    let unprotect = serde_json::json!({"spec": {"deletionProtection": false}});
    tenants
        .patch(&name, &PatchParams::default(), &Patch::Merge(&unprotect))
        .await?;
    tenants.delete(&name, &DeleteParams::default()).await?;
    for _ in 0..50 {
        if tenants.get_opt(&name).await?.is_none() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    anyhow::bail!("the unprotected Tenant {name} was not deleted")
}
