//! What a dedicated server keeps across changes of its Tenant: the PostgreSQL major version
//! its data directory was initialised with, and a volume that only grows. Pure: the caller
//! reads the live StatefulSet, volume claim and StorageClass and carries out the decision.
//!
//! The CRD already refuses, at apply time, a `spec.database.version` that changes once set
//! and a `spec.database.storage` that shrinks; these functions cover what a transition rule
//! cannot see (a field set for the first time on a running server, the operator's defaults
//! changing) and the state of the volume itself.

use k8s_openapi::{
    api::{apps::v1::StatefulSet, core::v1::PersistentVolumeClaim, storage::v1::StorageClass},
    apimachinery::pkg::api::resource::Quantity,
};
use landlord_crds::conditions::Reason;

use super::{desired::names, failure::Failure};
use crate::quantity;

/// The PVC of the dedicated server's one replica: `data-landlord-postgres-0`.
pub fn claim_name() -> String {
    format!("{}-{}-0", names::VOLUME, names::SERVER)
}

/// The major version the live server runs: the tag of its `postgres` container's image
/// (`registry.example/postgres:16` runs 16). `None` when the StatefulSet names no such image.
pub fn running_version(live: &StatefulSet) -> Option<String> {
    let pod = live.spec.as_ref()?.template.spec.as_ref()?;
    let image = pod
        .containers
        .iter()
        .find(|c| c.name == "postgres")?
        .image
        .as_deref()?;
    let (_, tag) = image.rsplit_once(':')?;
    (!tag.is_empty() && !tag.contains('/')).then(|| tag.to_string())
}

/// The extensions the server's first-start script created (its `LANDLORD_EXTENSIONS`, kept
/// from the live StatefulSet so that a later change of `spec.database.extensions` does not
/// restart the server; those are created over SQL instead). `None` when the StatefulSet
/// names no such variable.
pub fn first_start_extensions(live: &StatefulSet) -> Option<String> {
    live.spec
        .as_ref()?
        .template
        .spec
        .as_ref()?
        .containers
        .iter()
        .find(|c| c.name == "postgres")?
        .env
        .as_ref()?
        .iter()
        .find(|e| e.name == "LANDLORD_EXTENSIONS")?
        .value
        .clone()
}

/// Annotation on the server Secret: the extensions (space separated, sorted) the tenant's
/// database has: those the first start's script made, then those ensured over SQL. A
/// running server whose Secret lacks it (made by an earlier operator, which recorded
/// nothing) is checked once.
pub const ENSURED_EXTENSIONS: &str = "landlord.dev/extensions";

/// Extensions of `wanted` missing from `ensured` (the [`ENSURED_EXTENSIONS`] annotation,
/// absent for a server never checked): these need a session with the running server.
pub fn extensions_to_ensure(wanted: &[String], ensured: Option<&str>) -> Vec<String> {
    let ensured: Vec<&str> = ensured.unwrap_or_default().split_whitespace().collect();
    wanted
        .iter()
        .filter(|e| !ensured.contains(&e.as_str()))
        .cloned()
        .collect()
}

/// The [`ENSURED_EXTENSIONS`] value for `extensions`.
pub fn ensured_value(extensions: &[String]) -> String {
    let mut sorted: Vec<&str> = extensions.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    sorted.dedup();
    sorted.join(" ")
}

/// `StorageClassChangeRefused` when `spec.database.storageClassName` (`asked`) names another
/// class than the running server's volume claim template (`live`): set for the first time on
/// a server made without it, say. `None` when they agree or the spec names none.
pub fn storage_class_refusal(asked: Option<&str>, live: &StatefulSet) -> Option<Failure> {
    let asked = asked?;
    let running = live
        .spec
        .as_ref()?
        .volume_claim_templates
        .as_ref()?
        .first()?
        .spec
        .as_ref()
        .and_then(|s| s.storage_class_name.as_deref());
    (running != Some(asked)).then(|| {
        Failure::new(
            Reason::StorageClassChangeRefused,
            format!(
                "spec.database.storageClassName asks for StorageClass {asked}, but the volume of StatefulSet {} was made in {}: a volume does not move between classes; remove the field, or move the data with pg_dump and pg_restore to a new Tenant",
                names::SERVER,
                running.unwrap_or("the cluster's default class")
            ),
        )
    })
}

/// The major version a dedicated server runs, and the refusal when the spec asks for another.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Version {
    /// What the StatefulSet's image is tagged with.
    pub run: String,
    /// `VersionChangeRefused` when `spec.database.version` differs from the running version.
    pub refused: Option<Failure>,
}

