//! The statements Landlord runs on a shared PostgreSQL server for one tenant.
//!
//! # The rule: nothing a tenant can change runs with the admin's rights
//!
//! A tenant owns its role and its database, so it can change what a name means inside that
//! database: objects in `public` that shadow catalog names, `ALTER DATABASE … SET
//! search_path`, views, triggers, operators. The operator's admin holds CREATEROLE, so any
//! tenant code that ran in its session could hand the tenant every other tenant's role.
//! Every statement below therefore follows four rules:
//!
//! 1. **The admin never enters a tenant database.** Admin sessions connect only to the
//!    server's maintenance database and pin `search_path=pg_catalog,pg_temp` as a startup
//!    option ([`super::servers`]), which outranks database and role settings; catalog
//!    objects and functions are schema-qualified all the same.
//! 2. **Work inside a tenant database is done as the tenant.** [`ensure_extensions`] logs in
//!    as the tenant's role with the tenant's own password: whatever the tenant planted runs
//!    with the tenant's rights, which it has anyway.
//! 3. **Membership only while needed, never inherited at rest.** The admin is made a member
//!    of a tenant role only around the statements that need the owner's rights (creating,
//!    closing and dropping the database, ending sessions), acts through `SET ROLE` on a
//!    connection of its own in the maintenance database, and revokes the membership after.
//!    A membership left behind (a crash in between, or an operator before this rule) shows
//!    in [`RoleState::admin_inherits`] and is revoked by the next reconcile.
//! 4. **Quoted identifiers, escaped literals**; the only literal carrying a credential is a
//!    SCRAM verifier.

use sqlx::{Connection, Executor, PgConnection, PgPool, Row, postgres::PgConnectOptions};

use super::identifier::{Names, quote_ident, quote_literal};

/// A role as the server has it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleState {
    pub can_login: bool,
    pub connection_limit: i32,
    pub comment: Option<String>,
    /// Whether the admin (not a superuser) holds the role's privileges through an inherited
    /// membership: rule 3 says it must not.
    pub admin_inherits: bool,
}

/// A database as the server has it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatabaseState {
    pub owner: String,
    /// Whether PUBLIC still has any privilege on it (CONNECT, TEMPORARY).
    pub public_access: bool,
}

pub async fn role(pool: &PgPool, names: &Names) -> Result<Option<RoleState>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT r.rolcanlogin, r.rolconnlimit, pg_catalog.shobj_description(r.oid, 'pg_authid'), \
         NOT a.rolsuper AND pg_catalog.pg_has_role(a.oid, r.oid, 'USAGE') \
         FROM pg_catalog.pg_roles r, pg_catalog.pg_roles a \
         WHERE r.rolname = $1 AND a.rolname = CURRENT_USER",
    )
    .bind(&names.role)
    .fetch_optional(pool)
    .await?;
    row.map(|r| {
        Ok(RoleState {
            can_login: r.try_get(0)?,
            connection_limit: r.try_get(1)?,
            comment: r.try_get(2)?,
            admin_inherits: r.try_get(3)?,
        })
    })
    .transpose()
}

pub async fn database(pool: &PgPool, names: &Names) -> Result<Option<DatabaseState>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT pg_catalog.pg_get_userbyid(d.datdba), EXISTS (SELECT 1 FROM \
         pg_catalog.aclexplode(coalesce(d.datacl, pg_catalog.acldefault('d', d.datdba))) a \
         WHERE a.grantee = 0) \
         FROM pg_catalog.pg_database d WHERE d.datname = $1",
    )
    .bind(&names.database)
    .fetch_optional(pool)
    .await?;
    row.map(|r| {
        Ok(DatabaseState {
            owner: r.try_get(0)?,
            public_access: r.try_get(1)?,
        })
    })
    .transpose()
}

