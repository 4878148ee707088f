//! What a worker answers on `worker.listen`: `/healthz` for container and supervisor health
//! checks, `/metrics` for Prometheus. No other path, and nothing that touches the job queue.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use serde_json::json;
use service::metrics::CONTENT_TYPE;
use tokio::net::TcpListener;

use super::metrics::Metrics;

#[derive(Clone)]
struct Status {
    instance: Arc<str>,
    metrics: Arc<Metrics>,
}

/// Serves until the process ends.
pub async fn serve(listener: TcpListener, instance: Arc<str>, metrics: Arc<Metrics>) {
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(show_metrics))
        .fallback(not_found)
        .with_state(Status { instance, metrics });
    if let Err(error) = axum::serve(listener, app).await {
        tracing::error!(%error, "the status listener stopped");
    }
}

async fn healthz(State(status): State<Status>) -> Json<serde_json::Value> {
    Json(json!({"status": "ok", "instance": &*status.instance}))
}

async fn show_metrics(State(status): State<Status>) -> Response {
    (
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        status.metrics.encode(),
    )
        .into_response()
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"message": "not found: a worker answers /healthz and /metrics only"})),
    )
        .into_response()
}
