//! The database part of a tenant: a role and database on a shared server, or a dedicated
//! server in the tenant's namespace; the credentials Secret either way; `DatabaseReady`.
//!
//! Failures of the PostgreSQL server are conditions, not errors: the Tenant reports them and
//! is looked at again shortly, so it recovers by itself when the server is back. Failures
//! only a person can fix (a name conflict, an extension off the allowlist) wait for a change.

use landlord_crds::conditions::Reason;
use std::time::Instant;

use k8s_openapi::{
    api::{
        apps::v1::StatefulSet,
        core::v1::{PersistentVolume, PersistentVolumeClaim, Secret},
        storage::v1::StorageClass,
    },
    apimachinery::pkg::api::resource::Quantity,
};
use kube::{
    Api, ResourceExt,
    api::{ListParams, Patch, PatchParams},
    runtime::reflector::ObjectRef,
};
use landlord_crds::{
    Tenant,
    conditions::{Observation, Status, tenant::DATABASE_READY},
    tenant::{DatabaseSpec, DatabaseStatus, DeletionPolicy, Tier},
};
use tracing::{info, warn};

use super::{
    State, desired,
    error::{Error, Result},
};
use crate::{
    Context,
    database::{
        config::ServerConfig,
        dedicated::{self, Volume as DedicatedVolume},
        desired::{
            self as db_desired, Endpoint, ROTATE_PASSWORD, ROTATION, ServerInputs, names,
            secret_text,
        },
        failure::Failure,
        identifier::{Names, ownership_marker},
        placement, scram,
        servers::OPERATOR_CONNECTIONS,
        sql,
    },
    labels,
};

/// On a Tenant: `"true"` takes over a role and database of the same name that Landlord made
/// for an earlier Tenant (kept by `deletionPolicy: Retain`).
pub const ADOPT_DATABASE: &str = "landlord.dev/adopt-database";

fn ready(reason: Reason, message: impl Into<String>) -> Observation {
    Observation::new(DATABASE_READY, Status::True, reason, message)
}

fn not_ready(failure: Failure) -> Observation {
    Observation::new(
        DATABASE_READY,
        Status::False,
        failure.reason,
        failure.message,
    )
}

/// Provisions the tenant's database and reports `DatabaseReady`. `recorded` is the part's
/// own status field, `status.database` (as currently stored): the placement is recorded in it
/// as soon as it is chosen, so that a later step's failure still keeps it.
pub async fn provision(
    tenant: &Tenant,
    state: &State,
    recorded: &mut Option<DatabaseStatus>,
) -> Result<Observation> {
    let Some(spec) = tenant.spec.database.as_ref().filter(|d| d.enabled) else {
        // A recorded placement is kept: the data (if any) still lives there.
        return Ok(ready(
            Reason::Disabled,
            "the tenant has no database (spec.database is absent or disabled)",
        ));
    };
    let started = Instant::now();
    let outcome = match tenant.spec.tier {
        Tier::Shared => shared(tenant, spec, state, recorded).await?,
        Tier::Dedicated => dedicated(tenant, spec, state, recorded).await?,
    };
    let metrics = &state.ctx.metrics;
    Ok(match outcome {
        Ok(Provisioned {
            observation,
            created,
        }) => {
            if created {
                metrics
                    .database_provision
                    .with_label_values(&[tenant.spec.tier.as_str()])
                    .observe(started.elapsed().as_secs_f64());
            }
            observation
        }
        Err(failure) => {
            metrics
                .database_errors
                .with_label_values(&[failure.reason.as_str()])
                .inc();
            not_ready(failure)
        }
    })
}

struct Provisioned {
    observation: Observation,
    /// Whether this reconcile created the role and database (for the latency metric).
    created: bool,
}

type Step<T> = Result<Result<T, Failure>>;

fn names_of(tenant: &Tenant) -> Result<Names, Failure> {
    Names::for_tenant(&tenant.name_any())
        .map_err(|e| Failure::new(Reason::InvalidName, e.to_string()))
}

fn check_extensions(spec: &DatabaseSpec, allowed: &[String]) -> Result<(), Failure> {
    let refused: Vec<&str> = spec
        .extensions
        .iter()
        .filter(|e| !allowed.contains(e))
        .map(String::as_str)
        .collect();
    if refused.is_empty() {
        return Ok(());
    }
    Err(Failure::new(
        Reason::ExtensionNotAllowed,
        format!(
            "spec.database.extensions: {} not in the operator's allowlist ({})",
            refused.join(", "),
            allowed.join(", ")
        ),
    ))
}

