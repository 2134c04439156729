//! Health of the shared servers: a new session per server at a fixed interval. When a
//! server goes down or comes back, every Tenant placed on it is reconciled at once, so
//! `DatabaseReady` tells the truth within one interval and tenants recover by themselves.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use futures::channel::mpsc::Sender;
use kube::{
    ResourceExt,
    runtime::reflector::{ObjectRef, Store},
};
use landlord_crds::Tenant;
use tracing::{info, warn};

use crate::Context;

/// How long one probe may take before the server counts as down.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Whether the server takes a new session and answers on it within [`PROBE_TIMEOUT`]: what
/// a tenant's service needs. A pooled connection would not do: a server whose postmaster
/// hangs keeps answering on the sessions it already has. The statement runs in the
/// maintenance database with the pinned `search_path`, like every admin session.
async fn probe(admin: &sqlx::postgres::PgConnectOptions) -> bool {
    use sqlx::Connection;
    let session = async {
        let mut conn = super::servers::open_session(admin).await?;
        sqlx::query("SELECT 1").execute(&mut conn).await?;
        conn.close().await
    };
    matches!(
        tokio::time::timeout(PROBE_TIMEOUT, session).await,
        Ok(Ok(()))
    )
}

/// Probes every configured server each `interval` until the channel closes.
pub async fn watch(
    ctx: Arc<Context>,
    tenants: Store<Tenant>,
    mut trigger: Sender<ObjectRef<Tenant>>,
    interval: Duration,
) {
    let mut up: BTreeMap<String, bool> = BTreeMap::new();
    loop {
        for server in &ctx.config.database.servers {
            let healthy = match ctx.databases.connect(server, &ctx.client).await {
                Ok(handle) => probe(&handle.admin).await,
                Err(_) => false,
            };
            ctx.metrics
                .database_server_up
                .with_label_values(&[&server.name])
                .set(i64::from(healthy));
            ctx.databases.set_up(&server.name, healthy);
            let before = up.insert(server.name.clone(), healthy);
            if before.is_none() || before == Some(healthy) {
                continue;
            }
            if healthy {
                info!(server = %server.name, "database server is back");
            } else {
                warn!(server = %server.name, "database server is unreachable");
            }
            for tenant in tenants.state() {
                let placed = tenant
                    .status
                    .as_ref()
                    .and_then(|s| s.database.as_ref())
                    .and_then(|d| d.server.as_deref())
                    == Some(server.name.as_str());
                if placed
                    && trigger
                        .try_send(ObjectRef::new(&tenant.name_any()))
                        .is_err()
                {
                    // Full: the tenant's own recheck picks it up. Closed: shutting down.
                    if trigger.is_closed() {
                        return;
                    }
                }
            }
        }
        tokio::time::sleep(interval).await;
    }
}
