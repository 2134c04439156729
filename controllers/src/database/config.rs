//! The database part of the operator's configuration: the shared PostgreSQL servers, the
//! extension allowlist and the defaults of dedicated servers.

use serde::Deserialize;

/// One platform PostgreSQL server that shared-tier tenants are placed on.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServerConfig {
    /// Name tenants use in `spec.database.server` and status reports: a DNS label.
    pub name: String,
    /// Host that both Landlord and the tenants' services connect to.
    pub host: String,
    /// Port, 5432 by default.
    #[serde(default = "default_port")]
    pub port: u16,
    /// The Secret holding the admin credentials (keys `username`, `password`, optionally
    /// `database`, default `postgres`, and `ca.crt`, the PEM bundle that signs the server's
    /// certificate). The admin needs CREATEROLE and CREATEDB and should not be a superuser.
    pub admin_secret: SecretRef,
    /// How many tenant databases the server takes; placement never exceeds it.
    pub capacity: u32,
    /// TLS towards the server: `verify-full` (default), `verify-ca`, `require`, `prefer`,
    /// `disable`. Also written into the tenants' connection URIs. Only `verify-ca` and
    /// `verify-full` make sure that whatever answers on `host` is the server before the
    /// admin's credentials are sent; the others are for loopback or a network nobody else
    /// can answer on.
    #[serde(default = "default_ssl_mode")]
    pub ssl_mode: String,
    /// Where the tenants' pods reach the server, for the egress NetworkPolicy of the tenants
    /// placed on it whose isolation is `Strict`: `namespace` (it runs in the cluster) and
    /// `cidrs` (its addresses, when it runs outside). Unset: their pods cannot reach it.
    #[serde(default)]
    pub network: crate::config::NetworkLocation,
}

/// A Secret by namespace and name.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SecretRef {
    pub namespace: String,
    pub name: String,
}

fn default_port() -> u16 {
    5432
}

fn default_ssl_mode() -> String {
    "verify-full".into()
}

const SSL_MODES: &[&str] = &["disable", "prefer", "require", "verify-ca", "verify-full"];

/// Database settings of the operator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatabaseConfig {
    /// Shared servers, in the order given.
    pub servers: Vec<ServerConfig>,
    /// Extensions tenants may ask for.
    pub extensions: Vec<String>,
    /// Connection limit of a tenant role whose quota sets none.
    pub default_connection_limit: i32,
    /// Image repository of dedicated servers; the tag is the PostgreSQL major version.
    pub postgres_image: String,
    /// Major version of a dedicated server whose spec names none.
    pub default_version: String,
    /// Volume size of a dedicated server whose spec names none.
    pub default_storage: String,
}

/// Trusted extensions (creatable by a database owner) that most products ask for.
pub const DEFAULT_EXTENSIONS: &[&str] = &[
    "btree_gin",
    "btree_gist",
    "citext",
    "fuzzystrmatch",
    "hstore",
    "intarray",
    "ltree",
    "pg_trgm",
    "pgcrypto",
    "tablefunc",
    "unaccent",
];

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            servers: Vec::new(),
            extensions: DEFAULT_EXTENSIONS.iter().map(|e| e.to_string()).collect(),
            default_connection_limit: 20,
            postgres_image: "docker.io/library/postgres".into(),
            default_version: "16".into(),
            default_storage: "10Gi".into(),
        }
    }
}

/// A server list that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("database servers file: {0}")]
    Parse(#[from] serde_yaml::Error),
    #[error("database servers file: servers[{index}].{field}: {why}")]
    Invalid {
        index: usize,
        field: &'static str,
        why: String,
    },
}