/// Places the database (or finds its recorded place) and records it in `recorded`.
async fn place(
    tenant: &Tenant,
    spec: &DatabaseSpec,
    state: &State,
) -> Result<ServerConfig, Failure> {
    let ctx = &state.ctx;
    let servers = &ctx.config.database.servers;
    let name = tenant.name_any();
    let recorded = tenant
        .status
        .as_ref()
        .and_then(|s| s.database.as_ref())
        .and_then(|d| d.server.clone());
    let _placing = ctx.databases.placement_lock.lock().await;
    let others = state.tenants.state().into_iter().filter_map(|t| {
        let server = t.status.as_ref()?.database.as_ref()?.server.clone()?;
        Some((t.name_any(), server))
    });
    let loads = ctx.databases.loads(others, &name);
    let chosen = placement::place(servers, recorded.as_deref(), spec.server.as_deref(), &loads)
        .map_err(|r| Failure::new(r.reason(), r.message(servers)))?;
    ctx.databases.reserve(&name, &chosen);
    servers
        .iter()
        .find(|s| s.name == chosen)
        .cloned()
        .ok_or_else(|| Failure::new(Reason::ServerNotFound, format!("server {chosen} vanished")))
}

async fn live_secret(ctx: &Context, tenant: &Tenant, name: &str) -> Result<Option<Secret>> {
    super::get_secret(ctx, &tenant.namespace_name(), name).await
}

