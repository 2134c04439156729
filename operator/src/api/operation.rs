//! Long-running work as operations derived from the Tenant itself, not stored.
//!
//! A write that changes a Tenant's spec makes a new `metadata.generation`; the operation
//! "reach generation N" is done when the operator has observed N
//! (`status.observedGeneration`) and the Tenant is Ready (or Suspended, when that is what the
//! spec asks), failed when a condition needs a person, superseded when a newer generation
//! exists. A deletion is done when the Tenant (that uid) is gone. So an operation needs no
//! storage, survives restarts of the API, and also describes changes made with `kubectl` or
//! by a GitOps tool.
//!
//! Ids are `op_` + base32 of `<kind>:<tenant>:<uid>:<generation>` (lowercase, no padding):
//! opaque to callers, stable, and a Tenant made again under the same name is another uid.

use data_encoding::BASE32_NOPAD;
use landlord_crds::{
    Tenant,
    conditions::{Reason, Severity},
    tenant::Phase,
};
use serde::Serialize;

/// What an operation waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Kind {
    /// The Tenant reaches a generation of its spec (a create, a patch, suspend, resume).
    Apply,
    /// The Tenant is gone.
    Delete,
}

/// An operation's id, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Id {
    pub kind: Kind,
    pub tenant: String,
    pub uid: String,
    pub generation: i64,
}

impl Id {
    pub fn encode(&self) -> String {
        let kind = match self.kind {
            Kind::Apply => "apply",
            Kind::Delete => "delete",
        };
        let raw = format!("{kind}:{}:{}:{}", self.tenant, self.uid, self.generation);
        format!("op_{}", BASE32_NOPAD.encode(raw.as_bytes()).to_lowercase())
    }

    /// `None` for anything [`Id::encode`] did not make.
    pub fn decode(id: &str) -> Option<Id> {
        let encoded = id.strip_prefix("op_")?.to_uppercase();
        let raw = String::from_utf8(BASE32_NOPAD.decode(encoded.as_bytes()).ok()?).ok()?;
        let mut parts = raw.splitn(4, ':');
        let kind = match parts.next()? {
            "apply" => Kind::Apply,
            "delete" => Kind::Delete,
            _ => return None,
        };
        let tenant = parts.next()?.to_string();
        let uid = parts.next()?.to_string();
        let generation = parts.next()?.parse().ok()?;
        (!tenant.is_empty() && !uid.is_empty()).then_some(Id {
            kind,
            tenant,
            uid,
            generation,
        })
    }

    /// The operation a write just made on `tenant` (as the API server returned it).
    pub fn of(kind: Kind, tenant: &Tenant) -> Option<Id> {
        Some(Id {
            kind,
            tenant: tenant.metadata.name.clone()?,
            uid: tenant.metadata.uid.clone()?,
            generation: tenant.metadata.generation.unwrap_or(0),
        })
    }
}

/// Where an operation stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum State {
    Running,
    Succeeded,
    Failed,
    /// A newer change of the spec (or a new Tenant under the same name) replaced it.
    Superseded,
}

/// One part's condition, as a step of the operation.
#[derive(Clone, Debug, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    pub condition: String,
    pub status: String,
    pub reason: String,
    pub message: String,
}

/// An operation as the API answers it.
#[derive(Clone, Debug, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Operation {
    pub id: String,
    pub kind: Kind,
    /// The Tenant's path in this API, e.g. `/v1/tenants/acme`.
    pub target: String,
    pub generation: i64,
    pub state: State,
    pub done: bool,
    /// The operator retries a transient failure (the reason is in `steps`).
    pub retrying: bool,
    /// The Tenant's conditions, the roll-up `Ready` first.
    pub steps: Vec<Step>,
    /// Why it failed: the blocking condition's reason and message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Step>,
}

/// The operation `id` given the Tenant as it is now (`None`: there is no Tenant of that
/// name).
pub fn derive(id: &Id, tenant: Option<&Tenant>) -> Operation {
    let same = tenant.filter(|t| t.metadata.uid.as_deref() == Some(id.uid.as_str()));
    let steps: Vec<Step> = same
        .and_then(|t| t.status.as_ref())
        .map(|status| {
            let mut steps: Vec<Step> = status
                .conditions
                .iter()
                .map(|c| Step {
                    condition: c.type_.clone(),
                    status: c.status.clone(),
                    reason: c.reason.clone(),
                    message: c.message.clone(),
                })
                .collect();
            steps.sort_by_key(|s| s.condition != "Ready");
            steps
        })
        .unwrap_or_default();
    let mut error = None;
    let mut retrying = false;
    let state = match (id.kind, same) {
        (Kind::Delete, None) => State::Succeeded,
        (Kind::Delete, Some(_)) => State::Running,
        (Kind::Apply, None) => State::Superseded,
        (Kind::Apply, Some(tenant)) => {
            let generation = tenant.metadata.generation.unwrap_or(0);
            let status = tenant.status.as_ref();
            let observed = status.and_then(|s| s.observed_generation).unwrap_or(0);
            let phase = status.and_then(|s| s.phase);
            if tenant.metadata.deletion_timestamp.is_some() || generation > id.generation {
                State::Superseded
            } else if observed < id.generation {
                State::Running
            } else {
                match phase {
                    Some(Phase::Ready) => State::Succeeded,
                    Some(Phase::Suspended) if tenant.spec.suspended => State::Succeeded,
                    Some(Phase::Failed) => {
                        error = blocking(&steps);
                        State::Failed
                    }
                    _ => {
                        retrying = steps.iter().any(|s| {
                            s.condition != "Ready"
                                && s.status == "False"
                                && Reason::parse(&s.reason)
                                    .is_some_and(|r| r.severity() == Severity::Transient)
                        });
                        State::Running
                    }
                }
            }
        }
    };
    Operation {
        id: id.encode(),
        kind: id.kind,
        target: format!("/v1/tenants/{}", id.tenant),
        generation: id.generation,
        state,
        done: state != State::Running,
        retrying,
        steps,
        error,
    }
}

