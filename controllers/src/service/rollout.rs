//! Where a Deployment's rollout stands, read from its status the way `kubectl rollout
//! status` reads it: pure, so the Tenant's `ServicesReady` and the Service's status agree.

use k8s_openapi::api::apps::v1::Deployment;
use kube::ResourceExt;
use landlord_crds::conditions::Reason;

/// The state of one Deployment's rollout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rollout {
    /// Every desired replica runs the current template and is available.
    Complete,
    /// The controller has not caught up, or new pods are still coming up.
    InProgress(String),
    /// Progressing=False with ProgressDeadlineExceeded: the rollout gave up waiting.
    Stuck(String),
    /// The rollout finished, but fewer replicas are available than desired.
    Unavailable(String),
}

impl Rollout {
    pub fn is_complete(&self) -> bool {
        *self == Rollout::Complete
    }

    /// The CamelCase reason a condition gives for this state.
    pub fn reason(&self) -> Reason {
        match self {
            Rollout::Complete => Reason::Ready,
            Rollout::InProgress(_) => Reason::RolloutInProgress,
            Rollout::Stuck(_) => Reason::RolloutStuck,
            Rollout::Unavailable(_) => Reason::ReplicasUnavailable,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            Rollout::Complete => "rolled out",
            Rollout::InProgress(m) | Rollout::Stuck(m) | Rollout::Unavailable(m) => m,
        }
    }
}

/// Reads a Deployment's rollout from its status. `None` (not created yet) is in progress.
pub fn rollout(deployment: Option<&Deployment>) -> Rollout {
    let Some(d) = deployment else {
        return Rollout::InProgress("Deployment not created yet".into());
    };
    let name = d.name_any();
    let status = d.status.clone().unwrap_or_default();
    if status.observed_generation.unwrap_or(0) < d.metadata.generation.unwrap_or(0) {
        return Rollout::InProgress(format!(
            "Deployment {name}: waiting for the deployment controller to observe the new spec"
        ));
    }
    let conditions = status.conditions.unwrap_or_default();
    if let Some(c) = conditions.iter().find(|c| c.type_ == "Progressing")
        && c.status == "False"
        && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
    {
        return Rollout::Stuck(format!(
            "Deployment {name} exceeded its progress deadline: {}",
            c.message.as_deref().unwrap_or("no progress")
        ));
    }
    let desired = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let updated = status.updated_replicas.unwrap_or(0);
    let total = status.replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    if updated < desired {
        return Rollout::InProgress(format!(
            "Deployment {name}: {updated} of {desired} replicas updated"
        ));
    }
    if total > updated {
        return Rollout::InProgress(format!(
            "Deployment {name}: {} old replicas pending termination",
            total - updated
        ));
    }
    if available < updated {
        let rolling = conditions
            .iter()
            .find(|c| c.type_ == "Progressing")
            .is_some_and(|c| c.reason.as_deref() != Some("NewReplicaSetAvailable"));
        let message =
            format!("Deployment {name}: {available} of {updated} updated replicas available");
        return if rolling {
            Rollout::InProgress(message)
        } else {
            Rollout::Unavailable(message)
        };
    }
    Rollout::Complete
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(generation: i64, replicas: i32, status: serde_json::Value) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "api", "namespace": "tenant-a", "generation": generation},
            "spec": {"replicas": replicas, "selector": {}, "template": {}},
            "status": status,
        }))
        .expect("fixture")
    }

    fn progressing(reason: &str, status: &str) -> serde_json::Value {
        json!([{"type": "Progressing", "status": status, "reason": reason, "message": "ReplicaSet \"api-1\" has timed out progressing."}])
    }

    #[test]
    fn a_missing_or_unobserved_deployment_is_in_progress() {
        assert!(matches!(rollout(None), Rollout::InProgress(_)));
        let d = deployment(
            2,
            1,
            json!({"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 1}),
        );
        assert!(matches!(rollout(Some(&d)), Rollout::InProgress(m) if m.contains("observe")));
    }

    #[test]
    fn a_fully_updated_and_available_deployment_is_complete() {
        let d = deployment(
            3,
            2,
            json!({"observedGeneration": 3, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2, "conditions": progressing("NewReplicaSetAvailable", "True")}),
        );
        assert_eq!(rollout(Some(&d)), Rollout::Complete);
        let zero = deployment(1, 0, json!({"observedGeneration": 1}));
        assert_eq!(
            rollout(Some(&zero)),
            Rollout::Complete,
            "scaled to zero is rolled out"
        );
    }

    #[test]
    fn new_pods_coming_up_or_old_ones_going_are_in_progress() {
        let d = deployment(
            1,
            2,
            json!({"observedGeneration": 1, "replicas": 2, "updatedReplicas": 1, "availableReplicas": 2}),
        );
        assert!(
            matches!(rollout(Some(&d)), Rollout::InProgress(m) if m.contains("1 of 2 replicas updated"))
        );
        let d = deployment(
            1,
            2,
            json!({"observedGeneration": 1, "replicas": 3, "updatedReplicas": 2, "availableReplicas": 2}),
        );
        assert!(matches!(rollout(Some(&d)), Rollout::InProgress(m) if m.contains("old replicas")));
        let d = deployment(
            1,
            2,
            json!({"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 1, "conditions": progressing("ReplicaSetUpdated", "True")}),
        );
        assert!(matches!(rollout(Some(&d)), Rollout::InProgress(_)));
    }

    #[test]
    fn an_exceeded_progress_deadline_is_stuck() {
        let d = deployment(
            1,
            1,
            json!({"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "conditions": progressing("ProgressDeadlineExceeded", "False")}),
        );
        let r = rollout(Some(&d));
        assert_eq!(r.reason(), "RolloutStuck");
        assert!(
            r.message().contains("api") && r.message().contains("timed out"),
            "{r:?}"
        );
    }

    #[test]
    fn a_rolled_out_deployment_that_loses_pods_is_unavailable() {
        let d = deployment(
            1,
            2,
            json!({"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 1, "conditions": progressing("NewReplicaSetAvailable", "True")}),
        );
        assert_eq!(rollout(Some(&d)).reason(), "ReplicasUnavailable");
    }
}