async fn shared(
    tenant: &Tenant,
    spec: &DatabaseSpec,
    state: &State,
    recorded: &mut Option<DatabaseStatus>,
) -> Step<Provisioned> {
    let ctx = &state.ctx;
    let config = &ctx.config.database;
    let names = match names_of(tenant) {
        Ok(n) => n,
        Err(f) => return Ok(Err(f)),
    };
    if let Err(f) = check_extensions(spec, &config.extensions) {
        return Ok(Err(f));
    }
    let server = match place(tenant, spec, state).await {
        Ok(s) => s,
        Err(f) => return Ok(Err(f)),
    };
    let endpoint = Endpoint {
        host: server.host.clone(),
        port: server.port,
        ssl_mode: server.ssl_mode.clone(),
    };
    // The Secret and the rotation it holds are recorded once the Secret is written (below).
    let (previous_secret, previous_rotation) = recorded
        .as_ref()
        .map(|d| (d.secret.clone(), d.password_rotation.clone()))
        .unwrap_or_default();
    *recorded = Some(DatabaseStatus {
        server: Some(server.name.clone()),
        host: Some(endpoint.host.clone()),
        port: Some(i32::from(endpoint.port)),
        name: Some(names.database.clone()),
        secret: previous_secret,
        password_rotation: previous_rotation,
    });
    // What a tenant's service needs is a new session; a pool's open sessions may still
    // answer on a server that takes none (a hung postmaster).
    if ctx.databases.is_down(&server.name) {
        return Ok(Err(Failure::new(
            Reason::ServerUnreachable,
            format!(
                "server {}: it takes no new session (the last health probe failed); tenants cannot connect",
                server.name
            ),
        )));
    }
    let handle = match ctx.databases.connect(&server, &ctx.client).await {
        Ok(h) => h,
        Err(f) => return Ok(Err(f)),
    };
    let fail = |doing: String, e: sqlx::Error| {
        let failure = Failure::from_sqlx(&server.name, &doing, &e);
        if failure.reason == "AuthenticationFailed" {
            ctx.databases.forget(&server.name);
        }
        failure
    };
    let (pool, admin) = (&handle.pool, &handle.admin);
    let uid = tenant.uid().ok_or(Error::MissingUid)?;
    let marker = ownership_marker(&tenant.name_any(), &uid);
    let adopt = tenant
        .annotations()
        .get(ADOPT_DATABASE)
        .is_some_and(|v| v == "true");
    let can_login = !tenant.spec.suspended;
    let limit = tenant
        .spec
        .quota
        .as_ref()
        .and_then(|q| q.database_connections)
        .unwrap_or(config.default_connection_limit);

    // The password lives in the Secret; a new one is made only when there is none or the
    // rotation annotation changed. PostgreSQL gets it first, the Secret after: a crash in
    // between leaves a role whose password the next reconcile simply sets again.
    let rotation = tenant
        .annotations()
        .get(ROTATE_PASSWORD)
        .cloned()
        .unwrap_or_default();
    let kept = live_secret(ctx, tenant, names::SECRET)
        .await?
        .filter(|s| s.annotations().get(ROTATION) == Some(&rotation))
        .and_then(|s| secret_text(&s, "password"));
    let (password, fresh) = match kept {
        Some(p) => (p, false),
        None => (scram::generate_password().map_err(internal)?, true),
    };
    let verifier = if fresh {
        Some(scram::verifier(&password).map_err(internal)?)
    } else {
        None
    };

    let role = match sql::role(pool, &names).await {
        Ok(r) => r,
        Err(e) => return Ok(Err(fail(format!("reading role {}", names.role), e))),
    };
    // A new role, or a larger limit, must leave the operator its connections.
    if role.as_ref().is_none_or(|r| r.connection_limit < limit) {
        let _serialised = handle.create_lock.lock().await;
        match sql::connection_budget(pool, &names, OPERATOR_CONNECTIONS).await {
            Err(e) => return Ok(Err(fail("reading the connection budget".into(), e))),
            Ok(budget) if !budget.fits(limit, OPERATOR_CONNECTIONS) => {
                return Ok(Err(over_budget(&server.name, &names, limit, &budget)));
            }
            Ok(_) => {}
        }
    }
    let mut created = false;
    match role {
        None => {
            let verifier = match &verifier {
                Some(v) => v.clone(),
                // The Secret outlived the role (dropped by hand): set its password again.
                None => scram::verifier(&password).map_err(internal)?,
            };
            if let Err(e) =
                sql::create_role(pool, &names, &verifier, can_login, limit, &marker).await
            {
                return Ok(Err(fail(format!("creating role {}", names.role), e)));
            }
            created = true;
        }
        Some(role) => {
            if role.comment.as_deref() != Some(marker.as_str()) {
                if !adopt {
                    return Ok(Err(conflict(&names.role, "role", role.comment.as_deref())));
                }
                if let Err(e) = sql::mark(pool, admin, &names, &marker, false).await {
                    return Ok(Err(fail(format!("adopting role {}", names.role), e)));
                }
                info!(role = %names.role, "adopted an existing role");
            }
            if role.admin_inherits {
                if let Err(e) = sql::revoke_membership(pool, &names).await {
                    return Ok(Err(fail(
                        format!("revoking the admin's membership in role {}", names.role),
                        e,
                    )));
                }
                info!(role = %names.role, "the admin's inherited membership was revoked");
            }
            if (fresh || role.can_login != can_login || role.connection_limit != limit)
                && let Err(e) =
                    sql::alter_role(pool, &names, can_login, limit, verifier.as_deref()).await
            {
                return Ok(Err(fail(format!("altering role {}", names.role), e)));
            }
            if role.can_login && !can_login {
                match sql::terminate_sessions(admin, &names).await {
                    Ok(n) => info!(role = %names.role, sessions = n, "login disabled"),
                    Err(e) => return Ok(Err(fail("ending sessions".into(), e))),
                }
            }
        }
    }

    match sql::database(pool, &names).await {
        Err(e) => return Ok(Err(fail(format!("reading database {}", names.database), e))),
        Ok(None) => {
            let _serialised = handle.create_lock.lock().await;
            if let Err(e) = sql::create_database(admin, &names, &marker).await {
                return Ok(Err(fail(
                    format!("creating database {}", names.database),
                    e,
                )));
            }
            created = true;
        }
        Ok(Some(db)) if db.owner != names.role => {
            return Ok(Err(Failure::new(
                Reason::NameConflict,
                format!(
                    "database {} already exists on server {}, owned by {} rather than the tenant's role",
                    names.database, server.name, db.owner
                ),
            )));
        }
        Ok(Some(db)) => {
            if adopt && let Err(e) = sql::mark(pool, admin, &names, &marker, true).await {
                return Ok(Err(fail(
                    format!("adopting database {}", names.database),
                    e,
                )));
            }
            if db.public_access
                && let Err(e) = sql::revoke_public(admin, &names).await
            {
                return Ok(Err(fail("revoking CONNECT from PUBLIC".into(), e)));
            }
        }
    }

    // As the tenant (sql.rs, rule 2), so not while its login is disabled: a suspended
    // tenant gets its extensions when it resumes.
    if !spec.extensions.is_empty() && can_login {
        let session = handle.as_tenant(&names, &password);
        match sql::ensure_extensions(&session, &spec.extensions).await {
            Ok(added) if !added.is_empty() => info!(extensions = ?added, "created extensions"),
            Ok(_) => {}
            Err(e) => {
                // Not `fail`: a refused login here is the tenant's role, not the admin's.
                let mut failure = Failure::from_sqlx(
                    &server.name,
                    &format!("creating extensions as role {}", names.role),
                    &e,
                );
                if matches!(
                    failure.reason,
                    Reason::DatabaseError | Reason::PermissionDenied | Reason::AuthenticationFailed
                ) {
                    failure.reason = Reason::ExtensionFailed;
                }
                return Ok(Err(failure));
            }
        }
    }

    let owner = desired::owner_reference(tenant).ok_or(Error::MissingUid)?;
    let secret = db_desired::credentials(tenant, &owner, &names, &endpoint, &password, &rotation);
    super::ensure_secret(&secret, ctx).await?;
    if fresh && !created {
        info!(role = %names.role, "database password set");
    }
    if let Some(status) = recorded.as_mut() {
        status.secret = Some(names::SECRET.into());
        status.password_rotation = Some(rotation).filter(|r| !r.is_empty());
    }
    Ok(Ok(Provisioned {
        observation: if can_login {
            ready(
                Reason::Provisioned,
                format!("database {} on server {}", names.database, server.name),
            )
        } else {
            ready(
                Reason::Suspended,
                format!(
                    "login of role {} is disabled while the tenant is suspended",
                    names.role
                ),
            )
        },
        created,
    }))
}

