//! What operators and load balancers ask a replica: is it alive, can it serve, what is its API.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

use super::AppState;
use super::error::ApiError;
use super::openapi::ApiDoc;

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
        .store
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

/// The OpenAPI 3 document of this API, generated from the code.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "OpenAPI 3.1 document")))]
pub async fn openapi() -> (StatusCode, Json<utoipa::openapi::OpenApi>) {
    (StatusCode::OK, Json(ApiDoc::openapi()))
}
