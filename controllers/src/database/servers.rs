//! Connections to the shared servers, the per-server lock that serialises `CREATE DATABASE`,
//! and the placements made but not yet recorded in a Tenant's status.

use landlord_crds::conditions::Reason;
use std::{
    collections::{BTreeMap, HashMap},
    str::FromStr,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};
use sqlx::{
    ConnectOptions, PgPool,
    postgres::{PgConnectOptions, PgPoolOptions, PgSslMode},
};

use super::{config::ServerConfig, failure::Failure, identifier::Names};

/// Connections an operator holds per server: provisioning is short and rare.
const POOL_SIZE: u32 = 4;
/// Connections the operator may open to one server at once: its pool, the connection of
/// [`super::sql`]'s role-scoped steps and the health probe's. Tenants' connection limits
/// leave these free ([`super::sql::ConnectionBudget`]).
pub const OPERATOR_CONNECTIONS: u32 = POOL_SIZE + 2;
/// `search_path` of every session Landlord opens, as a startup option: it outranks what a
/// tenant can set with `ALTER DATABASE` or `ALTER ROLE` (see [`super::sql`], rule 1).
const SEARCH_PATH: &str = "pg_catalog,pg_temp";
/// How long a step waits for a connection before the server counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// An open pool to one server.
pub struct Server {
    pub pool: PgPool,
    /// The admin's options (maintenance database, pinned `search_path`), for steps that
    /// need a connection of their own.
    pub admin: PgConnectOptions,
    /// Held around `CREATE DATABASE`, which PostgreSQL runs one at a time per server anyway
    /// (it copies the template); serialising here keeps waiting out of the server's locks.
    pub create_lock: Arc<tokio::sync::Mutex<()>>,
}

/// All shared servers the operator talks to.
#[derive(Default)]
pub struct Servers {
    open: Mutex<HashMap<String, Arc<Server>>>,
    create_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// tenant name → server, for placements decided but maybe not yet in status.
    reservations: Mutex<HashMap<String, String>>,
    /// Placement decisions run one at a time, so two new tenants see each other's choice.
    pub placement_lock: tokio::sync::Mutex<()>,
    /// Servers whose last health probe failed: they take no new session, whatever the
    /// sessions already in a pool still answer (see `health`).
    down: Mutex<std::collections::HashSet<String>>,
}

/// A new session, given [`CONNECT_TIMEOUT`] to open: a server whose postmaster hangs accepts
/// the TCP connection and never answers, so without a bound the caller would wait forever.
pub async fn open_session(options: &PgConnectOptions) -> Result<sqlx::PgConnection, sqlx::Error> {
    use sqlx::Connection;
    tokio::time::timeout(CONNECT_TIMEOUT, sqlx::PgConnection::connect_with(options))
        .await
        .unwrap_or(Err(sqlx::Error::PoolTimedOut))
}

impl Server {
    /// Options of a session as the tenant's role, in its own database, with its own
    /// password (see [`super::sql`], rule 2); same host, port, TLS and pinned
    /// `search_path` as the admin's.
    pub fn as_tenant(&self, names: &Names, password: &str) -> PgConnectOptions {
        self.admin
            .clone()
            .username(&names.role)
            .password(password)
            .database(&names.database)
    }
}

impl Servers {
    /// Records the health probe's answer for `server`.
    pub fn set_up(&self, server: &str, up: bool) {
        let mut down = self.down.lock().unwrap_or_else(PoisonError::into_inner);
        if up {
            down.remove(server);
        } else {
            down.insert(server.to_string());
        }
    }

    /// Whether the last health probe of `server` failed.
    pub fn is_down(&self, server: &str) -> bool {
        self.down
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(server)
    }