fn over_budget(server: &str, names: &Names, limit: i32, budget: &sql::ConnectionBudget) -> Failure {
    Failure::new(
        Reason::ConnectionBudgetExceeded,
        format!(
            "server {server}: a connection limit of {limit} for role {} would commit {} of the {} connections non-superusers may open, and the operator keeps {OPERATOR_CONNECTIONS} for itself; lower spec.quota.databaseConnections, place the tenant on another server, or raise the server's max_connections",
            names.role,
            budget.committed + i64::from(limit),
            budget.available,
        ),
    )
}

fn internal(e: scram::NoRandomness) -> Error {
    Error::Internal(e.to_string())
}

fn conflict(what: &str, kind: &str, comment: Option<&str>) -> Failure {
    let owner = match comment {
        Some(c) if c.starts_with("landlord.dev ") => {
            format!("made by Landlord for another Tenant ({c})")
        }
        _ => "not made by Landlord".to_string(),
    };
    Failure::new(
        Reason::NameConflict,
        format!(
            "{kind} {what} already exists, {owner}; annotate the Tenant {ADOPT_DATABASE}=true to take it over"
        ),
    )
}

async fn dedicated(
    tenant: &Tenant,
    spec: &DatabaseSpec,
    state: &State,
    recorded: &mut Option<DatabaseStatus>,
) -> Step<Provisioned> {
    let ctx = &state.ctx;
    let names = match names_of(tenant) {
        Ok(n) => n,
        Err(f) => return Ok(Err(f)),
    };
    // Extensions are created when the server first initialises its data directory.
    if let Err(f) = check_extensions(spec, &ctx.config.database.extensions) {
        return Ok(Err(f));
    }
    let owner = desired::owner_reference(tenant).ok_or(Error::MissingUid)?;
    // Secrets are generated once and kept: the server only reads them when it initialises
    // its data directory.
    let server_secret = live_secret(&state.ctx, tenant, names::SERVER_SECRET).await?;
    let kept = |key: &str| server_secret.as_ref().and_then(|s| secret_text(s, key));
    let superuser = match kept("password") {
        Some(p) => p,
        None => scram::generate_password().map_err(internal)?,
    };
    let (mut role_password, mut verifier) = match (kept("role-password"), kept("role-verifier")) {
        (Some(p), Some(v)) => (p, v),
        _ => {
            let p = scram::generate_password().map_err(internal)?;
            let v = scram::verifier(&p).map_err(internal)?;
            (p, v)
        }
    };
    // A rotation is due when the credentials Secret was made for another value of the
    // Tenant's rotation annotation; the running server learns the new password over SQL
    // (below), and the Secrets change only after it has.
    let rotation = tenant
        .annotations()
        .get(ROTATE_PASSWORD)
        .cloned()
        .unwrap_or_default();
    let made_for = live_secret(&state.ctx, tenant, names::SECRET)
        .await?
        .map(|s| s.annotations().get(ROTATION).cloned().unwrap_or_default());
    let rotation_due = made_for
        .as_ref()
        .is_some_and(|made_for| *made_for != rotation);
    let ns = tenant.namespace_name();
    let live_set = state
        .stores
        .stateful_sets
        .get(&ObjectRef::new(names::SERVER).within(&ns));
    let first_start = live_set
        .as_ref()
        .map(|live| dedicated::first_start_extensions(live).unwrap_or_default())
        .unwrap_or_else(|| spec.extensions.join(" "));
    // A server made now gets its extensions from the first start's script (which fails the
    // start if one cannot be made); one an earlier operator made is checked once.
    let ensured = match (&live_set, &server_secret) {
        (None, _) => Some(dedicated::ensured_value(&spec.extensions)),
        (Some(_), secret) => secret
            .as_ref()
            .and_then(|s| s.annotations().get(dedicated::ENSURED_EXTENSIONS).cloned()),
    };
    let later = dedicated::extensions_to_ensure(&spec.extensions, ensured.as_deref());
    let running = live_set.as_ref().and_then(dedicated::running_version);
    let version = dedicated::version(
        spec.version.as_deref(),
        &ctx.config.database.default_version,
        running.as_deref(),
    );
    let mut server = db_desired::dedicated(
        tenant,
        &owner,
        &names,
        &ctx.config.database,
        &ServerInputs {
            version: &version.run,
            superuser_password: &superuser,
            verifier: &verifier,
            first_start_extensions: &first_start,
        },
        ctx.config.image_pull_policy_always,
    );
    // Volume claim templates are immutable: keep the live one (the claim itself is grown
    // below).
    if let (Some(live), Some(spec)) = (live_set.as_ref(), server.stateful_set.spec.as_mut())
        && let Some(templates) = live
            .spec
            .as_ref()
            .and_then(|s| s.volume_claim_templates.clone())
    {
        spec.volume_claim_templates = Some(templates);
    }
    let endpoint = db_desired::dedicated_endpoint(tenant);
    let observation = stateful_set_readiness(tenant, live_set.as_ref());
    // What the first start could not do: a rotated password, extensions added later. Only
    // a ready server can; until then the old password stays in the Secrets.
    let mut day_two = None;
    let mut rotated = false;
    let mut extensions_ensured = false;
    if (rotation_due || !later.is_empty())
        && observation
            .as_ref()
            .is_ok_and(|o| o.reason == Reason::Provisioned)
    {
        let session = DedicatedSession {
            tenant,
            names: &names,
            superuser: &superuser,
            state,
        };
        if rotation_due {
            let password = scram::generate_password().map_err(internal)?;
            let new_verifier = scram::verifier(&password).map_err(internal)?;
            match session.set_password(&new_verifier).await {
                Ok(()) => {
                    info!(role = %names.role, "database password rotated");
                    role_password = password;
                    verifier = new_verifier;
                    rotated = true;
                }
                Err(failure) => day_two = Some(failure),
            }
        }
        if day_two.is_none() && !later.is_empty() {
            match session.ensure_extensions(&role_password, &later).await {
                Ok(()) => extensions_ensured = true,
                Err(failure) => day_two = Some(failure),
            }
        }
    }
    // What the annotation says from now on: the spec's list once ensured; else as it was.
    let ensured = if extensions_ensured {
        Some(dedicated::ensured_value(&spec.extensions))
    } else {
        ensured
    };
    if let Some(ensured) = ensured {
        server
            .server_secret
            .metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(dedicated::ENSURED_EXTENSIONS.to_string(), ensured);
    }
    // Until the server has the new password, the Secret keeps saying which value of the
    // annotation its (old) password was made for.
    let rotation_made = if rotation_due && !rotated {
        made_for.unwrap_or_default()
    } else {
        rotation
    };
    if let Some(data) = server.server_secret.data.as_mut() {
        data.insert(
            "role-password".into(),
            k8s_openapi::ByteString(role_password.clone().into_bytes()),
        );
        data.insert(
            "role-verifier".into(),
            k8s_openapi::ByteString(verifier.clone().into_bytes()),
        );
    }
    let credentials = db_desired::credentials(
        tenant,
        &owner,
        &names,
        &endpoint,
        &role_password,
        &rotation_made,
    );
    super::ensure_secret(&server.server_secret, ctx).await?;
    super::ensure_secret(&credentials, ctx).await?;
    super::ensure_child(&state.stores.config_maps, &server.init, ctx).await?;
    super::ensure_child(&state.stores.services, &server.service, ctx).await?;
    let applied =
        super::ensure_child(&state.stores.stateful_sets, &server.stateful_set, ctx).await?;
    *recorded = Some(DatabaseStatus {
        server: None,
        host: Some(endpoint.host.clone()),
        port: Some(i32::from(endpoint.port)),
        name: Some(names.database.clone()),
        secret: Some(names::SECRET.into()),
        password_rotation: Some(rotation_made).filter(|r| !r.is_empty()),
    });
    let created = live_set.is_none() && applied > 0;
    // What a person must change comes first, then the volume, then the server's readiness.
    if let Some(refused) = version.refused {
        return Ok(Err(refused));
    }
    if let Some(refused) = live_set
        .as_ref()
        .and_then(|live| dedicated::storage_class_refusal(spec.storage_class_name.as_deref(), live))
    {
        return Ok(Err(refused));
    }
    if let (Some(_), Some(asked)) = (live_set.as_ref(), spec.storage.as_ref())
        && let Some(failure) = grow_volume(tenant, asked, state).await?
    {
        return Ok(Err(failure));
    }
    if let Some(failure) = day_two {
        return Ok(Err(failure));
    }
    Ok(Ok(Provisioned {
        observation: match observation {
            Ok(observation) => observation,
            Err(failure) => return Ok(Err(failure)),
        },
        created,
    }))
}