/// Parses and checks the servers file: a YAML list of [`ServerConfig`].
pub fn parse_servers(yaml: &str) -> Result<Vec<ServerConfig>, ConfigError> {
    let servers: Vec<ServerConfig> = if yaml.trim().is_empty() {
        Vec::new()
    } else {
        serde_yaml::from_str(yaml)?
    };
    for (index, server) in servers.iter().enumerate() {
        let invalid = |field, why: String| ConfigError::Invalid { index, field, why };
        if !crate::config::is_dns_label(&server.name) {
            return Err(invalid(
                "name",
                format!("{:?} is not a DNS label", server.name),
            ));
        }
        if servers[..index].iter().any(|s| s.name == server.name) {
            return Err(invalid("name", format!("{:?} appears twice", server.name)));
        }
        if server.host.is_empty() {
            return Err(invalid("host", "must not be empty".into()));
        }
        if server.capacity == 0 {
            return Err(invalid("capacity", "must be at least 1".into()));
        }
        if server.port == 0 {
            return Err(invalid("port", "must be 1 to 65535".into()));
        }
        if let Some((field, why)) = server.network.problem() {
            return Err(invalid(
                match field {
                    "namespace" => "network.namespace",
                    "podSelector" => "network.podSelector",
                    _ => "network.cidrs",
                },
                why,
            ));
        }
        if !SSL_MODES.contains(&server.ssl_mode.as_str()) {
            return Err(invalid(
                "sslMode",
                format!(
                    "{:?} is not one of {}",
                    server.ssl_mode,
                    SSL_MODES.join(", ")
                ),
            ));
        }
    }
    Ok(servers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_server_list_with_defaults() {
        let servers = parse_servers(
            "- name: pg-a\n  host: pg-a.db.svc\n  adminSecret: {namespace: landlord-system, name: pg-a}\n  capacity: 100\n",
        )
        .expect("valid");
        assert_eq!(servers[0].port, 5432);
        assert_eq!(
            servers[0].ssl_mode, "verify-full",
            "the admin password never goes to a server that did not prove who it is"
        );
        assert!(parse_servers("").expect("empty").is_empty());
        // The README's example location.
        let located = parse_servers(
            "- name: pg-a\n  host: pg-a.db.svc\n  adminSecret: {namespace: landlord-system, name: pg-a}\n  capacity: 100\n  network:\n    namespace: db\n    podSelector: {app.kubernetes.io/instance: pg-eu-1}\n",
        )
        .expect("valid");
        assert_eq!(located[0].network.namespace.as_deref(), Some("db"));
        assert_eq!(
            located[0].network.pod_selector["app.kubernetes.io/instance"],
            "pg-eu-1"
        );
    }

    #[test]
    fn bad_entries_name_the_field() {
        let base = "adminSecret: {namespace: n, name: s}";
        let cases = [
            (
                format!("- {{name: PG, host: h, capacity: 1, {base}}}"),
                "servers[0].name",
            ),
            (
                format!("- {{name: a, host: h, capacity: 0, {base}}}"),
                "servers[0].capacity",
            ),
            (
                format!("- {{name: a, host: '', capacity: 1, {base}}}"),
                "servers[0].host",
            ),
            (
                format!("- {{name: a, host: h, capacity: 1, sslMode: maybe, {base}}}"),
                "servers[0].sslMode",
            ),
            (
                format!(
                    "- {{name: a, host: h, capacity: 1, network: {{cidrs: [10.0.0.1]}}, {base}}}"
                ),
                "servers[0].network.cidrs",
            ),
            (
                format!(
                    "- {{name: a, host: h, capacity: 1, network: {{cidrs: [10.0.0.0/+8]}}, {base}}}"
                ),
                "servers[0].network.cidrs",
            ),
            (
                format!("- {{name: a, host: h, capacity: 1, network: {{namespace: DB}}, {base}}}"),
                "servers[0].network.namespace",
            ),
            (
                format!(
                    "- {{name: a, host: h, capacity: 1, network: {{podSelector: {{app: pg}}}}, {base}}}"
                ),
                "servers[0].network.podSelector",
            ),
            (
                format!(
                    "- {{name: a, host: h, capacity: 1, network: {{namespace: db, podSelector: {{app: -pg}}}}, {base}}}"
                ),
                "servers[0].network.podSelector",
            ),
            (
                format!("- {{name: a, host: h, port: 0, capacity: 1, {base}}}"),
                "servers[0].port",
            ),
            (
                format!(
                    "- {{name: a, host: h, capacity: 1, {base}}}\n- {{name: a, host: h, capacity: 1, {base}}}"
                ),
                "servers[1].name",
            ),
        ];
        for (yaml, field) in cases {
            let err = parse_servers(&yaml).expect_err(&yaml).to_string();
            assert!(err.contains(field), "{err} should name {field}");
        }
        let err = parse_servers(
            "- {name: a, host: h, capacity: 1, adminSecret: {namespace: n, name: s}, colour: red}",
        )
        .expect_err("unknown field")
        .to_string();
        assert!(err.contains("colour"), "{err}");
    }
}