/// The first part condition that is not True and needs a person; else the roll-up.
fn blocking(steps: &[Step]) -> Option<Step> {
    steps
        .iter()
        .filter(|s| s.condition != "Ready" && s.status != "True")
        .find(|s| {
            Reason::parse(&s.reason).is_some_and(|r| {
                matches!(
                    r.severity(),
                    Severity::NeedsPerson | Severity::NeedsPersonElsewhere
                )
            })
        })
        .or_else(|| steps.iter().find(|s| s.condition == "Ready"))
        .cloned()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tenant(generation: i64, status: serde_json::Value) -> Tenant {
        serde_json::from_value(json!({
            "apiVersion": "landlord.dev/v1alpha1", "kind": "Tenant",
            "metadata": {"name": "acme", "uid": "u-1", "generation": generation},
            "spec": {"tier": "shared"},
            "status": status,
        }))
        .unwrap()
    }

    fn id(kind: Kind, generation: i64) -> Id {
        Id {
            kind,
            tenant: "acme".into(),
            uid: "u-1".into(),
            generation,
        }
    }

    #[test]
    fn ids_round_trip_and_refuse_anything_else() {
        let op = id(Kind::Apply, 7);
        let encoded = op.encode();
        assert!(encoded.starts_with("op_"), "{encoded}");
        assert_eq!(Id::decode(&encoded), Some(op));
        for bad in ["", "op_", "op_!!", "xyz", "op_mfzxi"] {
            assert_eq!(Id::decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn an_apply_runs_until_the_generation_is_observed_and_ready() {
        let op = id(Kind::Apply, 2);
        let waiting = tenant(2, json!({"observedGeneration": 1, "phase": "Ready"}));
        assert_eq!(derive(&op, Some(&waiting)).state, State::Running);
        let ready = tenant(
            2,
            json!({"observedGeneration": 2, "phase": "Ready",
                   "conditions": [{"type": "NamespaceReady", "status": "True", "reason": "Provisioned", "message": "", "lastTransitionTime": "2026-12-01T00:00:00Z"},
                                  {"type": "Ready", "status": "True", "reason": "Ready", "message": "", "lastTransitionTime": "2026-12-01T00:00:00Z"}]}),
        );
        let done = derive(&op, Some(&ready));
        assert_eq!((done.state, done.done), (State::Succeeded, true));
        assert_eq!(done.steps[0].condition, "Ready", "the roll-up first");
        let newer = tenant(3, json!({"observedGeneration": 3, "phase": "Ready"}));
        assert_eq!(derive(&op, Some(&newer)).state, State::Superseded);
        assert_eq!(derive(&op, None).state, State::Superseded);
    }

    #[test]
    fn a_failure_needing_a_person_fails_the_operation_and_names_it() {
        let op = id(Kind::Apply, 1);
        let failed = tenant(
            1,
            json!({"observedGeneration": 1, "phase": "Failed",
                   "conditions": [{"type": "DatabaseReady", "status": "False", "reason": "QuotaExceeded", "message": "Secret landlord-database refused", "lastTransitionTime": "2026-12-01T00:00:00Z"},
                                  {"type": "Ready", "status": "False", "reason": "QuotaExceeded", "message": "", "lastTransitionTime": "2026-12-01T00:00:00Z"}]}),
        );
        let op = derive(&op, Some(&failed));
        assert_eq!(op.state, State::Failed);
        assert_eq!(op.error.unwrap().condition, "DatabaseReady");
        let retrying = tenant(
            1,
            json!({"observedGeneration": 1, "phase": "Degraded",
                   "conditions": [{"type": "TopicsReady", "status": "False", "reason": "NatsUnreachable", "message": "", "lastTransitionTime": "2026-12-01T00:00:00Z"}]}),
        );
        let op = derive(&id(Kind::Apply, 1), Some(&retrying));
        assert_eq!((op.state, op.retrying), (State::Running, true));
    }

    #[test]
    fn a_deletion_is_done_when_that_tenant_is_gone() {
        let op = id(Kind::Delete, 1);
        assert_eq!(
            derive(&op, Some(&tenant(1, json!({})))).state,
            State::Running
        );
        assert_eq!(derive(&op, None).state, State::Succeeded);
        let mut again = tenant(1, json!({}));
        again.metadata.uid = Some("u-2".into());
        assert_eq!(derive(&op, Some(&again)).state, State::Succeeded);
    }
}