/// A session with a tenant's running dedicated server, at its Service's cluster IP (the
/// operator reaches it there from inside the cluster, and the local stack's host through a
/// node; the Service's DNS name needs the cluster's resolver), as its superuser.
struct DedicatedSession<'a> {
    tenant: &'a Tenant,
    names: &'a Names,
    superuser: &'a str,
    state: &'a State,
}

impl DedicatedSession<'_> {
    fn server(&self) -> String {
        format!("{}/{}", self.tenant.namespace_name(), names::SERVER)
    }

    /// Connection options as `user` with `password` to `database`, or the failure naming why
    /// the Service has no address.
    fn options(
        &self,
        user: &str,
        password: &str,
        database: &str,
    ) -> Result<sqlx::postgres::PgConnectOptions, Failure> {
        let ip = self
            .state
            .stores
            .services
            .get(&ObjectRef::new(names::SERVER).within(&self.tenant.namespace_name()))
            .and_then(|s| s.spec.as_ref()?.cluster_ip.clone())
            .filter(|ip| !ip.is_empty() && ip != "None")
            .ok_or_else(|| {
                Failure::new(
                    Reason::ServerUnreachable,
                    format!("Service {} has no cluster IP yet", self.server()),
                )
            })?;
        Ok(sqlx::postgres::PgConnectOptions::new()
            .host(&ip)
            .port(5432)
            .username(user)
            .password(password)
            .database(database)
            .ssl_mode(sqlx::postgres::PgSslMode::Disable)
            .application_name("landlord"))
    }

    /// `ALTER ROLE … PASSWORD` with the new SCRAM verifier, as the superuser.
    async fn set_password(&self, verifier: &str) -> Result<(), Failure> {
        let server = self.server();
        let options = self.options("postgres", self.superuser, "postgres")?;
        let fail = |doing: &str, e: &sqlx::Error| Failure::from_sqlx(&server, doing, e);
        let mut conn = crate::database::servers::open_session(&options)
            .await
            .map_err(|e| fail("connecting as its superuser", &e))?;
        let result = sql::set_password(&mut conn, self.names, verifier)
            .await
            .map_err(|e| {
                fail(
                    &format!("setting the password of role {}", self.names.role),
                    &e,
                )
            });
        let _ = sqlx::Connection::close(conn).await;
        result
    }

    /// Creates `extensions` in the tenant's database as the tenant's role (as on a shared
    /// server: the tenant owns them; `ExtensionFailed` when the server refuses).
    async fn ensure_extensions(
        &self,
        password: &str,
        extensions: &[String],
    ) -> Result<(), Failure> {
        let options = self.options(&self.names.role, password, &self.names.database)?;
        match sql::ensure_extensions(&options, extensions).await {
            Ok(added) => {
                if !added.is_empty() {
                    info!(extensions = ?added, "created extensions on the dedicated server");
                }
                Ok(())
            }
            Err(e) => {
                let mut failure = Failure::from_sqlx(
                    &self.server(),
                    &format!("creating extensions as role {}", self.names.role),
                    &e,
                );
                if matches!(
                    failure.reason,
                    Reason::DatabaseError | Reason::PermissionDenied | Reason::AuthenticationFailed
                ) {
                    failure.reason = Reason::ExtensionFailed;
                }
                Err(failure)
            }
        }
    }
}