/// How many connections tenants may hold on a server without locking the operator out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionBudget {
    /// The admin has slots no tenant can take (a superuser's reserved slots, or PostgreSQL
    /// 16's `reserved_connections` with `pg_use_reserved_connections`): no budget applies.
    pub reserved_for_admin: bool,
    /// Connections non-superusers may open: `max_connections` less the reserved slots.
    pub available: i64,
    /// The connection limits of the other Landlord roles on the server, summed.
    pub committed: i64,
}

impl ConnectionBudget {
    /// Whether a role of `limit` connections fits beside the others while leaving
    /// `operator` connections to the admin.
    pub fn fits(&self, limit: i32, operator: u32) -> bool {
        self.reserved_for_admin
            || self.committed + i64::from(limit) + i64::from(operator) <= self.available
    }
}

/// Reads the server's connection budget; `names`' own role is left out of `committed`.
pub async fn connection_budget(
    pool: &PgPool,
    names: &Names,
    operator: u32,
) -> Result<ConnectionBudget, sqlx::Error> {
    let row = sqlx::query(
        "SELECT \
           a.rolsuper OR (pg_catalog.current_setting('reserved_connections', true)::int >= $2 \
             AND EXISTS (SELECT 1 FROM pg_catalog.pg_roles u \
                         WHERE u.rolname = 'pg_use_reserved_connections' \
                           AND pg_catalog.pg_has_role(a.oid, u.oid, 'USAGE'))), \
           pg_catalog.current_setting('max_connections')::int \
             - pg_catalog.current_setting('superuser_reserved_connections')::int \
             - coalesce(pg_catalog.current_setting('reserved_connections', true)::int, 0), \
           (SELECT coalesce(sum(CASE WHEN r.rolconnlimit < 0 THEN 1000000 \
                                     ELSE r.rolconnlimit END), 0)::bigint \
              FROM pg_catalog.pg_roles r \
             WHERE r.rolname <> $1 \
               AND pg_catalog.shobj_description(r.oid, 'pg_authid') LIKE 'landlord.dev %') \
         FROM pg_catalog.pg_roles a WHERE a.rolname = CURRENT_USER",
    )
    .bind(&names.role)
    .bind(i32::try_from(operator).unwrap_or(i32::MAX))
    .fetch_one(pool)
    .await?;
    Ok(ConnectionBudget {
        // NULL where the server has no `reserved_connections` (before PostgreSQL 16).
        reserved_for_admin: row.try_get::<Option<bool>, _>(0)?.unwrap_or(false),
        available: i64::from(row.try_get::<i32, _>(1)?),
        committed: row.try_get(2)?,
    })
}

fn literal(value: &str) -> Result<String, sqlx::Error> {
    quote_literal(value).ok_or_else(|| sqlx::Error::Protocol("NUL byte in a literal".into()))
}

fn login(can_login: bool) -> &'static str {
    if can_login { "LOGIN" } else { "NOLOGIN" }
}

/// Creates the role with its verifier and marks it as the tenant's, in one transaction, so
/// a crash never leaves an unmarked role behind. The admin does not become a member
/// (rule 3).
pub async fn create_role(
    pool: &PgPool,
    names: &Names,
    verifier: &str,
    can_login: bool,
    connection_limit: i32,
    marker: &str,
) -> Result<(), sqlx::Error> {
    let role = quote_ident(&names.role);
    let mut tx = pool.begin().await?;
    // INHERIT (the default) is needed: a database owner reaches the `public` schema through
    // the implicit `pg_database_owner` membership.
    tx.execute(
        format!(
            "CREATE ROLE {role} {} NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION \
             NOBYPASSRLS CONNECTION LIMIT {connection_limit} PASSWORD {}",
            login(can_login),
            literal(verifier)?
        )
        .as_str(),
    )
    .await?;
    tx.execute(format!("COMMENT ON ROLE {role} IS {}", literal(marker)?).as_str())
        .await?;
    tx.commit().await
}

/// The admin acting with a tenant role's rights for a few statements (rule 3): a connection
/// of its own in the maintenance database, a membership granted on entry and revoked by
/// [`AsRole::end`].
struct AsRole {
    conn: PgConnection,
    role: String,
}

