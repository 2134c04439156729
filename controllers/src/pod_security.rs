//! The `restricted` Pod Security Standard, as every pod Landlord builds runs it: one
//! definition, so no workload drifts from the namespace's enforced level.

use k8s_openapi::api::core::v1::{
    Capabilities, PodSecurityContext, PodSpec, SeccompProfile, SecurityContext,
};

/// Pod level: non-root as `uid` (group `uid`), the runtime's default seccomp profile.
pub fn pod(uid: i64) -> PodSecurityContext {
    PodSecurityContext {
        run_as_user: Some(uid),
        run_as_group: Some(uid),
        ..pod_image_user()
    }
}

/// Pod level for images Landlord does not build (catalog Services): non-root as the image's
/// own user, the runtime's default seccomp profile.
pub fn pod_image_user() -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Container level: no privilege escalation, every capability dropped, read-only root.
pub fn container() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The pull policy of every container of a pod in a tenant namespace when the operator's
/// `--image-pull-policy-always` is on: `Always`, whatever the catalog Service asked for, so
/// that the registry checks credentials on every start and a tenant never runs an image
/// cached on the node for someone else. The admission policy
/// `landlord-image-pull-policy` refuses any other value in tenant namespaces; writing it
/// here keeps Landlord's own pods admitted.
pub fn pull_always(pod: &mut PodSpec) {
    let containers = pod
        .containers
        .iter_mut()
        .chain(pod.init_containers.iter_mut().flatten());
    for container in containers {
        container.image_pull_policy = Some("Always".into());
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::Container;

    use super::*;

    #[test]
    fn every_container_and_init_container_pulls_always() {
        let container = |name: &str, policy: Option<&str>| Container {
            name: name.into(),
            image_pull_policy: policy.map(str::to_string),
            ..Default::default()
        };
        let mut pod = PodSpec {
            containers: vec![container("a", Some("IfNotPresent")), container("b", None)],
            init_containers: Some(vec![container("init", Some("Never"))]),
            ..Default::default()
        };
        pull_always(&mut pod);
        let policies: Vec<_> = pod
            .containers
            .iter()
            .chain(pod.init_containers.iter().flatten())
            .map(|c| c.image_pull_policy.as_deref())
            .collect();
        assert_eq!(policies, [Some("Always"); 3]);
    }
}