/// Grows the dedicated server's volume claim to `asked` (`spec.database.storage`) when its
/// StorageClass allows it. The claim is read only when `asked` exceeds what the StatefulSet's
/// (immutable) claim template asked for, so a server that never grew costs no request; one
/// write, only while the claim asks for less. `Some` is what `DatabaseReady` reports instead
/// of the server's readiness.
async fn grow_volume(tenant: &Tenant, asked: &Quantity, state: &State) -> Result<Option<Failure>> {
    let ns = tenant.namespace_name();
    let template = state
        .stores
        .stateful_sets
        .get(&ObjectRef::new(names::SERVER).within(&ns))
        .and_then(|set| {
            set.spec
                .as_ref()?
                .volume_claim_templates
                .as_ref()?
                .first()?
                .spec
                .as_ref()?
                .resources
                .as_ref()?
                .requests
                .as_ref()?
                .get("storage")
                .cloned()
        });
    if template.is_some_and(|t| crate::quantity::same(&t.0, &asked.0)) {
        return Ok(None);
    }
    let client = &state.ctx.client;
    let claims = Api::<PersistentVolumeClaim>::namespaced(client.clone(), &ns);
    let claim_name = dedicated::claim_name();
    let Some(claim) = crate::apply::bounded(claims.get_opt(&claim_name))
        .await
        .map_err(Error::kube(format!(
            "reading PersistentVolumeClaim {ns}/{claim_name}"
        )))?
    else {
        return Ok(Some(Failure::new(
            Reason::ServerStarting,
            format!("PersistentVolumeClaim {claim_name} is not created yet"),
        )));
    };
    let class = match claim
        .spec
        .as_ref()
        .and_then(|s| s.storage_class_name.clone())
    {
        Some(class) => {
            crate::apply::bounded(Api::<StorageClass>::all(client.clone()).get_opt(&class))
                .await
                .map_err(Error::kube(format!("reading StorageClass {class}")))?
        }
        None => None,
    };
    match dedicated::volume(asked, &claim, class.as_ref()) {
        DedicatedVolume::Fits => Ok(None),
        DedicatedVolume::Report(failure) => Ok(Some(failure)),
        DedicatedVolume::Expand(size) => {
            let patch = serde_json::json!({"spec": {"resources": {"requests": {"storage": size}}}});
            crate::apply::bounded(claims.patch(
                &claim_name,
                &PatchParams {
                    field_manager: Some(super::MANAGER.into()),
                    ..PatchParams::default()
                },
                &Patch::Merge(&patch),
            ))
            .await
            .map_err(Error::kube(format!(
                "growing PersistentVolumeClaim {ns}/{claim_name} to {}",
                size.0
            )))?;
            crate::apply::count(
                &state.ctx.metrics,
                super::MANAGER,
                "PersistentVolumeClaim",
                crate::apply::Verb::Expand,
            );
            info!(claim = %claim_name, size = %size.0, "growing the dedicated server's volume");
            Ok(Some(Failure::new(
                Reason::VolumeExpanding,
                format!(
                    "PersistentVolumeClaim {claim_name} is growing to {}",
                    size.0
                ),
            )))
        }
    }
}