impl AsRole {
    async fn begin(admin: &PgConnectOptions, names: &Names) -> Result<Self, sqlx::Error> {
        let mut conn = super::servers::open_session(admin).await?;
        let role = quote_ident(&names.role);
        conn.execute(format!("GRANT {role} TO CURRENT_USER").as_str())
            .await?;
        Ok(Self { conn, role })
    }

    async fn set_role(&mut self) -> Result<(), sqlx::Error> {
        self.conn
            .execute(format!("SET ROLE {}", self.role).as_str())
            .await?;
        Ok(())
    }

    async fn execute(&mut self, statement: &str) -> Result<(), sqlx::Error> {
        self.conn.execute(statement).await?;
        Ok(())
    }

    /// Drops the rights again; `result` (of the statements in between) wins over a failure
    /// to revoke, which the next reconcile sees and repairs.
    async fn end<T>(mut self, result: Result<T, sqlx::Error>) -> Result<T, sqlx::Error> {
        let ended = async {
            self.conn.execute("RESET ROLE").await?;
            self.conn
                .execute(format!("REVOKE {} FROM CURRENT_USER", self.role).as_str())
                .await?;
            self.conn.close().await
        }
        .await;
        let value = result?;
        ended?;
        Ok(value)
    }
}

/// Runs one statement as the tenant's role (the owner of its database), through [`AsRole`].
async fn as_owner(
    admin: &PgConnectOptions,
    names: &Names,
    statement: &str,
) -> Result<(), sqlx::Error> {
    let mut owner = AsRole::begin(admin, names).await?;
    let result = async {
        owner.set_role().await?;
        owner.execute(statement).await
    }
    .await;
    owner.end(result).await
}

/// Revokes a membership of the admin in the tenant's role (left by a crash, or by an
/// operator from before rule 3).
pub async fn revoke_membership(pool: &PgPool, names: &Names) -> Result<(), sqlx::Error> {
    pool.execute(format!("REVOKE {} FROM CURRENT_USER", quote_ident(&names.role)).as_str())
        .await?;
    Ok(())
}

/// Re-marks a role, and its database when `database`, as this tenant's (adoption of a
/// retained database).
pub async fn mark(
    pool: &PgPool,
    admin: &PgConnectOptions,
    names: &Names,
    marker: &str,
    database: bool,
) -> Result<(), sqlx::Error> {
    pool.execute(
        format!(
            "COMMENT ON ROLE {} IS {}",
            quote_ident(&names.role),
            literal(marker)?
        )
        .as_str(),
    )
    .await?;
    if database {
        let statement = format!(
            "COMMENT ON DATABASE {} IS {}",
            quote_ident(&names.database),
            literal(marker)?
        );
        as_owner(admin, names, &statement).await?;
    }
    Ok(())
}

/// Brings an existing role to the wanted login, limit and (when given) password.
pub async fn alter_role(
    pool: &PgPool,
    names: &Names,
    can_login: bool,
    connection_limit: i32,
    verifier: Option<&str>,
) -> Result<(), sqlx::Error> {
    let password = match verifier {
        Some(v) => format!(" PASSWORD {}", literal(v)?),
        None => String::new(),
    };
    pool.execute(
        format!(
            "ALTER ROLE {} {} CONNECTION LIMIT {connection_limit}{password}",
            quote_ident(&names.role),
            login(can_login)
        )
        .as_str(),
    )
    .await?;
    Ok(())
}

/// Sets the role's password to the SCRAM `verifier` (the password itself never reaches the
/// server or its log), in a session of a role that may: the dedicated server's superuser.
pub async fn set_password(
    conn: &mut PgConnection,
    names: &Names,
    verifier: &str,
) -> Result<(), sqlx::Error> {
    conn.execute(
        format!(
            "ALTER ROLE {} PASSWORD {}",
            quote_ident(&names.role),
            literal(verifier)?
        )
        .as_str(),
    )
    .await?;
    Ok(())
}

