//! Checks the schema cannot make: rules that depend on the operator's configuration.

use landlord_crds::conditions::Reason;
use landlord_crds::{
    Tenant,
    conditions::{Observation, Status, tenant::NAMESPACE_READY},
};

use crate::config::Config;

/// Namespaces a tenant may never live in, whatever its spec says.
fn reserved(config: &Config) -> [&str; 3] {
    [
        &config.platform_namespace,
        &config.gateway_namespace,
        &config.dns_namespace,
    ]
}

/// Validates a Tenant against the operator's configuration; the error is the condition to
/// report (and the controller then waits for the next change).
pub fn validate(tenant: &Tenant, config: &Config) -> Result<(), Observation> {
    let namespace = tenant.namespace_name();
    if reserved(config).contains(&namespace.as_str()) || namespace.starts_with("kube-") {
        return Err(Observation::new(
            NAMESPACE_READY,
            Status::False,
            Reason::InvalidSpec,
            format!("spec.namespace: {namespace} is reserved for the platform"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(namespace: &str) -> Tenant {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "landlord.dev/v1alpha1", "kind": "Tenant",
            "metadata": {"name": "acme"},
            "spec": {"tier": "shared", "namespace": namespace}
        }))
        .expect("fixture")
    }

    #[test]
    fn platform_namespaces_are_refused_naming_the_field() {
        let config = Config::default();
        let err = validate(&tenant(&config.platform_namespace), &config).expect_err("reserved");
        assert_eq!(err.reason, "InvalidSpec");
        assert!(err.message.starts_with("spec.namespace"));
        assert!(validate(&tenant("kube-flannel"), &config).is_err());
        assert!(validate(&tenant("acme-prod"), &config).is_ok());
    }
}