/// `DatabaseReady` of a dedicated server, from its StatefulSet.
pub fn stateful_set_readiness(
    tenant: &Tenant,
    live: Option<&StatefulSet>,
) -> Result<Observation, Failure> {
    let what = format!("StatefulSet {}", names::SERVER);
    let Some(live) = live else {
        return Err(Failure::new(
            Reason::ServerStarting,
            format!("{what} was just created"),
        ));
    };
    if tenant.spec.suspended {
        return Ok(ready(
            Reason::Suspended,
            format!("{what} is scaled to zero while the tenant is suspended; its volume is kept"),
        ));
    }
    let status = live.status.clone().unwrap_or_default();
    let generation = live.metadata.generation.unwrap_or(0);
    if status.observed_generation.unwrap_or(0) < generation {
        return Err(Failure::new(
            Reason::ServerStarting,
            format!("{what}: the StatefulSet controller has not seen the latest spec yet"),
        ));
    }
    let ready_replicas = status.ready_replicas.unwrap_or(0);
    if ready_replicas < 1 {
        return Err(Failure::new(
            Reason::ServerNotReady,
            format!("{what}: {ready_replicas}/1 pods ready"),
        ));
    }
    if status.update_revision.is_some() && status.current_revision != status.update_revision {
        return Err(Failure::new(
            Reason::RolloutInProgress,
            format!("{what}: rolling out a new revision"),
        ));
    }
    Ok(ready(
        Reason::Provisioned,
        format!(
            "dedicated server {} is ready",
            db_desired::dedicated_endpoint(tenant).host
        ),
    ))
}

/// Cleanup by `spec.database.deletionPolicy`: `Retain` disables the role's login (shared)
/// or keeps the volume (dedicated); `Delete` drops the database and role (shared) or lets
/// the volume go with the namespace (dedicated).
pub async fn cleanup(tenant: &Tenant, state: &State) -> Result<()> {
    let name = tenant.name_any();
    let Some(spec) = tenant.spec.database.as_ref() else {
        return Ok(());
    };
    let result = match tenant.spec.tier {
        Tier::Shared => cleanup_shared(tenant, spec, state).await,
        Tier::Dedicated => cleanup_dedicated(tenant, spec, state).await,
    };
    if result.is_ok() {
        state.ctx.databases.release(&name);
    }
    result
}

