//! The operator's own HTTP endpoints: `/healthz` (the process is alive), `/readyz` (its CRDs
//! are installed, it is connected and, when it leads, every controller cache has synced; a
//! 503 names the caches that have not) and `/metrics` (Prometheus text format).

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use axum::{Router, extract::State, http::StatusCode, routing::get};
use prometheus::{Encoder, Registry, TextEncoder};

/// What the probes report.
#[derive(Default)]
pub struct Health {
    /// The CRDs are established and the client works.
    pub ready: AtomicBool,
    /// This replica holds the leader lease.
    pub leader: AtomicBool,
    /// The controllers' caches (registered once this replica leads).
    pub caches: Arc<landlord_controllers::caches::CacheSync>,
}

#[derive(Clone)]
struct AppState {
    health: Arc<Health>,
    registry: Registry,
}

pub fn router(health: Arc<Health>, registry: Registry) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(AppState { health, registry })
}

async fn readyz(State(state): State<AppState>) -> (StatusCode, String) {
    let leader = state.health.leader.load(Ordering::Relaxed);
    let pending = state.health.caches.pending();
    if !state.health.ready.load(Ordering::Relaxed) {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "waiting for the Landlord CRDs".into(),
        )
    } else if !pending.is_empty() {
        // A cache that stays here has a watch that keeps failing, usually a missing RBAC
        // right; the log has the watch's error.
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("caches not synced: {}", pending.join(", ")),
        )
    } else {
        (StatusCode::OK, format!("ok (leader: {leader})"))
    }
}

async fn metrics(State(state): State<AppState>) -> (StatusCode, String) {
    let mut buffer = Vec::new();
    match TextEncoder::new().encode(&state.registry.gather(), &mut buffer) {
        Ok(()) => (
            StatusCode::OK,
            String::from_utf8_lossy(&buffer).into_owned(),
        ),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// Serves the endpoints until the process ends.
pub async fn serve(
    address: SocketAddr,
    health: Arc<Health>,
    registry: Registry,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(address).await?;
    tracing::info!(address = %listener.local_addr()?, "serving /healthz, /readyz and /metrics");
    axum::serve(listener, router(health, registry)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn probe(health: &Arc<Health>) -> (StatusCode, String) {
        readyz(State(AppState {
            health: health.clone(),
            registry: Registry::new(),
        }))
        .await
    }

    #[tokio::test]
    async fn readyz_names_the_caches_that_have_not_synced() {
        let health = Arc::new(Health::default());
        assert_eq!(probe(&health).await.0, StatusCode::SERVICE_UNAVAILABLE);
        health.ready.store(true, Ordering::Relaxed);
        health.leader.store(true, Ordering::Relaxed);
        health.caches.register("tenant/StatefulSet");
        assert_eq!(
            probe(&health).await,
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "caches not synced: tenant/StatefulSet".to_string()
            )
        );
        health.caches.synced("tenant/StatefulSet");
        assert_eq!(
            probe(&health).await,
            (StatusCode::OK, "ok (leader: true)".to_string())
        );
    }
}