/// A server that runs keeps its version (`running`); a new one gets `asked`
/// (`spec.database.version`) or the operator's `default`.
pub fn version(asked: Option<&str>, default: &str, running: Option<&str>) -> Version {
    match (running, asked) {
        (Some(running), Some(asked)) if running != asked => Version {
            run: running.to_string(),
            refused: Some(Failure::new(
                Reason::VersionChangeRefused,
                format!(
                    "spec.database.version asks for PostgreSQL {asked}, but StatefulSet {} runs {running} on a data directory only {running} starts: Landlord does not upgrade major versions in place; remove spec.database.version (the server keeps {running}), or move the data with pg_dump and pg_restore to a new Tenant",
                    names::SERVER
                ),
            )),
        },
        (Some(running), _) => Version {
            run: running.to_string(),
            refused: None,
        },
        (None, asked) => Version {
            run: asked.unwrap_or(default).to_string(),
            refused: None,
        },
    }
}

/// The storage request of a claim (its spec, or `status.capacity` with `capacity = true`).
fn storage(claim: &PersistentVolumeClaim, capacity: bool) -> Option<&str> {
    let map = if capacity {
        claim.status.as_ref()?.capacity.as_ref()?
    } else {
        claim.spec.as_ref()?.resources.as_ref()?.requests.as_ref()?
    };
    map.get("storage").map(|q| q.0.as_str())
}

/// What to do about the volume when `spec.database.storage` asks for `asked`.
#[derive(Clone, Debug, PartialEq)]
pub enum Volume {
    /// The claim holds what is asked (or more is not asked): nothing to do.
    Fits,
    /// Raise the claim's storage request to this size.
    Expand(Quantity),
    /// The claim asks for the size, the volume is not there yet (`VolumeExpanding`), or the
    /// spec asks for less than the claim holds (`StorageShrinkRefused`), or the claim cannot
    /// grow (`VolumeExpansionUnsupported`).
    Report(Failure),
}

