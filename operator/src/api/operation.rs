//! Long-running work as operations derived from the Tenant itself, not stored.
//!
//! A write that changes a Tenant's spec makes a new `metadata.generation`; the operation
//! "reach generation N" is done when the operator has observed N
//! (`status.observedGeneration`) and the Tenant is Ready (or Suspended, when that is what the
//! spec asks), failed when a condition needs a person, superseded when a newer generation
//! exists. A deletion is done when the Tenant (that uid) is gone. A password rotation (a new
//! value of the Tenant's rotation annotation) is done when `status.database.passwordRotation`
//! shows that value, superseded when the annotation asks another. So an operation needs no
//! storage, survives restarts of the API, and also describes changes made with `kubectl` or
//! by a GitOps tool.
//!
//! Ids are `op_` + base32 of `<kind>:<tenant>:<uid>:<generation>[:<rotation>]` (lowercase,
//! no padding; a rotation's generation is 0): opaque to callers, stable, and a Tenant made
//! again under the same name is another uid.

use data_encoding::BASE32_NOPAD;
use kube::ResourceExt;
use landlord_controllers::database::desired::ROTATE_PASSWORD;
use landlord_crds::{
    Tenant,
    conditions::{Reason, Severity, tenant as condition},
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
    /// The Tenant's database has a new password (the value of its rotation annotation).
    RotatePassword,
}

/// An operation's id, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Id {
    pub kind: Kind,
    pub tenant: String,
    pub uid: String,
    pub generation: i64,
    /// The rotation annotation's value a [`Kind::RotatePassword`] waits for.
    pub rotation: Option<String>,
}

impl Id {
    pub fn encode(&self) -> String {
        let kind = match self.kind {
            Kind::Apply => "apply",
            Kind::Delete => "delete",
            Kind::RotatePassword => "rotate",
        };
        let mut raw = format!("{kind}:{}:{}:{}", self.tenant, self.uid, self.generation);
        if let Some(rotation) = &self.rotation {
            raw.push(':');
            raw.push_str(rotation);
        }
        format!("op_{}", BASE32_NOPAD.encode(raw.as_bytes()).to_lowercase())
    }

    /// `None` for anything [`Id::encode`] did not make.
    pub fn decode(id: &str) -> Option<Id> {
        let encoded = id.strip_prefix("op_")?.to_uppercase();
        let raw = String::from_utf8(BASE32_NOPAD.decode(encoded.as_bytes()).ok()?).ok()?;
        let mut parts = raw.splitn(5, ':');
        let kind = match parts.next()? {
            "apply" => Kind::Apply,
            "delete" => Kind::Delete,
            "rotate" => Kind::RotatePassword,
            _ => return None,
        };
        let tenant = parts.next()?.to_string();
        let uid = parts.next()?.to_string();
        let generation = parts.next()?.parse().ok()?;
        // Only a rotation names its value (which may itself hold colons).
        let rotation = parts.next().map(str::to_string);
        let well_formed = !tenant.is_empty()
            && !uid.is_empty()
            && (kind == Kind::RotatePassword) == rotation.as_deref().is_some_and(|r| !r.is_empty());
        well_formed.then_some(Id {
            kind,
            tenant,
            uid,
            generation,
            rotation,
        })
    }

    /// The operation a write just made on `tenant` (as the API server returned it): for
    /// [`Kind::RotatePassword`], the rotation its annotation now asks.
    pub fn of(kind: Kind, tenant: &Tenant) -> Option<Id> {
        let rotation = match kind {
            Kind::RotatePassword => Some(asked_rotation(tenant)?.to_string()),
            Kind::Apply | Kind::Delete => None,
        };
        // A rotation does not depend on the spec: generation 0, so that a retry after a
        // change of the spec names the same operation.
        let generation = match kind {
            Kind::RotatePassword => 0,
            Kind::Apply | Kind::Delete => tenant.metadata.generation.unwrap_or(0),
        };
        Some(Id {
            kind,
            tenant: tenant.metadata.name.clone()?,
            uid: tenant.metadata.uid.clone()?,
            generation,
            rotation,
        })
    }
}

