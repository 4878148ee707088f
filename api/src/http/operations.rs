//! What operators and load balancers ask a replica: is it alive, can it serve.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::error::ApiError;

#[derive(Serialize, ToSchema)]
pub struct Status {
    #[schema(example = "ok")]
    status: &'static str,
    /// The replica's configured name.
    instance: String,
}

/// Liveness: the process answers HTTP. Does not touch the store.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "Alive", body = Status)))]
pub async fn healthz(State(state): State<AppState>) -> Json<Status> {
    Json(Status {
        status: "ok",
        instance: state.instance.to_string(),
    })
}

/// Readiness: the store answers. Load balancers send traffic only to ready replicas.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready", body = Status),
        (status = 503, description = "The store does not answer", body = super::error::ErrorBody),
    ))]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Status>, ApiError> {
    state
        .orders
        .ping()
        .await
        .map_err(|e| match ApiError::from(e) {
            ApiError::Internal(cause) => ApiError::Unavailable(cause.to_string()),
            other => other,
        })?;
    Ok(Json(Status {
        status: "ready",
        instance: state.instance.to_string(),
    }))
}
