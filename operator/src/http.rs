//! The operator's own HTTP endpoints: `/healthz` (the process is alive), `/readyz` (its CRDs
//! are installed and it is connected) and `/metrics` (Prometheus text format).

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
    if state.health.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, format!("ok (leader: {leader})"))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "waiting for the Landlord CRDs".into(),
        )
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