/// The value of the Tenant's rotation annotation, when set.
fn asked_rotation(tenant: &Tenant) -> Option<&str> {
    tenant
        .annotations()
        .get(ROTATE_PASSWORD)
        .map(String::as_str)
        .filter(|r| !r.is_empty())
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
            steps.sort_by_key(|s| s.condition != condition::READY);
            steps
        })
        .unwrap_or_default();
    let mut error = None;
    let mut retrying = false;
    let state = match (id.kind, same) {
        (Kind::Delete, None) => State::Succeeded,
        (Kind::Delete, Some(_)) => State::Running,
        (Kind::Apply | Kind::RotatePassword, None) => State::Superseded,
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
                        retrying = steps
                            .iter()
                            .any(|s| s.condition != condition::READY && transient(s));
                        State::Running
                    }
                }
            }
        }
        (Kind::RotatePassword, Some(tenant)) => {
            let applied = tenant
                .status
                .as_ref()
                .and_then(|s| s.database.as_ref())
                .and_then(|d| d.password_rotation.as_deref());
            let database = steps
                .iter()
                .find(|s| s.condition == condition::DATABASE_READY && s.status == "False");
            if applied.is_some() && applied == id.rotation.as_deref() {
                State::Succeeded
            } else if tenant.metadata.deletion_timestamp.is_some()
                || tenant.spec.database.is_none()
                || asked_rotation(tenant) != id.rotation.as_deref()
            {
                State::Superseded
            } else {
                // Never Failed from a condition: one the reconcile that applies the
                // rotation has not yet replaced may be older than the request (a dedicated
                // server rotates even while a storage change is refused). The steps say
                // what the database waits for.
                retrying = database.is_some_and(transient);
                State::Running
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
        .filter(|s| s.condition != condition::READY && s.status != "True")
        .find(|s| needs_person(s))
        .or_else(|| steps.iter().find(|s| s.condition == condition::READY))
        .cloned()
}

/// A False condition the operator retries by itself.
fn transient(step: &Step) -> bool {
    step.status == "False"
        && Reason::parse(&step.reason).is_some_and(|r| r.severity() == Severity::Transient)
}

/// A condition whose reason waits for a person (here or elsewhere).
fn needs_person(step: &Step) -> bool {
    Reason::parse(&step.reason).is_some_and(|r| {
        matches!(
            r.severity(),
            Severity::NeedsPerson | Severity::NeedsPersonElsewhere
        )
    })
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
            rotation: (kind == Kind::RotatePassword).then(|| "r:1".into()),
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
        let rotation = id(Kind::RotatePassword, 3);
        assert_eq!(
            Id::decode(&rotation.encode()),
            Some(rotation),
            "colons in the value"
        );
        // A rotation without its value, and an apply with one, are not ids.
        let encode =
            |raw: &str| format!("op_{}", BASE32_NOPAD.encode(raw.as_bytes()).to_lowercase());
        assert_eq!(Id::decode(&encode("rotate:acme:u-1:3")), None);
        assert_eq!(Id::decode(&encode("rotate:acme:u-1:3:")), None);
        assert_eq!(Id::decode(&encode("apply:acme:u-1:3:x")), None);
    }

    #[test]
    fn a_rotation_is_done_when_the_status_shows_its_value() {
        let op = id(Kind::RotatePassword, 1);
        let with = |asked: &str, status: serde_json::Value| {
            let mut t = tenant(1, status);
            t.metadata.annotations =
                Some([(ROTATE_PASSWORD.to_string(), asked.to_string())].into());
            t.spec.database = Some(serde_json::from_value(json!({})).unwrap());
            t
        };
        let asked = with("r:1", json!({"database": {"passwordRotation": "r:0"}}));
        assert_eq!(derive(&op, Some(&asked)).state, State::Running);
        let done = with("r:1", json!({"database": {"passwordRotation": "r:1"}}));
        assert_eq!(derive(&op, Some(&done)).state, State::Succeeded);
        // Another rotation asked since: this one will never be shown.
        let other = with("r:2", json!({"database": {"passwordRotation": "r:0"}}));
        assert_eq!(derive(&op, Some(&other)).state, State::Superseded);
        assert_eq!(derive(&op, None).state, State::Superseded);
        // The database taken away: nothing will ever show it.
        let mut without = with("r:1", json!({}));
        without.spec.database = None;
        assert_eq!(derive(&op, Some(&without)).state, State::Superseded);
        let condition = |reason: &str| json!({"conditions": [{"type": "DatabaseReady", "status": "False", "reason": reason, "message": "role acme", "lastTransitionTime": "2026-12-01T00:00:00Z"}]});
        let waiting = derive(&op, Some(&with("r:1", condition("NameConflict"))));
        assert_eq!((waiting.state, waiting.retrying), (State::Running, false));
        assert_eq!(waiting.steps[0].reason, "NameConflict");
        let retrying = derive(&op, Some(&with("r:1", condition("ServerUnreachable"))));
        assert_eq!((retrying.state, retrying.retrying), (State::Running, true));
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