async fn cleanup_shared(tenant: &Tenant, spec: &DatabaseSpec, state: &State) -> Result<()> {
    let ctx = &state.ctx;
    let Some(server_name) = tenant
        .status
        .as_ref()
        .and_then(|s| s.database.as_ref())
        .and_then(|d| d.server.clone())
    else {
        return Ok(()); // never placed: nothing exists
    };
    let Ok(names) = Names::for_tenant(&tenant.name_any()) else {
        return Ok(()); // no identifier, so nothing was ever created
    };
    let Some(server) = ctx
        .config
        .database
        .servers
        .iter()
        .find(|s| s.name == server_name)
    else {
        return Err(Error::DatabaseCleanup(format!(
            "server {server_name} is no longer configured; restore it, or release the Tenant with {}=true",
            labels::RELEASE
        )));
    };
    let failed = |f: Failure| Error::DatabaseCleanup(f.message);
    let handle = ctx
        .databases
        .connect(server, &ctx.client)
        .await
        .map_err(failed)?;
    let sql_failed = |doing: &str, e: sqlx::Error| {
        Error::DatabaseCleanup(Failure::from_sqlx(&server.name, doing, &e).message)
    };
    let (pool, admin) = (&handle.pool, &handle.admin);
    let uid = tenant.uid().unwrap_or_default();
    let marker = ownership_marker(&tenant.name_any(), &uid);
    let role = sql::role(pool, &names)
        .await
        .map_err(|e| sql_failed("reading the role", e))?;
    let ours = role
        .as_ref()
        .is_some_and(|r| r.comment.as_deref() == Some(marker.as_str()));
    match spec.deletion_policy {
        DeletionPolicy::Delete => {
            if role.is_some() && !ours {
                warn!(role = %names.role, "role is not this Tenant's; left alone");
                return Ok(());
            }
            // Also when the role is already gone: a database may be left from a cleanup
            // that stopped halfway, and it is only dropped if its owner was ours.
            if role.is_some() {
                sql::drop_all(pool, admin, &names)
                    .await
                    .map_err(|e| sql_failed("dropping the database and role", e))?;
                info!(database = %names.database, "database and role dropped (deletionPolicy Delete)");
            }
        }
        DeletionPolicy::Retain => {
            if let Some(role) = role.filter(|_| ours) {
                if role.can_login {
                    sql::alter_role(pool, &names, false, role.connection_limit, None)
                        .await
                        .map_err(|e| sql_failed("disabling login", e))?;
                }
                sql::terminate_sessions(admin, &names)
                    .await
                    .map_err(|e| sql_failed("ending sessions", e))?;
                info!(database = %names.database, "database retained, login disabled (deletionPolicy Retain)");
            }
        }
    }
    Ok(())
}

async fn cleanup_dedicated(tenant: &Tenant, spec: &DatabaseSpec, state: &State) -> Result<()> {
    if spec.deletion_policy == DeletionPolicy::Delete {
        return Ok(()); // the volume goes with the namespace
    }
    // Retain: the claim goes with the namespace, so its volume must not.
    let client = &state.ctx.client;
    let ns = tenant.namespace_name();
    let claims = Api::<PersistentVolumeClaim>::namespaced(client.clone(), &ns)
        .list(&ListParams::default().labels(&format!("{}={}", labels::TENANT, tenant.name_any())))
        .await
        .map_err(Error::kube(format!("listing volume claims in {ns}")))?;
    let volumes = Api::<PersistentVolume>::all(client.clone());
    for claim in claims {
        let Some(volume) = claim.spec.as_ref().and_then(|s| s.volume_name.clone()) else {
            continue;
        };
        let patch = serde_json::json!({
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {
                "name": volume,
                "labels": { labels::TENANT: tenant.name_any() },
                "annotations": { "landlord.dev/retained-from": format!("{ns}/{}", claim.name_any()) },
            },
            "spec": { "persistentVolumeReclaimPolicy": "Retain" },
        });
        // A partial apply of a few fields of an object Landlord does not own: not an
        // `apply::ensure`, but bounded and counted like every write.
        let manager = "landlord/tenant-retain";
        crate::apply::bounded(volumes.patch(
            &volume,
            &PatchParams::apply(manager).force(),
            &Patch::Apply(&patch),
        ))
        .await
        .map_err(Error::kube(format!("retaining volume {volume}")))?;
        crate::apply::count(
            &state.ctx.metrics,
            manager,
            "PersistentVolume",
            crate::apply::Verb::Apply,
        );
        info!(volume = %volume, "volume retained (deletionPolicy Retain)");
    }
    Ok(())
}
