//! The Helm chart (`charts/landlord`) and the static install manifest rendered from it:
//! lint, what the chart renders, what its schema refuses, drift of
//! `manifests/install/landlord.yaml`, and an install on the local control plane (Pod Security
//! admission and RBAC as the API server enforces them).
//!
//! Helm is built from its Go module by `e2e/scripts/build-helm.sh` (cached by version).

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
    sync::OnceLock,
};

use anyhow::{Context, bail, ensure};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::{Api, api::PostParams};
use landlord_e2e::{cluster, cluster::repo_root, unique_name};
use serde::Deserialize;
use serde_yaml::Value;

const CHART: &str = "charts/landlord";
const INSTALL_MANIFEST: &str = "manifests/install/landlord.yaml";
const NAMESPACE: &str = "landlord-system";
const RBAC: &str = "rbac.authorization.k8s.io";
const LEASES: &str = "coordination.k8s.io";

/// The helm binary, built once per test process (a cached build returns at once).
fn helm() -> &'static Path {
    static HELM: OnceLock<PathBuf> = OnceLock::new();
    HELM.get_or_init(|| {
        let output = Command::new("bash")
            .arg(repo_root().join("e2e/scripts/build-helm.sh"))
            .output()
            .expect("running e2e/scripts/build-helm.sh");
        assert!(
            output.status.success(),
            "e2e/scripts/build-helm.sh failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        let path = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
        assert!(
            path.is_file(),
            "build-helm.sh printed {path:?}, which is not a file"
        );
        path
    })
}

/// Runs helm in the repository root, whatever its exit status.
fn run_helm(args: &[&str]) -> anyhow::Result<Output> {
    Command::new(helm())
        .args(args)
        .current_dir(repo_root())
        .output()
        .with_context(|| format!("running helm {}", args.join(" ")))
}

/// `helm template` of the chart with extra `--set` values; fails with helm's stderr.
fn render_with(release: &str, namespace: &str, sets: &[&str]) -> anyhow::Result<String> {
    let mut args = vec!["template", release, CHART, "--namespace", namespace];
    for set in sets {
        args.extend(["--set", set]);
    }
    let output = run_helm(&args)?;
    ensure!(
        output.status.success(),
        "helm {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8(output.stdout)?)
}

/// The rendered objects, as YAML values.
fn render(sets: &[&str]) -> anyhow::Result<Vec<Value>> {
    parse(&render_with("landlord", NAMESPACE, sets)?)
}

fn parse(text: &str) -> anyhow::Result<Vec<Value>> {
    serde_yaml::Deserializer::from_str(text)
        .map(|document| Value::deserialize(document).context("parsing rendered YAML"))
        .filter(|value| !matches!(value, Ok(Value::Null)))
        .collect()
}

fn of_kind<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects
        .iter()
        .filter(|o| o["kind"].as_str() == Some(kind))
        .collect()
}

/// The one object of a kind; fails when there is none or more than one.
fn only<'a>(objects: &'a [Value], kind: &str) -> anyhow::Result<&'a Value> {
    match of_kind(objects, kind).as_slice() {
        [object] => Ok(object),
        found => bail!("expected one {kind}, rendered {}", found.len()),
    }
}

/// The one object of a kind with this `app.kubernetes.io/component` label.
fn only_of<'a>(objects: &'a [Value], kind: &str, component: &str) -> anyhow::Result<&'a Value> {
    match of_kind(objects, kind)
        .into_iter()
        .filter(|o| {
            o["metadata"]["labels"]["app.kubernetes.io/component"].as_str() == Some(component)
        })
        .collect::<Vec<_>>()
        .as_slice()
    {
        [object] => Ok(object),
        found => bail!(
            "expected one {kind} of component {component}, rendered {}",
            found.len()
        ),
    }
}