/// Compares `asked` with the live `claim` and, when it must grow, with its `class`
/// (`None`: the claim names no StorageClass, or it does not exist).
pub fn volume(
    asked: &Quantity,
    claim: &PersistentVolumeClaim,
    class: Option<&StorageClass>,
) -> Volume {
    let name = claim_name();
    let Some(asked_bytes) = quantity::nanos(&asked.0) else {
        // The CRD only admits quantities; nothing sensible to compare otherwise.
        return Volume::Fits;
    };
    let requested = storage(claim, false).unwrap_or("0");
    let requested_bytes = quantity::nanos(requested).unwrap_or(0);
    if asked_bytes < requested_bytes {
        return Volume::Report(Failure::new(
            Reason::StorageShrinkRefused,
            format!(
                "spec.database.storage asks for {}, but PersistentVolumeClaim {name} holds {requested}: a volume does not shrink; set spec.database.storage to at least {requested}",
                asked.0
            ),
        ));
    }
    if asked_bytes == requested_bytes {
        let capacity = storage(claim, true);
        return match capacity.and_then(quantity::nanos) {
            Some(bytes) if bytes >= asked_bytes => Volume::Fits,
            _ => Volume::Report(Failure::new(
                Reason::VolumeExpanding,
                format!(
                    "PersistentVolumeClaim {name} is growing from {} to {}",
                    capacity.unwrap_or("an unknown size"),
                    asked.0
                ),
            )),
        };
    }
    let unsupported = |why: String| {
        Volume::Report(Failure::new(
            Reason::VolumeExpansionUnsupported,
            format!(
                "spec.database.storage asks for {}, but PersistentVolumeClaim {name} ({requested}) cannot grow: {why}",
                asked.0
            ),
        ))
    };
    let phase = claim.status.as_ref().and_then(|s| s.phase.as_deref());
    if phase != Some("Bound") {
        return unsupported(format!(
            "it is not bound (phase {})",
            phase.unwrap_or("unknown")
        ));
    }
    let class_name = claim
        .spec
        .as_ref()
        .and_then(|s| s.storage_class_name.as_deref());
    match (class_name, class) {
        (None, _) => unsupported("it names no StorageClass".into()),
        (Some(class_name), None) => {
            unsupported(format!("StorageClass {class_name} does not exist"))
        }
        (Some(class_name), Some(class)) if class.allow_volume_expansion != Some(true) => {
            unsupported(format!(
                "StorageClass {class_name} does not allow volume expansion (allowVolumeExpansion)"
            ))
        }
        _ => Volume::Expand(asked.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn set(image: &str) -> StatefulSet {
        serde_json::from_value(json!({
            "spec": {
                "selector": {},
                "serviceName": "landlord-postgres",
                "template": {"spec": {"containers": [
                    {"name": "postgres", "image": image},
                ]}},
            },
        }))
        .expect("StatefulSet fixture")
    }

    fn claim(
        requested: &str,
        capacity: Option<&str>,
        phase: &str,
        class: Option<&str>,
    ) -> PersistentVolumeClaim {
        serde_json::from_value(json!({
            "metadata": {"name": claim_name()},
            "spec": {"storageClassName": class, "resources": {"requests": {"storage": requested}}},
            "status": {"phase": phase, "capacity": capacity.map(|c| json!({"storage": c}))},
        }))
        .expect("claim fixture")
    }

    fn class(expandable: Option<bool>) -> StorageClass {
        serde_json::from_value(json!({
            "metadata": {"name": "fast"}, "provisioner": "example.com/disk",
            "allowVolumeExpansion": expandable,
        }))
        .expect("StorageClass fixture")
    }

    fn reason(volume: &Volume) -> Option<Reason> {
        match volume {
            Volume::Report(failure) => Some(failure.reason),
            _ => None,
        }
    }

    #[test]
    fn the_running_version_is_the_image_tag_also_behind_a_registry_port() {
        assert_eq!(
            running_version(&set("registry.example:5000/postgres:15")).as_deref(),
            Some("15")
        );
        assert_eq!(running_version(&set("postgres:16")).as_deref(), Some("16"));
    }

    #[test]
    fn a_storage_class_other_than_the_volumes_is_refused() {
        let mut live = set("postgres:15");
        if let Some(spec) = live.spec.as_mut() {
            spec.volume_claim_templates = Some(vec![PersistentVolumeClaim {
                spec: Some(k8s_openapi::api::core::v1::PersistentVolumeClaimSpec {
                    storage_class_name: Some("fast".into()),
                    ..Default::default()
                }),
                ..Default::default()
            }]);
        }
        assert_eq!(storage_class_refusal(None, &live), None);
        assert_eq!(storage_class_refusal(Some("fast"), &live), None);
        let refused = storage_class_refusal(Some("slow"), &live).expect("refused");
        assert_eq!(refused.reason, Reason::StorageClassChangeRefused);
        assert!(refused.message.contains("slow") && refused.message.contains("fast"));
    }

    #[test]
    fn extensions_are_ensured_until_the_server_secret_records_them() {
        let wanted = ["pgcrypto".to_string(), "citext".to_string()];
        // Never checked (a new server, or one an older operator made): all of them.
        assert_eq!(extensions_to_ensure(&wanted, None), wanted);
        assert_eq!(extensions_to_ensure(&wanted, Some("citext")), ["pgcrypto"]);
        assert_eq!(
            extensions_to_ensure(&wanted, Some(&ensured_value(&wanted))),
            Vec::<String>::new()
        );
        // One removed from the spec is not dropped, and needs no session.
        assert_eq!(
            extensions_to_ensure(&wanted[..1], Some("citext pgcrypto")),
            Vec::<String>::new()
        );
        assert_eq!(ensured_value(&wanted), "citext pgcrypto");
    }

    #[test]
    fn a_running_server_keeps_its_version_and_refuses_another() {
        let new = version(None, "16", None);
        assert_eq!((new.run.as_str(), new.refused), ("16", None));
        assert_eq!(version(Some("15"), "16", None).run, "15");
        // The operator's default changed: the server keeps what it runs, silently.
        assert_eq!(
            version(None, "17", Some("16")),
            Version {
                run: "16".into(),
                refused: None
            }
        );
        let asked = version(Some("17"), "16", Some("16"));
        assert_eq!(asked.run, "16", "the image is never swapped in place");
        let refused = asked.refused.expect("a refusal");
        assert_eq!(refused.reason, Reason::VersionChangeRefused);
        assert!(
            refused.message.contains("spec.database.version") && refused.message.contains("17")
        );
    }

    #[test]
    fn a_volume_grows_only_when_bound_and_its_class_allows_it() {
        let asked = Quantity("5Gi".into());
        let bound = claim("3Gi", Some("3Gi"), "Bound", Some("fast"));
        assert_eq!(
            volume(&asked, &bound, Some(&class(Some(true)))),
            Volume::Expand(asked.clone())
        );
        for (claim, class) in [
            (bound.clone(), Some(class(None))),
            (bound.clone(), Some(class(Some(false)))),
            (bound.clone(), None),
            (
                claim("3Gi", None, "Pending", Some("fast")),
                Some(class(Some(true))),
            ),
            (claim("3Gi", Some("3Gi"), "Bound", None), None),
        ] {
            let answer = volume(&asked, &claim, class.as_ref());
            assert_eq!(
                reason(&answer),
                Some(Reason::VolumeExpansionUnsupported),
                "{answer:?}"
            );
        }
    }

    #[test]
    fn sizes_compare_by_value_and_a_volume_never_shrinks() {
        let grown = claim("5Gi", Some("5Gi"), "Bound", Some("fast"));
        assert_eq!(
            volume(&Quantity("5120Mi".into()), &grown, None),
            Volume::Fits
        );
        let growing = claim("5Gi", Some("3Gi"), "Bound", Some("fast"));
        assert_eq!(
            reason(&volume(&Quantity("5Gi".into()), &growing, None)),
            Some(Reason::VolumeExpanding)
        );
        let shrink = volume(&Quantity("1Gi".into()), &grown, None);
        assert_eq!(reason(&shrink), Some(Reason::StorageShrinkRefused));
    }
}