/// Ends the role's open sessions (after its login was disabled), acting as the role, which
/// may signal its own backends.
pub async fn terminate_sessions(
    admin: &PgConnectOptions,
    names: &Names,
) -> Result<u64, sqlx::Error> {
    let mut member = AsRole::begin(admin, names).await?;
    let result = async {
        member.set_role().await?;
        let rows = sqlx::query(
            "SELECT pg_catalog.pg_terminate_backend(a.pid) FROM pg_catalog.pg_stat_activity a \
             WHERE a.usename = $1 AND a.pid <> pg_catalog.pg_backend_pid()",
        )
        .bind(&names.role)
        .fetch_all(&mut member.conn)
        .await?;
        Ok(rows.len() as u64)
    }
    .await;
    member.end(result).await
}

/// Creates the database owned by the role (from `template0`, so nothing planted in
/// `template1` is copied), marks it and closes it to PUBLIC. Callers serialise this per
/// server.
pub async fn create_database(
    admin: &PgConnectOptions,
    names: &Names,
    marker: &str,
) -> Result<(), sqlx::Error> {
    let database = quote_ident(&names.database);
    let comment = format!("COMMENT ON DATABASE {database} IS {}", literal(marker)?);
    let mut member = AsRole::begin(admin, names).await?;
    let result = async {
        // CREATEDB is the admin's, so this runs before SET ROLE; OWNER needs the membership.
        member
            .execute(&format!(
                "CREATE DATABASE {database} OWNER {} TEMPLATE template0 ENCODING 'UTF8'",
                quote_ident(&names.role)
            ))
            .await?;
        member.set_role().await?;
        member.execute(&comment).await?;
        member
            .execute(&format!("REVOKE ALL ON DATABASE {database} FROM PUBLIC"))
            .await
    }
    .await;
    member.end(result).await
}

/// `REVOKE ALL ON DATABASE … FROM PUBLIC`, as the owner: only the owner connects.
pub async fn revoke_public(admin: &PgConnectOptions, names: &Names) -> Result<(), sqlx::Error> {
    let statement = format!(
        "REVOKE ALL ON DATABASE {} FROM PUBLIC",
        quote_ident(&names.database)
    );
    as_owner(admin, names, &statement).await
}

/// Creates the missing extensions inside the tenant's database (in schema `public`) in a
/// session authenticated as the tenant's role (rule 2): the tenant owns them, and trusted
/// extensions need no superuser. `tenant` carries the role's own credentials. Returns
/// those created.
pub async fn ensure_extensions(
    tenant: &PgConnectOptions,
    extensions: &[String],
) -> Result<Vec<String>, sqlx::Error> {
    let mut conn = super::servers::open_session(tenant).await?;
    let present: Vec<String> =
        sqlx::query_scalar("SELECT e.extname::text FROM pg_catalog.pg_extension e")
            .fetch_all(&mut conn)
            .await?;
    let missing: Vec<String> = extensions
        .iter()
        .filter(|e| !present.contains(e))
        .cloned()
        .collect();
    for extension in &missing {
        conn.execute(
            format!(
                "CREATE EXTENSION IF NOT EXISTS {} SCHEMA public",
                quote_ident(extension)
            )
            .as_str(),
        )
        .await?;
    }
    conn.close().await?;
    Ok(missing)
}

/// Drops the database (closing its sessions, as its owner) and then the role. Each step is
/// skipped when already done, so a cleanup interrupted halfway finishes on the next
/// attempt.
pub async fn drop_all(
    pool: &PgPool,
    admin: &PgConnectOptions,
    names: &Names,
) -> Result<(), sqlx::Error> {
    let statement = format!(
        "DROP DATABASE IF EXISTS {} WITH (FORCE)",
        quote_ident(&names.database)
    );
    as_owner(admin, names, &statement).await?;
    pool.execute(format!("DROP ROLE IF EXISTS {}", quote_ident(&names.role)).as_str())
        .await?;
    Ok(())
}
