//! The status of a FeatureFlagSet: pure, from the problems found while resolving the flags
//! of the tenants it applies to.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use landlord_crds::conditions::Reason;
use landlord_crds::{
    FeatureFlagSet, FeatureFlagSetStatus,
    conditions::{self, Observation, Status},
};

use super::resolve::Problem;

pub const READY: &str = "Ready";
pub const CONFLICT: &str = "Conflict";
/// How many problems a condition message spells out before it counts the rest.
const SHOWN: usize = 3;

/// Where a set lives, which decides whom it applies to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// In the platform namespace: the tenants its selector picks.
    Platform,
    /// In the namespace of this tenant.
    Tenant(String),
    /// In a namespace that is neither: it applies to nobody.
    Stray { platform_namespace: String },
}

/// The status a set should have. `tenants` is how many tenants it applies to; `problems`
/// are the problems (over all those tenants) that name this set, `id` its
/// `<namespace>/<name>`.
pub fn compute(
    set: &FeatureFlagSet,
    id: &str,
    scope: &Scope,
    tenants: usize,
    problems: &[Problem],
    now: &Time,
) -> FeatureFlagSetStatus {
    let generation = set.metadata.generation;
    let mut status = set.status.clone().unwrap_or_default();
    status.observed_generation = generation;
    status.flags = i32::try_from(set.spec.flags.len()).unwrap_or(i32::MAX);
    status.tenants = i32::try_from(tenants).unwrap_or(i32::MAX);

    let mut problems = problems.to_vec();
    problems.sort();
    problems.dedup();
    let conflicts: Vec<&Problem> = problems
        .iter()
        .filter(|p| matches!(p, Problem::TypeConflict { .. }))
        .collect();
    let conflict = if conflicts.is_empty() {
        Observation::new(
            CONFLICT,
            Status::False,
            Reason::NoConflict,
            "no flag of this set has another type in another set",
        )
    } else {
        Observation::new(
            CONFLICT,
            Status::True,
            Reason::TypeConflict,
            listed(&conflicts),
        )
    };

    let ignored: Vec<&Problem> = problems.iter().filter(|p| p.ignored_set() == id).collect();
    let ready = match (scope, ignored.first()) {
        (Scope::Stray { platform_namespace }, _) => Observation::new(
            READY,
            Status::False,
            Reason::NoTenant,
            format!(
                "namespace {} is neither the platform namespace ({platform_namespace}) nor a tenant's namespace: the set applies to no tenant",
                set.namespace().unwrap_or_default()
            ),
        ),
        (_, Some(first)) => {
            Observation::new(READY, Status::False, first.reason(), listed(&ignored))
        }
        (Scope::Tenant(tenant), None) => Observation::new(
            READY,
            Status::True,
            Reason::Applied,
            format!("every flag is served to tenant {tenant}"),
        ),
        (Scope::Platform, None) => Observation::new(
            READY,
            Status::True,
            Reason::Applied,
            format!("applies to {tenants} tenants"),
        ),
    };
    for observation in [&ready, &conflict] {
        conditions::set(&mut status.conditions, observation, generation, now);
    }
    status
}

/// Whether a problem found while resolving some tenant's flags belongs on the set `id`. It
/// must name the set; and a platform set only hears of problems among platform sets: a
/// tenant's set that collides with it is that tenant's to fix (its own set and the Tenant
/// say so), and must not mark a set shared by every tenant.
pub fn concerns(problem: &Problem, id: &str, scope: &Scope, platform_namespace: &str) -> bool {
    let platform_set = |set: &str| {
        set.split_once('/')
            .is_some_and(|(namespace, _)| namespace == platform_namespace)
    };
    problem.involves(id)
        && match (scope, problem) {
            (Scope::Platform, Problem::TypeConflict { kept, ignored, .. }) => {
                platform_set(kept) && platform_set(ignored)
            }
            (Scope::Platform, Problem::LockedOverride { .. }) => false,
            _ => true,
        }
}