fn strings(value: &Value) -> Vec<&str> {
    value
        .as_sequence()
        .map(|items| items.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn name(object: &Value) -> &str {
    object["metadata"]["name"].as_str().unwrap_or_default()
}

#[test]
fn helm_lint_strict_passes() -> anyhow::Result<()> {
    let output = run_helm(&["lint", "--strict", CHART])?;
    assert!(
        output.status.success(),
        "helm lint --strict {CHART} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

#[test]
fn operator_deployment_runs_two_restricted_replicas_with_probes_and_lease_identity()
-> anyhow::Result<()> {
    let objects = render(&[])?;
    let deployment = only_of(&objects, "Deployment", "operator")?;
    assert_eq!(
        deployment["metadata"]["namespace"].as_str(),
        Some(NAMESPACE)
    );
    assert_eq!(deployment["spec"]["replicas"].as_u64(), Some(2));
    let pod = &deployment["spec"]["template"]["spec"];

    let pod_security = &pod["securityContext"];
    assert_eq!(pod_security["runAsNonRoot"].as_bool(), Some(true));
    assert_eq!(pod_security["runAsUser"].as_u64(), Some(65532));
    assert_eq!(
        pod_security["seccompProfile"]["type"].as_str(),
        Some("RuntimeDefault")
    );
    assert_eq!(pod["terminationGracePeriodSeconds"].as_u64(), Some(30));
    assert!(
        pod["topologySpreadConstraints"]
            .as_sequence()
            .is_some_and(|c| !c.is_empty()),
        "replicas are not spread over nodes: {pod:?}"
    );

    let containers = pod["containers"].as_sequence().context("no containers")?;
    assert_eq!(containers.len(), 1);
    let container = &containers[0];
    assert_eq!(
        container["image"].as_str(),
        Some("ghcr.io/landlord-dev/landlord:0.1.0"),
        "the image tag defaults to the chart's appVersion"
    );
    let security = &container["securityContext"];
    assert_eq!(security["allowPrivilegeEscalation"].as_bool(), Some(false));
    assert_eq!(security["readOnlyRootFilesystem"].as_bool(), Some(true));
    assert_eq!(strings(&security["capabilities"]["drop"]), ["ALL"]);

    let args = strings(&container["args"]);
    for expected in [
        "run",
        "--log-format=json",
        "--probe-address=0.0.0.0:8080",
        "--lease-name=landlord-leader",
        "--platform-namespace=landlord-platform",
        "--gateway-namespace=landlord-gateway",
    ] {
        assert!(args.contains(&expected), "args {args:?} lack {expected}");
    }
    assert_eq!(args[0], "run", "the subcommand comes first: {args:?}");

    let env = container["env"].as_sequence().context("no env")?;
    for (var, field) in [
        ("POD_NAME", "metadata.name"),
        ("POD_NAMESPACE", "metadata.namespace"),
    ] {
        let entry = env
            .iter()
            .find(|e| e["name"].as_str() == Some(var))
            .with_context(|| format!("env lacks {var}"))?;
        assert_eq!(
            entry["valueFrom"]["fieldRef"]["fieldPath"].as_str(),
            Some(field)
        );
    }

    let ports = container["ports"].as_sequence().context("no ports")?;
    assert!(
        ports
            .iter()
            .any(|p| p["name"].as_str() == Some("http-metrics")
                && p["containerPort"].as_u64() == Some(8080)),
        "no http-metrics port 8080: {ports:?}"
    );
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        let get = &container[probe]["httpGet"];
        assert_eq!(get["path"].as_str(), Some(path), "{probe}");
        assert_eq!(get["port"].as_str(), Some("http-metrics"), "{probe}");
    }

    let service_account = only_of(&objects, "ServiceAccount", "operator")?;
    assert_eq!(name(service_account), "landlord");
    assert_eq!(
        service_account["metadata"]["namespace"].as_str(),
        Some(NAMESPACE)
    );
    assert_eq!(pod["serviceAccountName"].as_str(), Some("landlord"));
    Ok(())
}

#[test]
fn rbac_has_no_wildcards_and_no_escalation_on_cluster_rbac() -> anyhow::Result<()> {
    let objects = render(&[])?;
    for kind in ["ClusterRole", "Role"] {
        for role in of_kind(&objects, kind) {
            for rule in role["rules"].as_sequence().context("no rules")? {
                for field in ["apiGroups", "resources", "verbs", "resourceNames"] {
                    let values = strings(&rule[field]);
                    assert!(
                        values.iter().all(|v| !v.contains('*')),
                        "{kind} {} has a wildcard in {field}: {rule:?}",
                        name(role)
                    );
                }
                assert!(
                    rule["nonResourceURLs"].is_null(),
                    "{kind} {} grants non-resource URLs",
                    name(role)
                );
            }
        }
    }

    // The operator's ClusterRole (bound cluster-wide) and its Secrets ClusterRole (bound only
    // per namespace).
    let operator_roles: Vec<&Value> = of_kind(&objects, "ClusterRole")
        .into_iter()
        .filter(|o| {
            o["metadata"]["labels"]["app.kubernetes.io/component"].as_str() == Some("operator")
        })
        .collect();
    let binding = only_of(&objects, "ClusterRoleBinding", "operator")?;
    let bound = binding["roleRef"]["name"]
        .as_str()
        .context("roleRef name")?;
    let role_named = |wanted: &str| {
        operator_roles
            .iter()
            .find(|r| name(r) == wanted)
            .copied()
            .with_context(|| format!("no ClusterRole {wanted} rendered"))
    };
    let cluster_role = role_named(bound)?;
    let secrets_role = role_named(&format!("{bound}-secrets"))?;
    assert_eq!(operator_roles.len(), 2, "{operator_roles:?}");
    for rule in cluster_role["rules"].as_sequence().context("no rules")? {
        assert!(
            !strings(&rule["resources"]).contains(&"secrets"),
            "the cluster-wide ClusterRole grants Secrets: {rule:?}"
        );
    }
    assert!(
        secrets_role["rules"]
            .as_sequence()
            .context("no rules")?
            .iter()
            .all(|r| strings(&r["resources"]) == ["secrets"]),
        "the Secrets ClusterRole grants only Secrets"
    );
    assert!(
        of_kind(&objects, "ClusterRoleBinding")
            .iter()
            .all(|b| b["roleRef"]["name"].as_str() != Some(name(secrets_role))),
        "the Secrets ClusterRole is never bound cluster-wide"
    );
    assert!(
        of_kind(&objects, "RoleBinding")
            .iter()
            .any(|b| b["roleRef"]["name"].as_str() == Some(name(secrets_role))),
        "the chart binds the Secrets ClusterRole in its namespace"
    );
    let rules = cluster_role["rules"].as_sequence().context("no rules")?;
    let grants = |group: &str, resource: &str, verb: &str| {
        rules.iter().any(|r| {
            strings(&r["apiGroups"]).contains(&group)
                && strings(&r["resources"]).contains(&resource)
                && strings(&r["verbs"]).contains(&verb)
        })
    };
    // ClusterRoles and their bindings: written (each Tenant's read access for its admins and
    // viewers, bounded by the operator-scope policy), never with `escalate`, so the API
    // server lets them grant only what the operator holds.
    for resource in ["clusterroles", "clusterrolebindings"] {
        for verb in ["create", "patch", "delete"] {
            assert!(
                grants(RBAC, resource, verb),
                "the operator may not {verb} {resource}"
            );
        }
        assert!(
            !grants(RBAC, resource, "escalate"),
            "the operator may escalate {resource}"
        );
    }
    for rule in rules.iter().filter(|r| {
        strings(&r["resources"]).contains(&"clusterroles") && strings(&r["verbs"]).contains(&"bind")
    }) {
        assert_eq!(
            (strings(&rule["verbs"]), strings(&rule["resourceNames"])),
            (vec!["bind"], vec![name(secrets_role)]),
            "the operator binds no ClusterRole but its Secrets role: {rule:?}"
        );
    }
    for verb in ["escalate", "bind", "create"] {
        assert!(
            grants(RBAC, "roles", verb),
            "the operator may not {verb} roles"
        );
    }
    assert!(!grants(RBAC, "rolebindings", "escalate"));
    assert!(
        !grants(RBAC, "clusterroles", "escalate"),
        "the operator may escalate clusterroles"
    );
    for (group, resource, verb) in [
        ("landlord.dev", "tenants", "watch"),
        ("landlord.dev", "tenants/status", "patch"),
        ("landlord.dev", "tenants/finalizers", "update"),
        ("apiextensions.k8s.io", "customresourcedefinitions", "watch"),
        ("", "namespaces", "delete"),
        ("", "events", "create"),
        ("events.k8s.io", "events", "patch"),
        ("networking.k8s.io", "networkpolicies", "patch"),
        ("apps", "statefulsets", "patch"),
        ("policy", "poddisruptionbudgets", "patch"),
        ("autoscaling", "horizontalpodautoscalers", "patch"),
        ("gateway.networking.k8s.io", "httproutes", "patch"),
        ("cert-manager.io", "certificates", "patch"),
    ] {
        assert!(
            grants(group, resource, verb),
            "ClusterRole lacks {verb} on {group}/{resource}"
        );
    }
    // Users create and delete Landlord's resources; the operator only reads and updates them.
    assert!(!grants("landlord.dev", "tenants", "delete"));
    assert!(!grants("landlord.dev", "tenants", "create"));
    // Pods are read, never written.
    assert!(!grants("", "pods", "create"));
    assert!(!grants("", "pods", "delete"));

    let lease_role = only(&objects, "Role")?;
    assert_eq!(
        lease_role["metadata"]["namespace"].as_str(),
        Some(NAMESPACE)
    );
    let lease_rules = lease_role["rules"].as_sequence().context("no rules")?;
    assert!(
        lease_rules
            .iter()
            .all(|r| strings(&r["apiGroups"]) == ["coordination.k8s.io"]
                && strings(&r["resources"]) == ["leases"]),
        "the namespaced Role grants more than leases: {lease_rules:?}"
    );
    let lease_verbs: Vec<&str> = lease_rules
        .iter()
        .flat_map(|r| strings(&r["verbs"]))
        .collect();
    for verb in ["get", "create", "update", "patch"] {
        assert!(lease_verbs.contains(&verb), "lease Role lacks {verb}");
    }

    for (binding_kind, role_kind, role) in [
        ("ClusterRoleBinding", "ClusterRole", cluster_role),
        ("RoleBinding", "Role", lease_role),
        ("RoleBinding", "ClusterRole", secrets_role),
    ] {
        let binding = of_kind(&objects, binding_kind)
            .into_iter()
            .find(|b| b["roleRef"]["name"].as_str() == Some(name(role)))
            .with_context(|| format!("no {binding_kind} of {}", name(role)))?;
        assert_eq!(binding["roleRef"]["kind"].as_str(), Some(role_kind));
        assert_eq!(binding["roleRef"]["name"].as_str(), Some(name(role)));
        let subjects = binding["subjects"].as_sequence().context("no subjects")?;
        assert_eq!(subjects.len(), 1);
        assert_eq!(subjects[0]["kind"].as_str(), Some("ServiceAccount"));
        assert_eq!(subjects[0]["name"].as_str(), Some("landlord"));
        assert_eq!(subjects[0]["namespace"].as_str(), Some(NAMESPACE));
    }

    // The pooled tenant-runtime only reads ConfigMaps and Namespaces, as its own
    // ServiceAccount in the platform namespace.
    let runtime_role = only_of(&objects, "ClusterRole", "runtime")?;
    for rule in runtime_role["rules"].as_sequence().context("no rules")? {
        assert_eq!(strings(&rule["apiGroups"]), [""]);
        assert_eq!(strings(&rule["resources"]), ["configmaps", "namespaces"]);
        assert_eq!(strings(&rule["verbs"]), ["get", "list", "watch"]);
    }
    let runtime_binding = only_of(&objects, "ClusterRoleBinding", "runtime")?;
    assert_eq!(
        runtime_binding["roleRef"]["name"].as_str(),
        Some(name(runtime_role))
    );
    let subjects = runtime_binding["subjects"]
        .as_sequence()
        .context("no subjects")?;
    assert_eq!(subjects.len(), 1);
    assert_eq!(subjects[0]["name"].as_str(), Some("landlord-runtime"));
    assert_eq!(subjects[0]["namespace"].as_str(), Some("landlord-platform"));
    Ok(())
}

#[test]
fn metrics_service_and_disruption_budget_select_the_operator_pods() -> anyhow::Result<()> {
    let objects = render(&[])?;
    let deployment = only_of(&objects, "Deployment", "operator")?;
    let pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        .as_mapping()
        .context("pod template has no labels")?;
    let selects_pods = |selector: &Value| {
        selector
            .as_mapping()
            .is_some_and(|s| !s.is_empty() && s.iter().all(|(k, v)| pod_labels.get(k) == Some(v)))
    };

    let service = only_of(&objects, "Service", "operator")?;
    assert!(
        selects_pods(&service["spec"]["selector"]),
        "the metrics Service does not select the operator pods"
    );
    let ports = service["spec"]["ports"].as_sequence().context("no ports")?;
    assert!(
        ports
            .iter()
            .any(|p| p["name"].as_str() == Some("http-metrics")
                && p["port"].as_u64() == Some(8080)
                && p["targetPort"].as_str() == Some("http-metrics")),
        "no http-metrics port: {ports:?}"
    );

    let budget = only_of(&objects, "PodDisruptionBudget", "operator")?;
    assert_eq!(budget["spec"]["minAvailable"].as_u64(), Some(1));
    assert!(
        selects_pods(&budget["spec"]["selector"]["matchLabels"]),
        "the PodDisruptionBudget does not select the operator pods"
    );
    assert!(
        of_kind(&objects, "ServiceMonitor").is_empty(),
        "the ServiceMonitor must be off by default"
    );
    Ok(())
}

#[test]
fn api_runs_restricted_replicas_that_review_tokens_impersonate_and_watch_tenants()
-> anyhow::Result<()> {
    let objects = render(&[])?;
    let operator = only_of(&objects, "Deployment", "operator")?;
    let api = only_of(&objects, "Deployment", "api")?;
    assert_eq!(api["spec"]["replicas"].as_u64(), Some(2));
    let pod = &api["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(strings(&container["args"]).first(), Some(&"api"));
    // The same restricted security context as the operator's.
    let operator_pod = &operator["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"], operator_pod["securityContext"]);
    assert_eq!(
        container["securityContext"],
        operator_pod["containers"][0]["securityContext"]
    );
    for probe in ["livenessProbe", "readinessProbe"] {
        assert!(container[probe]["httpGet"].is_mapping(), "no {probe}");
    }
    // Neither Deployment selects the other's pods (nor does the operator's metrics Service).
    let selects = |selector: &Value, deployment: &Value| {
        let labels = &deployment["spec"]["template"]["metadata"]["labels"];
        selector
            .as_mapping()
            .is_some_and(|s| s.iter().all(|(k, v)| labels.get(k) == Some(v)))
    };
    assert!(!selects(&operator["spec"]["selector"]["matchLabels"], api));
    assert!(!selects(&api["spec"]["selector"]["matchLabels"], operator));
    let metrics = only_of(&objects, "Service", "operator")?;
    assert!(!selects(&metrics["spec"]["selector"], api));
    assert!(selects(
        &only_of(&objects, "Service", "api")?["spec"]["selector"],
        api
    ));

    // Its own ServiceAccount, bound to a ClusterRole that reviews tokens, impersonates and
    // reads what no tenant may (the Tenants' index, the catalog), and nothing else: every
    // other right is the caller's.
    let account = name(only_of(&objects, "ServiceAccount", "api")?).to_string();
    assert_eq!(pod["serviceAccountName"].as_str(), Some(account.as_str()));
    let binding = only_of(&objects, "ClusterRoleBinding", "api")?;
    assert_eq!(
        binding["subjects"][0]["name"].as_str(),
        Some(account.as_str())
    );
    let role = only_of(&objects, "ClusterRole", "api")?;
    assert_eq!(binding["roleRef"]["name"], role["metadata"]["name"]);
    let mut granted = Vec::new();
    for rule in role["rules"].as_sequence().context("no rules")? {
        for resource in strings(&rule["resources"]) {
            for verb in strings(&rule["verbs"]) {
                granted.push(format!("{verb} {resource}"));
            }
        }
    }
    granted.sort();
    assert_eq!(
        granted,
        [
            "create tokenreviews",
            "impersonate groups",
            "impersonate serviceaccounts",
            "impersonate uids",
            "impersonate users",
            // The catalog, in the platform namespace, for callers who may read the Tenant.
            "list services",
            // Which Tenants name a caller RBAC does not let list them (read as the caller).
            "list tenants",
            "watch tenants",
        ]
    );
    // Write limits: the default, and one flag per plan.
    let args = strings(&container["args"]);
    assert!(args.contains(&"--writes-per-minute=60"), "{args:?}");
    assert!(
        !args
            .iter()
            .any(|a| a.starts_with("--plan-writes-per-minute"))
    );
    let limited = render(&[
        "api.writesPerMinute=30",
        "api.planWritesPerMinute.enterprise=600",
        "api.planWritesPerMinute.pro=120",
    ])?;
    let limited = only_of(&limited, "Deployment", "api")?;
    let args = strings(&limited["spec"]["template"]["spec"]["containers"][0]["args"]);
    for flag in [
        "--writes-per-minute=30",
        "--plan-writes-per-minute=enterprise=600",
        "--plan-writes-per-minute=pro=120",
    ] {
        assert!(args.contains(&flag), "{flag} not in {args:?}");
    }
    // The API history's database: none by default, the outbox's, or one of its own.
    let history_secret = |values: &[&str]| -> anyhow::Result<Option<String>> {
        let objects = render(values)?;
        let api = only_of(&objects, "Deployment", "api")?;
        let env = &api["spec"]["template"]["spec"]["containers"][0]["env"];
        Ok(env.as_sequence().and_then(|env| {
            env.iter()
                .find(|e| e["name"].as_str() == Some("LANDLORD_API_DATABASE_URL"))
                .and_then(|e| e["valueFrom"]["secretKeyRef"]["name"].as_str())
                .map(str::to_string)
        }))
    };
    assert_eq!(history_secret(&[])?, None);
    assert_eq!(
        history_secret(&["webhooks.databaseSecret=outbox"])?.as_deref(),
        Some("outbox")
    );
    assert_eq!(
        history_secret(&[
            "webhooks.databaseSecret=outbox",
            "api.databaseSecret=history"
        ])?
        .as_deref(),
        Some("history")
    );
    assert!(args.contains(&"--history-retention-days=90"), "{args:?}");
    // Off by value.
    let without = render(&["api.enabled=false"])?;
    assert!(only_of(&without, "Deployment", "api").is_err());
    Ok(())
}

#[test]
fn admission_policies_are_the_ones_of_manifests_policies() -> anyhow::Result<()> {
    let objects = render(&[])?;
    let mut shipped = Vec::new();
    for entry in std::fs::read_dir(repo_root().join("manifests/policies"))? {
        shipped.extend(parse(&std::fs::read_to_string(entry?.path())?)?);
    }
    for kind in [
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    ] {
        let rendered = of_kind(&objects, kind);
        let originals = of_kind(&shipped, kind);
        assert_eq!(
            rendered.len(),
            originals.len(),
            "the chart renders another number of {kind}s than manifests/policies holds"
        );
        for original in originals {
            let rendered = rendered
                .iter()
                .find(|r| name(r) == name(original))
                .with_context(|| format!("the chart renders no {kind} {}", name(original)))?;
            assert_eq!(
                rendered["spec"],
                original["spec"],
                "the chart's {kind} {} differs from manifests/policies",
                name(original)
            );
        }
    }
    // The parameters: with the default values, what manifests/policies ships.
    let params = only_of(&objects, "ConfigMap", "admission-policy")?;
    let original = only(&shipped, "ConfigMap")?;
    assert_eq!(
        (
            name(params),
            &params["metadata"]["namespace"],
            &params["data"]
        ),
        (
            name(original),
            &original["metadata"]["namespace"],
            &original["data"]
        )
    );
    Ok(())
}

#[test]
fn domain_policy_parameters_follow_the_operator_flags() -> anyhow::Result<()> {
    let objects = render(&[
        "domains.clusterIssuer=public",
        "domains.certificateIssuers={staging,public}",
        "domains.preVerifiedZones={apps.example.com,example.net}",
        "domains.reservedHostnames={login,www,status.example.com}",
    ])?;
    let params = only_of(&objects, "ConfigMap", "admission-policy")?;
    assert_eq!(
        params["data"]["preVerifiedZones"],
        "apps.example.com,example.net"
    );
    assert_eq!(
        params["data"]["reservedHostnames"],
        "login,www,status.example.com"
    );
    assert_eq!(
        params["data"]["certificateIssuers"], "public,staging",
        "the default issuer is offered, once"
    );
    let binding = of_kind(&objects, "ValidatingAdmissionPolicyBinding")
        .into_iter()
        .find(|b| name(b) == "landlord-domain-names")
        .context("no landlord-domain-names binding")?;
    assert_eq!(
        binding["spec"]["paramRef"]["name"].as_str(),
        Some(name(params))
    );
    let deployment = only_of(&objects, "Deployment", "operator")?;
    let args = strings(&deployment["spec"]["template"]["spec"]["containers"][0]["args"]);
    for expected in [
        "--cluster-issuer=public",
        "--certificate-issuers=staging,public",
        "--pre-verified-zones=apps.example.com,example.net",
        "--reserved-hostnames=login,www,status.example.com",
    ] {
        assert!(args.contains(&expected), "args {args:?} lack {expected}");
    }
    Ok(())
}

#[test]
fn optional_objects_follow_their_values() -> anyhow::Result<()> {
    let objects = render(&[
        "admissionPolicy.enabled=false",
        "serviceMonitor.enabled=true",
        "replicaCount=1",
        "api.replicaCount=1",
    ])?;
    assert!(of_kind(&objects, "ValidatingAdmissionPolicy").is_empty());
    assert!(of_kind(&objects, "ValidatingAdmissionPolicyBinding").is_empty());
    assert!(
        of_kind(&objects, "PodDisruptionBudget").is_empty(),
        "a PDB with minAvailable 1 over one replica would block every node drain"
    );
    let monitor = only(&objects, "ServiceMonitor")?;
    let endpoints = monitor["spec"]["endpoints"]
        .as_sequence()
        .context("no endpoints")?;
    assert_eq!(endpoints[0]["port"].as_str(), Some("http-metrics"));
    Ok(())
}

#[test]
fn nats_key_material_reaches_the_operator_from_a_secret() -> anyhow::Result<()> {
    assert!(
        render(&[])?.iter().all(|o| !strings(
            &o["spec"]["template"]["spec"]["containers"][0]["args"]
        )
        .iter()
        .any(|a| a.starts_with("--nats"))),
        "no NATS flags without nats.url"
    );
    let objects = render(&[
        "nats.url=nats://nats.nats.svc:4222",
        "nats.namespace=nats",
        "nats.podSelector.app\\.kubernetes\\.io/name=nats",
        "nats.podSelector.tier=",
        "nats.cidrs={10.0.5.7/32,2001:db8::/64}",
        "nats.existingSecret=landlord-nats-keys",
    ])?;
    assert!(
        of_kind(&objects, "Secret").is_empty(),
        "existingSecret is used as is"
    );
    let pod = &only_of(&objects, "Deployment", "operator")?["spec"]["template"]["spec"];
    let args = strings(&pod["containers"][0]["args"]);
    for expected in [
        "--nats-url=nats://nats.nats.svc:4222",
        "--nats-signing-key-file=/etc/landlord-nats/signing-key",
        "--nats-system-creds-file=/etc/landlord-nats/system.creds",
        "--nats-namespace=nats",
        "--nats-pod-selector=app.kubernetes.io/name=nats,tier=",
        "--nats-cidrs=10.0.5.7/32,2001:db8::/64",
    ] {
        assert!(args.contains(&expected), "{expected} missing from {args:?}");
    }
    let volume = pod["volumes"]
        .as_sequence()
        .context("volumes")?
        .iter()
        .find(|v| v["name"].as_str() == Some("nats"))
        .context("no nats volume")?;
    assert_eq!(
        volume["secret"]["secretName"].as_str(),
        Some("landlord-nats-keys")
    );

    let objects = render(&[
        "nats.url=nats://nats:4222",
        "nats.signingKey=SOAAAA",
        "nats.systemCreds=creds",
    ])?;
    let secret = only(&objects, "Secret")?;
    assert_eq!(secret["stringData"]["signing-key"].as_str(), Some("SOAAAA"));
    let output = run_helm(&[
        "template",
        "landlord",
        CHART,
        "--set",
        "nats.url=nats://n:4222",
    ])?;
    assert!(
        !output.status.success()
            && String::from_utf8_lossy(&output.stderr).contains("nats.existingSecret"),
        "nats.url without key material must fail naming what is missing"
    );
    Ok(())
}

#[test]
fn image_pull_policy_always_drives_the_flag_and_its_admission_policy() -> anyhow::Result<()> {
    let pull_policy = |objects: &[Value]| {
        of_kind(objects, "ValidatingAdmissionPolicy")
            .iter()
            .filter(|p| name(p) == "landlord-image-pull-policy")
            .count()
    };
    let flag = |objects: &[Value]| -> anyhow::Result<Vec<String>> {
        let deployment = only_of(objects, "Deployment", "operator")?;
        Ok(
            strings(&deployment["spec"]["template"]["spec"]["containers"][0]["args"])
                .into_iter()
                .filter(|a| a.starts_with("--image-pull-policy-always"))
                .map(str::to_string)
                .collect(),
        )
    };
    let on = render(&[])?;
    assert_eq!(flag(&on)?, ["--image-pull-policy-always=true"]);
    assert_eq!(pull_policy(&on), 1);
    // Off: the operator leaves the pull policy alone, so the policy that would refuse its
    // pods must not be installed either; the other tenant walls stay.
    let off = render(&["operator.imagePullPolicyAlways=false"])?;
    assert_eq!(flag(&off)?, ["--image-pull-policy-always=false"]);
    assert_eq!(pull_policy(&off), 0);
    for kept in [
        "landlord-tenant-services",
        "landlord-tenant-network-policies",
    ] {
        assert!(
            of_kind(&off, "ValidatingAdmissionPolicy")
                .iter()
                .any(|p| name(p) == kept),
            "{kept} is rendered without imagePullPolicyAlways"
        );
    }
    Ok(())
}

#[test]
fn the_tenant_network_policy_rule_trusts_the_releases_account_and_platform_admins()
-> anyhow::Result<()> {
    let objects = render(&[
        "admissionPolicy.platformAdmins.users={ops@example.com}",
        "admissionPolicy.platformAdmins.groups={platform,system:masters}",
    ])?;
    let policy = of_kind(&objects, "ValidatingAdmissionPolicy")
        .into_iter()
        .find(|p| name(p) == "landlord-tenant-network-policies")
        .context("no landlord-tenant-network-policies")?;
    let trusted = policy["spec"]["matchConditions"][0]["expression"]
        .as_str()
        .context("no matchCondition")?;
    for expected in [
        "'system:serviceaccount:landlord-system:landlord'",
        "'ops@example.com'",
        "['platform', 'system:masters']",
    ] {
        assert!(trusted.contains(expected), "{expected} not in {trusted}");
    }
    Ok(())
}

#[test]
fn values_outside_the_schema_are_rejected() -> anyhow::Result<()> {
    for (set, names) in [
        ("replicaCount=-1", "replicaCount"),
        ("replicaCount=two", "replicaCount"),
        ("replicaCas=2", "replicaCas"),
        ("image.pullPolicy=Sometimes", "pullPolicy"),
        (
            "operator.platformNamespace=Not_A_Namespace",
            "platformNamespace",
        ),
        ("podAntiAffinity=strong", "podAntiAffinity"),
        ("service.port=70000", "port"),
        ("domains.reservedHostnames={Login}", "reservedHostnames"),
        ("domains.certificateIssuers={Mesh_CA}", "certificateIssuers"),
        (
            "operator.imagePullPolicyAlways=sometimes",
            "imagePullPolicyAlways",
        ),
        // A Gateway per Domain needs its class.
        ("domains.httpsListener=Gateway", "httpsGatewayClass"),
        ("nats.cidrs={10.0.5.7}", "cidrs"),
        ("nats.cidrs={999.1.1.1/8}", "cidrs"),
        ("nats.podSelector.app=-nats", "podSelector"),
        ("nats.podSelector.Bad_Prefix/app=nats", "Bad_Prefix/app"),
    ] {
        let output = run_helm(&["template", "landlord", CHART, "--set", set])?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !output.status.success(),
            "helm template accepted --set {set}"
        );
        assert!(
            stderr.contains("schema") && stderr.contains(names),
            "rejecting --set {set} should name {names} and the schema:\n{stderr}"
        );
    }
    Ok(())
}

#[test]
fn install_manifest_is_what_render_install_produces() -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(unique_name("landlord-chart-test"));
    std::fs::create_dir_all(&dir)?;
    let fresh = dir.join("landlord.yaml");
    let output = Command::new("bash")
        .arg(repo_root().join("e2e/scripts/render-install.sh"))
        .arg(&fresh)
        .env("HELM", helm())
        .output()?;
    ensure!(
        output.status.success(),
        "render-install.sh failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let fresh_text = std::fs::read_to_string(&fresh)?;
    std::fs::remove_dir_all(&dir)?;
    let committed = std::fs::read_to_string(repo_root().join(INSTALL_MANIFEST))
        .with_context(|| format!("reading {INSTALL_MANIFEST}"))?;
    assert!(
        committed == fresh_text,
        "{INSTALL_MANIFEST} is out of date with {CHART}; regenerate it with \
         `bash e2e/scripts/render-install.sh` and commit it"
    );

    // And it is a complete install: the namespace first, then the CRDs, then the chart.
    let objects = parse(&committed)?;
    assert_eq!(objects[0]["kind"].as_str(), Some("Namespace"));
    assert_eq!(name(&objects[0]), NAMESPACE);
    assert_eq!(
        objects[0]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"].as_str(),
        Some("restricted")
    );
    assert_eq!(
        of_kind(&objects, "CustomResourceDefinition").len(),
        landlord_crds::generate::crds().len()
    );
    only_of(&objects, "Deployment", "operator")?;
    Ok(())
}

/// One request to authorize: `resource` may name a subresource (`tenants/status`).
#[derive(Debug)]
struct Access<'a> {
    verb: &'a str,
    group: &'a str,
    resource: &'a str,
    namespace: Option<&'a str>,
    name: Option<&'a str>,
}

impl<'a> Access<'a> {
    fn new(
        verb: &'a str,
        group: &'a str,
        resource: &'a str,
        namespace: Option<&'a str>,
        name: Option<&'a str>,
    ) -> Self {
        Self {
            verb,
            group,
            resource,
            namespace,
            name,
        }
    }
}

/// Deletes what a test applied, even when the test fails half-way.
struct Applied<'a> {
    cluster: &'a landlord_e2e::Cluster,
    file: PathBuf,
}

