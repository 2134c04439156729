//! `GET /v1/tenants/{name}/connection`: where a tenant's services connect (its database,
//! its NATS topics, its URLs) and, for a caller RBAC lets read the tenant's Secrets, the
//! credentials themselves.
//!
//! The places come from the Tenant's status (what the operator provisioned). The
//! credentials are read from the Secrets the status names (`landlord-database`,
//! `landlord-nats`) **as the caller**: a tenant admin (whose Role reads Secrets in its
//! namespace) gets them, a viewer or a portal without that right gets the places only, with
//! `credentials: "NotPermitted"`. The answer is `Cache-Control: no-store`, and never logged.

use axum::{
    Json,
    extract::{Path, State},
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use landlord_crds::tenant::TopicStatus;
use serde::Serialize;

use super::{ApiState, auth, problem::Problem, tenants};

use landlord_controllers::tenant::topics::SECRET as NATS_SECRET;

/// Whether an answer carries credentials.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub enum Credentials {
    /// Included: the caller may read the Secret.
    Included,
    /// Left out: RBAC does not let the caller read the Secret.
    NotPermitted,
    /// The Secret does not exist (yet).
    #[default]
    NotProvisioned,
}

/// A tenant's connection details.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Connection {
    /// The tenant's namespace.
    pub namespace: Option<String>,
    /// Its PostgreSQL database, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<DatabaseConnection>,
    /// Its NATS account, when it has topics.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nats: Option<NatsConnection>,
    /// URLs the tenant is served on.
    pub endpoints: Vec<String>,
}

/// Where the tenant's database is, and how to log in.
#[derive(Clone, Debug, Default, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseConnection {
    pub host: Option<String>,
    pub port: Option<i32>,
    /// The database's name.
    pub dbname: Option<String>,
    /// The Secret in the tenant's namespace with `host`, `port`, `dbname`, `user`,
    /// `password` and `uri`.
    pub secret: Option<String>,
    pub credentials: Credentials,
    /// The role to log in as (with credentials only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// A `postgresql://` URI with the password (with credentials only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
}

/// The tenant's topics and its NATS credentials.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NatsConnection {
    pub topics: Vec<TopicStatus>,
    /// The Secret in the tenant's namespace with `url` and `creds`.
    pub secret: String,
    pub credentials: Credentials,
    /// The server's URL (with credentials only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// A NATS `.creds` file: the user JWT and its seed (with credentials only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub creds: Option<String>,
}

/// The Secret `name` in `namespace`, read as the caller.
async fn secret(
    state: &ApiState,
    namespace: &str,
    name: &str,
) -> Result<(Credentials, Option<Secret>), Problem> {
    let api = Api::<Secret>::namespaced(auth::caller_client(&state.kube), namespace);
    match api.get_opt(name).await {
        Ok(Some(secret)) => Ok((Credentials::Included, Some(secret))),
        Ok(None) => Ok((Credentials::NotProvisioned, None)),
        Err(kube::Error::Api(status)) if status.code == 403 => {
            Ok((Credentials::NotPermitted, None))
        }
        Err(e) => Err(Problem::from_kube(
            e,
            &format!("reading Secret {namespace}/{name}"),
        )),
    }
}

fn value(secret: Option<&Secret>, key: &str) -> Option<String> {
    let bytes = secret?.data.as_ref()?.get(key)?;
    String::from_utf8(bytes.0.clone()).ok()
}

/// `GET /v1/tenants/{name}/connection`.
pub async fn connection(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Response, Problem> {
    let tenant = tenants::visible(&state, &name).await?;
    let status = tenant.status.clone().unwrap_or_default();
    let namespace = status.namespace.clone();
    let database = match (&status.database, &namespace) {
        (Some(db), Some(ns)) => {
            let mut connection = DatabaseConnection {
                host: db.host.clone(),
                port: db.port,
                dbname: db.name.clone(),
                secret: db.secret.clone(),
                credentials: Credentials::NotProvisioned,
                ..Default::default()
            };
            if let Some(secret_name) = &db.secret {
                let (credentials, secret) = secret(&state, ns, secret_name).await?;
                connection.credentials = credentials;
                connection.user = value(secret.as_ref(), "user");
                connection.password = value(secret.as_ref(), "password");
                connection.uri = value(secret.as_ref(), "uri");
            }
            Some(connection)
        }
        _ => None,
    };
    let nats = match (status.topics.is_empty(), &namespace) {
        (false, Some(ns)) => {
            let (credentials, secret) = secret(&state, ns, NATS_SECRET).await?;
            Some(NatsConnection {
                topics: status.topics.clone(),
                secret: NATS_SECRET.into(),
                credentials,
                url: value(secret.as_ref(), "url"),
                creds: value(secret.as_ref(), "creds"),
            })
        }
        _ => None,
    };
    let mut response = Json(Connection {
        namespace,
        database,
        nats,
        endpoints: status.endpoints,
    })
    .into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
