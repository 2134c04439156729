//! The statements Landlord runs on a shared PostgreSQL server for one tenant. Identifiers
//! come from [`super::identifier`] and are always quoted; the only literal that carries a
//! credential is a SCRAM verifier.

use sqlx::{Connection, Executor, PgConnection, PgPool, Row, postgres::PgConnectOptions};

use super::identifier::{Names, quote_ident, quote_literal};

/// A role as the server has it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleState {
    pub can_login: bool,
    pub connection_limit: i32,
    pub comment: Option<String>,
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
        "SELECT rolcanlogin, rolconnlimit, shobj_description(oid, 'pg_authid') \
         FROM pg_roles WHERE rolname = $1",
    )
    .bind(&names.role)
    .fetch_optional(pool)
    .await?;
    row.map(|r| {
        Ok(RoleState {
            can_login: r.try_get(0)?,
            connection_limit: r.try_get(1)?,
            comment: r.try_get(2)?,
        })
    })
    .transpose()
}

pub async fn database(pool: &PgPool, names: &Names) -> Result<Option<DatabaseState>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT pg_get_userbyid(d.datdba), EXISTS (SELECT 1 FROM \
         aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a WHERE a.grantee = 0) \
         FROM pg_database d WHERE d.datname = $1",
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

fn literal(value: &str) -> Result<String, sqlx::Error> {
    quote_literal(value).ok_or_else(|| sqlx::Error::Protocol("NUL byte in a literal".into()))
}

fn login(can_login: bool) -> &'static str {
    if can_login { "LOGIN" } else { "NOLOGIN" }
}

/// Creates the role with its verifier, marks it as the tenant's and makes the admin a
/// member (needed to create a database owned by it without being a superuser): one
/// transaction, so a crash never leaves an unmarked role behind.
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
    tx.execute(format!("GRANT {role} TO CURRENT_USER").as_str())
        .await?;
    tx.commit().await
}

/// Re-marks a role and its database as this tenant's (adoption of a retained database).
pub async fn mark(
    pool: &PgPool,
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
    pool.execute(format!("GRANT {} TO CURRENT_USER", quote_ident(&names.role)).as_str())
        .await?;
    if database {
        pool.execute(
            format!(
                "COMMENT ON DATABASE {} IS {}",
                quote_ident(&names.database),
                literal(marker)?
            )
            .as_str(),
        )
        .await?;
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

/// Ends the role's open sessions (after its login was disabled).
pub async fn terminate_sessions(pool: &PgPool, names: &Names) -> Result<u64, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE usename = $1 AND pid <> pg_backend_pid()",
    )
    .bind(&names.role)
    .fetch_all(pool)
    .await?;
    Ok(rows.len() as u64)
}

/// Creates the database owned by the role, marks it and closes it to PUBLIC. Callers
/// serialise this per server.
pub async fn create_database(
    pool: &PgPool,
    names: &Names,
    marker: &str,
) -> Result<(), sqlx::Error> {
    let database = quote_ident(&names.database);
    pool.execute(
        format!(
            "CREATE DATABASE {database} OWNER {} ENCODING 'UTF8'",
            quote_ident(&names.role)
        )
        .as_str(),
    )
    .await?;
    pool.execute(format!("COMMENT ON DATABASE {database} IS {}", literal(marker)?).as_str())
        .await?;
    revoke_public(pool, names).await
}

/// `REVOKE ALL ON DATABASE … FROM PUBLIC`: only the owner connects.
pub async fn revoke_public(pool: &PgPool, names: &Names) -> Result<(), sqlx::Error> {
    pool.execute(
        format!(
            "REVOKE ALL ON DATABASE {} FROM PUBLIC",
            quote_ident(&names.database)
        )
        .as_str(),
    )
    .await?;
    Ok(())
}

/// Creates the missing extensions inside the tenant's database, as the tenant's role (so the
/// tenant owns them; trusted extensions need no superuser). Returns those created.
pub async fn ensure_extensions(
    admin: &PgConnectOptions,
    names: &Names,
    extensions: &[String],
) -> Result<Vec<String>, sqlx::Error> {
    let mut conn = PgConnection::connect_with(&admin.clone().database(&names.database)).await?;
    let present: Vec<String> = sqlx::query_scalar("SELECT extname::text FROM pg_extension")
        .fetch_all(&mut conn)
        .await?;
    let missing: Vec<String> = extensions
        .iter()
        .filter(|e| !present.contains(e))
        .cloned()
        .collect();
    if !missing.is_empty() {
        conn.execute(format!("SET ROLE {}", quote_ident(&names.role)).as_str())
            .await?;
        for extension in &missing {
            conn.execute(
                format!("CREATE EXTENSION IF NOT EXISTS {}", quote_ident(extension)).as_str(),
            )
            .await?;
        }
    }
    conn.close().await?;
    Ok(missing)
}

/// Drops the database (closing its sessions) and then the role. Each step is skipped when
/// already done, so a cleanup interrupted halfway finishes on the next attempt.
pub async fn drop_all(pool: &PgPool, names: &Names) -> Result<(), sqlx::Error> {
    pool.execute(
        format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            quote_ident(&names.database)
        )
        .as_str(),
    )
    .await?;
    pool.execute(format!("DROP ROLE IF EXISTS {}", quote_ident(&names.role)).as_str())
        .await?;
    Ok(())
}