fn listed(problems: &[&Problem]) -> String {
    let mut parts: Vec<String> = problems.iter().take(SHOWN).map(|p| p.to_string()).collect();
    if problems.len() > SHOWN {
        parts.push(format!("and {} more", problems.len() - SHOWN));
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;
    use landlord_crds::flags::FlagType;
    use serde_json::json;

    fn at(s: i64) -> Time {
        Time(Timestamp::from_second(s).expect("timestamp"))
    }

    fn set(namespace: &str, name: &str) -> FeatureFlagSet {
        serde_json::from_value(json!({
            "apiVersion": "landlord.dev/v1alpha1", "kind": "FeatureFlagSet",
            "metadata": {"name": name, "namespace": namespace, "generation": 4},
            "spec": {"flags": [{"name": "beta", "type": "boolean",
                                "variants": {"on": {"boolean": true}}, "defaultVariant": "on"}]},
        }))
        .expect("fixture")
    }

    fn conflict() -> Problem {
        Problem::TypeConflict {
            flag: "beta".into(),
            kept: "landlord-platform/a".into(),
            kept_type: FlagType::Boolean,
            ignored: "landlord-platform/b".into(),
            ignored_type: FlagType::String,
        }
    }

    fn condition<'a>(s: &'a FeatureFlagSetStatus, type_: &str) -> (&'a str, &'a str, &'a str) {
        let c = conditions::find(&s.conditions, type_).expect("condition");
        (c.status.as_str(), c.reason.as_str(), c.message.as_str())
    }

    #[test]
    fn a_clean_platform_set_is_ready_and_counts_its_tenants() {
        let s = set("landlord-platform", "a");
        let status = compute(&s, "landlord-platform/a", &Scope::Platform, 7, &[], &at(1));
        assert_eq!(status.observed_generation, Some(4));
        assert_eq!((status.flags, status.tenants), (1, 7));
        assert_eq!(condition(&status, READY).0, "True");
        assert_eq!(condition(&status, CONFLICT).0, "False");
    }

    #[test]
    fn both_sides_of_a_type_conflict_name_each_other_and_only_the_ignored_one_is_not_ready() {
        let a = compute(
            &set("landlord-platform", "a"),
            "landlord-platform/a",
            &Scope::Platform,
            2,
            &[conflict(), conflict()],
            &at(1),
        );
        let b = compute(
            &set("landlord-platform", "b"),
            "landlord-platform/b",
            &Scope::Platform,
            2,
            &[conflict()],
            &at(1),
        );
        for status in [&a, &b] {
            let (s, reason, message) = condition(status, CONFLICT);
            assert_eq!((s, reason), ("True", "TypeConflict"));
            assert!(
                message.contains("landlord-platform/a") && message.contains("landlord-platform/b")
            );
            assert_eq!(
                message.matches("flag beta").count(),
                1,
                "deduplicated: {message}"
            );
        }
        assert_eq!(condition(&a, READY).0, "True");
        assert_eq!(condition(&b, READY).0, "False");
        assert_eq!(condition(&b, READY).1, "FlagConflict");
    }

    #[test]
    fn a_tenant_set_overriding_a_locked_flag_is_not_ready() {
        let problem = Problem::LockedOverride {
            flag: "pay".into(),
            locked_by: "landlord-platform/a".into(),
            ignored: "tenant-acme/mine".into(),
        };
        let status = compute(
            &set("tenant-acme", "mine"),
            "tenant-acme/mine",
            &Scope::Tenant("acme".into()),
            1,
            &[problem],
            &at(1),
        );
        let (s, reason, message) = condition(&status, READY);
        assert_eq!((s, reason), ("False", "LockedFlagOverride"));
        assert!(message.contains("pay") && message.contains("landlord-platform/a"));
        assert_eq!(condition(&status, CONFLICT).0, "False");
    }

    #[test]
    fn a_tenant_set_colliding_with_a_platform_set_concerns_only_the_tenant_set() {
        let tenant_conflict = Problem::TypeConflict {
            flag: "beta".into(),
            kept: "landlord-platform/a".into(),
            kept_type: FlagType::Boolean,
            ignored: "tenant-acme/mine".into(),
            ignored_type: FlagType::String,
        };
        let locked = Problem::LockedOverride {
            flag: "pay".into(),
            locked_by: "landlord-platform/a".into(),
            ignored: "tenant-acme/mine".into(),
        };
        let tenant = Scope::Tenant("acme".into());
        for problem in [&tenant_conflict, &locked] {
            assert!(!concerns(
                problem,
                "landlord-platform/a",
                &Scope::Platform,
                "landlord-platform"
            ));
            assert!(concerns(
                problem,
                "tenant-acme/mine",
                &tenant,
                "landlord-platform"
            ));
        }
        assert!(concerns(
            &conflict(),
            "landlord-platform/a",
            &Scope::Platform,
            "landlord-platform"
        ));
        assert!(!concerns(
            &conflict(),
            "landlord-platform/c",
            &Scope::Platform,
            "landlord-platform"
        ));
    }

    #[test]
    fn a_set_outside_platform_and_tenant_namespaces_says_so() {
        let status = compute(
            &set("default", "x"),
            "default/x",
            &Scope::Stray {
                platform_namespace: "landlord-platform".into(),
            },
            0,
            &[],
            &at(1),
        );
        let (s, reason, message) = condition(&status, READY);
        assert_eq!((s, reason), ("False", "NoTenant"));
        assert!(message.contains("default") && message.contains("landlord-platform"));
    }

    #[test]
    fn recomputing_an_unchanged_world_gives_the_same_status() {
        let mut s = set("landlord-platform", "b");
        s.status = Some(compute(
            &s,
            "landlord-platform/b",
            &Scope::Platform,
            2,
            &[conflict()],
            &at(1),
        ));
        let again = compute(
            &s,
            "landlord-platform/b",
            &Scope::Platform,
            2,
            &[conflict()],
            &at(50),
        );
        assert_eq!(s.status, Some(again));
    }
}
