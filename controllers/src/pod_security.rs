//! The `restricted` Pod Security Standard, as every pod Landlord builds runs it: one
//! definition, so no workload drifts from the namespace's enforced level.

use k8s_openapi::api::core::v1::{
    Capabilities, PodSecurityContext, SeccompProfile, SecurityContext,
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