    /// The pool of `server`, opened from its admin Secret on first use.
    pub async fn connect(
        &self,
        server: &ServerConfig,
        client: &Client,
    ) -> Result<Arc<Server>, Failure> {
        if let Some(open) = self
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&server.name)
        {
            return Ok(open.clone());
        }
        let admin = admin_options(server, client).await?;
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .min_connections(0)
            .acquire_timeout(CONNECT_TIMEOUT)
            .idle_timeout(Duration::from_secs(60))
            .connect_lazy_with(admin.clone());
        let create_lock = self
            .create_locks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(server.name.clone())
            .or_default()
            .clone();
        let opened = Arc::new(Server {
            pool,
            admin,
            create_lock,
        });
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(server.name.clone(), opened.clone());
        Ok(opened)
    }

    /// Forgets the pool of `server` (after an authentication failure), so that the next
    /// attempt reads its admin Secret again: a rotated admin password is picked up.
    pub fn forget(&self, server: &str) {
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(server);
    }

    pub fn reserve(&self, tenant: &str, server: &str) {
        self.reservations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(tenant.into(), server.into());
    }

    pub fn release(&self, tenant: &str) {
        self.reservations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(tenant);
    }

    /// Databases per server: the placements recorded in the Tenants' status (`recorded`,
    /// tenant → server) joined with the reservations, each tenant counted once, `except`
    /// the tenant being placed.
    pub fn loads<'a>(
        &self,
        recorded: impl Iterator<Item = (String, String)> + 'a,
        except: &str,
    ) -> BTreeMap<String, u32> {
        let mut placements: HashMap<String, String> = recorded.collect();
        for (tenant, server) in self
            .reservations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            placements
                .entry(tenant.clone())
                .or_insert_with(|| server.clone());
        }
        let mut loads = BTreeMap::new();
        for (tenant, server) in placements {
            if tenant != except {
                *loads.entry(server).or_insert(0) += 1;
            }
        }
        loads
    }
}

fn text(secret: &Secret, key: &str) -> Option<String> {
    secret
        .data
        .as_ref()?
        .get(key)
        .and_then(|v| String::from_utf8(v.0.clone()).ok())
        .or_else(|| secret.string_data.as_ref()?.get(key).cloned())
}

async fn admin_options(
    server: &ServerConfig,
    client: &Client,
) -> Result<PgConnectOptions, Failure> {
    let reference = &server.admin_secret;
    let missing = |what: String| {
        Failure::new(
            Reason::AdminSecretMissing,
            format!(
                "server {}: admin Secret {}/{} {what}",
                server.name, reference.namespace, reference.name
            ),
        )
    };
    let secret = Api::<Secret>::namespaced(client.clone(), &reference.namespace)
        .get_opt(&reference.name)
        .await
        .map_err(|e| missing(format!("cannot be read: {e}")))?
        .ok_or_else(|| missing("does not exist".into()))?;
    let username =
        text(&secret, "username").ok_or_else(|| missing("has no key `username`".into()))?;
    let password =
        text(&secret, "password").ok_or_else(|| missing("has no key `password`".into()))?;
    let database = text(&secret, "database").unwrap_or_else(|| "postgres".into());
    let ssl_mode = PgSslMode::from_str(&server.ssl_mode).map_err(|e| {
        Failure::new(
            Reason::InvalidServerConfig,
            format!("server {}: sslMode: {e}", server.name),
        )
    })?;
    let mut options = PgConnectOptions::new();
    if let Some(ca) = text(&secret, "ca.crt") {
        options = options.ssl_root_cert_from_pem(ca.into_bytes());
    }
    Ok(options
        .host(&server.host)
        .port(server.port)
        .username(&username)
        .password(&password)
        .database(&database)
        .ssl_mode(ssl_mode)
        .application_name("landlord")
        .options([("search_path", SEARCH_PATH)])
        // Statements carry SCRAM verifiers; they have no place in the operator's log.
        .disable_statement_logging())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_count_each_tenant_once_and_skip_the_one_being_placed() {
        let servers = Servers::default();
        servers.reserve("new", "b");
        servers.reserve("old", "b"); // also recorded: the status wins
        let recorded = vec![
            ("old".to_string(), "a".to_string()),
            ("x".to_string(), "a".to_string()),
        ];
        let loads = servers.loads(recorded.clone().into_iter(), "nobody");
        assert_eq!(loads.get("a"), Some(&2));
        assert_eq!(loads.get("b"), Some(&1));
        let loads = servers.loads(recorded.into_iter(), "new");
        assert_eq!(loads.get("b"), None);
        servers.release("new");
    }
}