impl Drop for Applied<'_> {
    fn drop(&mut self) {
        let file = self.file.to_string_lossy();
        let _ =
            self.cluster
                .kubectl(&["delete", "-f", &file, "--ignore-not-found", "--wait=false"]);
        let _ = std::fs::remove_file(&self.file);
    }
}

/// Held by the tests that install the chart into the cluster: each release's admission
/// policies admit only its own operator, so two installs at once would refuse each other's.
static CLUSTER_INSTALL: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn chart_installs_under_restricted_pod_security_with_least_privilege() -> anyhow::Result<()> {
    let _one_install = CLUSTER_INSTALL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let cluster = cluster();
    // The release name holds "landlord", so every name is the release name (unique per test
    // run): cluster-scoped objects never collide with another install.
    let release = unique_name("landlord-chart");
    let namespace = release.clone();
    let chart = render_with(&release, &namespace, &[])?;
    let manifest = format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {namespace}\n  labels:\n    \
         landlord.dev/e2e: \"true\"\n    pod-security.kubernetes.io/enforce: restricted\n    \
         pod-security.kubernetes.io/warn: restricted\n{chart}"
    );
    let file = std::env::temp_dir().join(format!("{release}.yaml"));
    std::fs::write(&file, manifest)?;
    let applied = Applied { cluster, file };
    let file = applied.file.to_string_lossy().into_owned();

    let output = cluster.kubectl(&[
        "apply",
        "--server-side",
        "--field-manager=landlord-e2e",
        "-f",
        &file,
    ])?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "kubectl apply failed:\n{stderr}");
    assert!(
        !stderr.contains("PodSecurity"),
        "the Deployment violates the restricted Pod Security Standard:\n{stderr}"
    );

    // kwok plays the nodes: the pods are admitted (PSS enforce), scheduled and marked Ready,
    // the operator's and the API's.
    for deployment in [release.clone(), format!("{release}-api")] {
        cluster.kubectl_ok(&[
            "-n",
            &namespace,
            "rollout",
            "status",
            &format!("deployment/{deployment}"),
            "--timeout=120s",
        ])?;
        let ready = cluster.kubectl_ok(&[
            "-n",
            &namespace,
            "get",
            "deployment",
            &deployment,
            "-o",
            "jsonpath={.status.readyReplicas}",
        ])?;
        assert_eq!(ready.trim(), "2", "deployment {deployment}");
    }

    // What the API server's RBAC actually grants the operator's ServiceAccount, asked with
    // SubjectAccessReviews (they need neither discovery nor Landlord's CRDs).
    let runtime = tokio::runtime::Runtime::new()?;
    let reviews: Api<SubjectAccessReview> = Api::all(runtime.block_on(cluster.client())?);
    let user = format!("system:serviceaccount:{namespace}:{release}");
    let groups = vec![
        "system:serviceaccounts".to_string(),
        format!("system:serviceaccounts:{namespace}"),
        "system:authenticated".to_string(),
    ];
    let can = |access: &Access| -> anyhow::Result<bool> {
        let (resource, subresource) = match access.resource.split_once('/') {
            Some((resource, sub)) => (resource, Some(sub.to_string())),
            None => (access.resource, None),
        };
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(user.clone()),
                groups: Some(groups.clone()),
                resource_attributes: Some(ResourceAttributes {
                    verb: Some(access.verb.to_string()),
                    group: Some(access.group.to_string()),
                    resource: Some(resource.to_string()),
                    subresource,
                    namespace: access.namespace.map(str::to_string),
                    name: access.name.map(str::to_string),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let answer = runtime.block_on(reviews.create(&PostParams::default(), &review))?;
        Ok(answer.status.is_some_and(|s| s.allowed))
    };
    let ns = Some(namespace.as_str());
    let other = Some("default");
    let secrets_role_name = format!("{release}-secrets");
    for allowed in [
        Access::new("create", "", "namespaces", None, None),
        Access::new("patch", "landlord.dev", "tenants", None, None),
        Access::new("update", "landlord.dev", "tenants/status", None, None),
        Access::new("update", "landlord.dev", "tenants/finalizers", None, None),
        Access::new("create", RBAC, "roles", other, None),
        Access::new(
            "escalate",
            RBAC,
            "roles",
            other,
            Some("landlord-tenant-admin"),
        ),
        Access::new("bind", RBAC, "roles", other, Some("landlord-tenant-viewer")),
        Access::new("create", "", "secrets", ns, None),
        Access::new("bind", RBAC, "clusterroles", None, Some(&secrets_role_name)),
        Access::new("create", "events.k8s.io", "events", other, None),
        Access::new(
            "patch",
            "gateway.networking.k8s.io",
            "httproutes",
            other,
            None,
        ),
        Access::new("create", LEASES, "leases", ns, None),
        Access::new("update", LEASES, "leases", ns, Some("landlord-leader")),
        // Each Tenant's read access (bounded by the operator-scope policy, not by RBAC).
        Access::new("create", RBAC, "clusterroles", None, None),
        Access::new("create", RBAC, "clusterrolebindings", None, None),
    ] {
        assert!(can(&allowed)?, "the operator may not {allowed:?}");
    }
    for denied in [
        Access::new("*", "*", "*", None, None),
        Access::new("*", "*", "*", other, None),
        Access::new("escalate", RBAC, "roles", other, None),
        Access::new("bind", RBAC, "roles", other, Some("admin")),
        Access::new("escalate", RBAC, "clusterroles", None, None),
        Access::new("bind", RBAC, "clusterroles", None, None),
        Access::new("delete", "landlord.dev", "tenants", None, None),
        Access::new("create", "", "pods", other, None),
        Access::new("get", "", "secrets", other, None),
        Access::new("list", "", "secrets", None, None),
        Access::new("create", "", "secrets", other, None),
        Access::new("bind", RBAC, "clusterroles", None, Some("admin")),
        Access::new("create", "", "pods/exec", other, None),
        Access::new("create", "", "nodes", None, None),
        Access::new("create", LEASES, "leases", other, None),
        Access::new("update", LEASES, "leases", ns, Some("someone-elses")),
    ] {
        assert!(!can(&denied)?, "the operator may {denied:?}");
    }
    drop(applied);
    Ok(())
}

/// The chart's operator as a real Deployment: two replicas whose containers run on the local
/// stack's real nodes (Landlord's image from this checkout, pushed to the stack's registry by
/// `e2e/scripts/landlord-images.sh`), one of them leading. A Tenant becomes Ready; the leader
/// pod is killed; the other replica takes over and the next Tenant becomes Ready too. Then
/// the API server is frozen for 60 s: no operator container restarts, and a Tenant created
/// once it answers again becomes Ready (the time it took is printed).
///
/// Installed as the release `landlord` in `landlord-system`, the identity the other tests'
/// operators have (one Landlord per cluster: the admission policies trust one operator, and
/// the platform namespace is one); only what those tests never make (the Deployment and what
/// serves it) is deleted afterwards, and the Lease, so that the next operator leads at once.
#[test]
fn the_charts_operator_runs_on_real_nodes_and_survives_the_loss_of_its_leader_and_an_api_server_outage()
-> anyhow::Result<()> {
    use k8s_openapi::api::{coordination::v1::Lease, core::v1::Pod};
    use kube::api::DeleteParams;
    use landlord_crds::tenant::Phase;
    use std::time::Duration;

    let _one_install = CLUSTER_INSTALL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let cluster = cluster();
    let (label, taint) = (
        cluster.var("LANDLORD_REAL_NODE_LABEL"),
        cluster.var("LANDLORD_REAL_NODE_TAINT"),
    );
    let (key, value) = label.split_once('=').context("a key=value label")?;
    let node_selector = format!("nodeSelector.{}={value}", key.replace('.', "\\."));
    let toleration_key = format!("tolerations[0].key={taint}");
    let chart = render_with(
        "landlord",
        NAMESPACE,
        &[
            &node_selector,
            &toleration_key,
            "tolerations[0].operator=Exists",
            "tolerations[0].effect=NoSchedule",
            "image.pullPolicy=Always",
            "api.enabled=false",
        ],
    )?;
    let manifest = format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {NAMESPACE}\n  labels:\n    \
         pod-security.kubernetes.io/enforce: restricted\n{chart}"
    );
    let release = unique_name("landlord-real");
    let file = std::env::temp_dir().join(format!("{release}.yaml"));
    std::fs::write(&file, manifest)?;
    // What to delete afterwards: the Deployment and the objects that serve only it.
    let serving: Vec<Value> = parse(&chart)?
        .into_iter()
        .filter(|o| {
            matches!(
                o["kind"].as_str(),
                Some("Deployment" | "PodDisruptionBudget" | "Service")
            )
        })
        .collect();
    let serving_file = std::env::temp_dir().join(format!("{release}-serving.yaml"));
    let mut text = String::new();
    for object in &serving {
        text.push_str("---\n");
        text.push_str(&serde_yaml::to_string(object)?);
    }
    std::fs::write(&serving_file, text)?;
    let applied = Applied {
        cluster,
        file: serving_file,
    };
    let path = file.to_string_lossy().into_owned();
    let output = cluster.kubectl(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "--field-manager=landlord-e2e",
        "-f",
        &path,
    ])?;
    std::fs::remove_file(&file)?;
    ensure!(
        output.status.success(),
        "kubectl apply: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let rolled_out = || {
        cluster.kubectl_ok(&[
            "-n",
            NAMESPACE,
            "rollout",
            "status",
            "deployment/landlord",
            "--timeout=180s",
        ])
    };
    rolled_out()?;

    let runtime = tokio::runtime::Runtime::new()?;
    let client = runtime.block_on(cluster.client())?;
    let pods = Api::<Pod>::namespaced(client.clone(), NAMESPACE);
    let leases = Api::<Lease>::namespaced(client.clone(), NAMESPACE);
    let running: Vec<Pod> = runtime
        .block_on(pods.list(
            &kube::api::ListParams::default().labels("app.kubernetes.io/component=operator"),
        ))?
        .items
        .into_iter()
        .filter(|p| {
            p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
                && p.spec
                    .as_ref()
                    .and_then(|s| s.node_name.as_deref())
                    .is_some_and(|n| n.starts_with("landlord-real-"))
        })
        .collect();
    assert_eq!(running.len(), 2, "two operator pods run on real nodes");
    let leader = || -> anyhow::Result<String> {
        runtime.block_on(async {
            landlord_e2e::wait::until("a leader", Duration::from_secs(60), || async {
                Ok(leases
                    .get_opt("landlord-leader")
                    .await?
                    .and_then(|l| l.spec?.holder_identity)
                    .filter(|h| !h.is_empty()))
            })
            .await
        })
    };
    let ready = |prefix: &str| -> anyhow::Result<String> {
        let name = unique_name(prefix);
        runtime.block_on(async {
            landlord_e2e::tenants::create(&client, &name, serde_json::json!({"tier": "shared"}))
                .await?;
            landlord_e2e::tenants::wait_phase(
                &client,
                &name,
                Phase::Ready,
                Duration::from_secs(120),
            )
            .await?;
            anyhow::Ok(())
        })?;
        Ok(name)
    };

    let first_leader = leader()?;
    let first = ready("chartreal")?;
    // The killed pod's replacement would campaign too, and may win the race once the lease
    // expires; with the real nodes cordoned it stays Pending, so only the replica that stood
    // by can take over (uncordoned again whatever happens).
    let nodes: Vec<String> = running
        .iter()
        .filter_map(|p| p.spec.as_ref()?.node_name.clone())
        .collect();
    let mut cordon = vec!["cordon"];
    cordon.extend(nodes.iter().map(String::as_str));
    cluster.kubectl_ok(&cordon)?;
    struct Uncordon<'a>(&'a landlord_e2e::Cluster, Vec<String>);
    impl Drop for Uncordon<'_> {
        fn drop(&mut self) {
            let mut args = vec!["uncordon"];
            args.extend(self.1.iter().map(String::as_str));
            self.0.kubectl(&args).ok();
        }
    }
    let uncordon = Uncordon(cluster, nodes);
    runtime.block_on(pods.delete(&first_leader, &DeleteParams::default().grace_period(0)))?;
    let next = runtime.block_on(async {
        landlord_e2e::wait::until("another leader", Duration::from_secs(90), || async {
            Ok(leases
                .get_opt("landlord-leader")
                .await?
                .and_then(|l| l.spec?.holder_identity)
                .filter(|h| !h.is_empty() && *h != first_leader))
        })
        .await
    })?;
    let second = ready("chartreal")?;
    drop(uncordon);
    // The other replica took over (the replacement of the killed pod could not start).
    assert!(
        running
            .iter()
            .any(|p| p.metadata.name.as_deref() == Some(next.as_str())),
        "{next} leads, not the replica that stood by"
    );

    // The API server stops answering for 60 s (its process frozen: connections hang, as in
    // a partition or an overloaded server, the harsher case than refused connections).
    // The operator's pods ride it out without a restart (a restart would also mean the
    // kubelet's back-off), and a Tenant created once it answers again becomes Ready.
    let restarts = || -> anyhow::Result<Vec<(String, i32)>> {
        let list = runtime.block_on(pods.list(
            &kube::api::ListParams::default().labels("app.kubernetes.io/component=operator"),
        ))?;
        let mut counts: Vec<(String, i32)> = list
            .items
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .map(|p| {
                let count = p
                    .status
                    .as_ref()
                    .and_then(|s| s.container_statuses.as_ref())
                    .map(|c| c.iter().map(|c| c.restart_count).sum())
                    .unwrap_or(0);
                (p.metadata.name.clone().unwrap_or_default(), count)
            })
            .collect();
        counts.sort();
        Ok(counts)
    };
    rolled_out()?;
    let before = restarts()?;
    let pid = std::fs::read_to_string(
        std::path::Path::new(cluster.var("LANDLORD_DEV_DIR")).join("pids/kube-apiserver.pid"),
    )?
    .trim()
    .to_string();
    let signal = |name: &str| -> anyhow::Result<()> {
        let status = std::process::Command::new("kill")
            .args([&format!("-{name}"), pid.as_str()])
            .status()?;
        ensure!(status.success(), "kill -{name} {pid}");
        Ok(())
    };
    struct Thaw<'a>(&'a dyn Fn(&str) -> anyhow::Result<()>);
    impl Drop for Thaw<'_> {
        fn drop(&mut self) {
            (self.0)("CONT").ok();
        }
    }
    // Thawed by the guard below, and by a detached watchdog should this process be killed
    // meanwhile (a frozen API server would hang every later test).
    std::process::Command::new("setsid")
        .args(["sh", "-c", &format!("sleep 90; kill -CONT {pid}")])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    signal("STOP")?;
    let thaw = Thaw(&signal);
    std::thread::sleep(Duration::from_secs(60));
    drop(thaw);
    let back = std::time::Instant::now();
    let after_outage = ready("chartoutage")?;
    eprintln!(
        "[chart] a Tenant created after the 60 s API server outage was Ready {:.1} s after the API server answered again",
        back.elapsed().as_secs_f64()
    );
    let after = restarts()?;
    assert_eq!(
        before, after,
        "the operator's pods restarted during the API server outage"
    );

    runtime.block_on(landlord_e2e::tenants::delete(
        &client,
        &[&first, &second, &after_outage],
        Duration::from_secs(120),
    ))?;
    drop(applied);
    runtime
        .block_on(leases.delete("landlord-leader", &DeleteParams::default()))
        .ok();
    Ok(())
}
