//! The HTTP layer: the router, assembled from one module per resource, and the middleware every
//! request passes through (request id, one log line, metrics, panics as JSON 500s).

mod auth;
mod cors;
pub mod error;
mod idempotency;
mod images;
mod json;
pub mod linger;
mod metrics;
mod openapi;
mod operations;
mod orders;
mod page;
mod path_id;
pub mod serve;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderName, Response};
use axum::middleware::{self, Next};
use axum::response::IntoResponse;
use axum::routing::get;
use serde::Serialize;
use service::request_id;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use tracing::{Instrument, Span};
use utoipa::ToSchema;

use self::auth::{Area, Guard};
pub use self::cors::cors_layer;
use self::error::ApiError;
pub use self::metrics::Metrics;
pub use self::openapi::ApiDoc;
use crate::auth::Authenticator;
use crate::blobs::BlobStore;
use crate::config::ImageSettings;
use crate::queue::JobQueue;
use crate::store::{ImageStore, KeyStore, OrderStore};

const REQUEST_ID: HeaderName = HeaderName::from_static(request_id::HEADER);

/// What every handler may use. Cloned for every request (axum's `State`, the middleware), so
/// anything larger than a word is behind an `Arc`.
#[derive(Clone)]
pub struct AppState {
    pub orders: Arc<dyn OrderStore>,
    pub images: Arc<dyn ImageStore>,
    pub keys: Arc<dyn KeyStore>,
    /// Each request runs as a task of its own, to its end even if its client hangs up: the
    /// store's operations must not be dropped part-way (`Stores::run_to_end`).
    pub run_to_end: bool,
    /// Checks API keys; `None` when `auth.required` is off.
    pub auth: Option<Arc<Authenticator>>,
    /// Cross-origin requests, when `cors.allowed_origins` names any.
    pub cors: Option<Arc<tower_http::cors::CorsLayer>>,
    /// How long idempotency keys are kept.
    pub key_retention: Duration,
    /// `None` when no queue is configured: uploads answer 503.
    pub queue: Option<Arc<dyn JobQueue>>,
    pub blobs: Arc<BlobStore>,
    /// Upload limits.
    pub uploads: Arc<ImageSettings>,
    /// One permit per upload being read (`images.max_concurrent_uploads`).
    pub upload_slots: Arc<tokio::sync::Semaphore>,
    pub metrics: Arc<Metrics>,
    pub instance: Arc<str>,
    pub body_limit: usize,
    /// Requests slower than this are logged at `warn`; the others only at `debug`.
    pub slow_request: Duration,
    /// How much of a body left unread is still read before closing (see `linger`).
    pub linger: linger::Linger,
}

pub fn router(state: AppState) -> Router {
    let instance = state.instance.clone();
    let body_limit = state.body_limit;
    let lingering = state.linger;
    let slow = state.slow_request;
    let cors = state.cors.as_deref().cloned();
    let run_to_end = state.run_to_end;
    let guard = |area| {
        let guard = Guard {
            auth: state.auth.clone(),
            area,
        };
        middleware::from_fn_with_state(guard, auth::require)
    };
    let routes = Router::new()
        .merge(orders::router().route_layer(guard(Area::Orders)))
        .merge(images::router(state.uploads.max_upload_bytes).route_layer(guard(Area::Images)))
        .route("/", get(page::show))
        .route("/healthz", get(operations::healthz))
        .route("/readyz", get(operations::readyz))
        .route(
            "/metrics",
            get(metrics::show).route_layer(guard(Area::Metrics)),
        )
        .route("/openapi.json", get(openapi::show))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed);
    // Only where the store needs it: a task per request costs about 3 µs of a 31 µs GET.
    let routes = if run_to_end {
        routes.layer(middleware::from_fn(to_end))
    } else {
        routes
    };
    routes
        .layer(middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
        .layer(
            ServiceBuilder::new()
                .layer(middleware::from_fn(drop_unplain_request_id))
                .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(move |request: &Request| {
                            let id = request
                                .headers()
                                .get(REQUEST_ID)
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or_default();
                            // At warn, so that a slow request's or a failure's line carries
                            // the request's id whenever warnings are logged at all.
                            tracing::warn_span!(
                                "request",
                                instance = %instance,
                                request_id = %id,
                                method = %request.method(),
                                path = %request.uri().path(),
                                key_id = tracing::field::Empty,
                            )
                        })
                        .on_request(())
                        // Every request is in lb's access log: a replica writes a line only
                        // for a slow one, or at debug.
                        .on_response(move |response: &Response<_>, latency: Duration, _: &Span| {
                            let status = response.status().as_u16();
                            let duration_us = latency.as_micros() as u64;
                            if latency >= slow {
                                tracing::warn!(status, duration_us, "slow request");
                            } else {
                                tracing::debug!(status, duration_us, "request");
                            }
                        })
                        .on_failure(()),
                )
                .layer(PropagateRequestIdLayer::new(REQUEST_ID))
                // Preflights are answered here, before any key is asked for (browsers send
                // none with them), and every answer, errors too, carries the CORS headers.
                .option_layer(cors)
                .layer(CatchPanicLayer::custom(|_| {
                    ApiError::Internal(anyhow::anyhow!("a handler panicked")).into_response()
                }))
                .layer(middleware::from_fn_with_state(lingering, linger::linger)),
        )
}

/// What `server.metrics_listen` serves, with no key: metrics and probes, for the private
/// network.
pub fn internal_router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(operations::healthz))
        .route("/readyz", get(operations::readyz))
        .route("/metrics", get(metrics::show))
        .fallback(not_found)
        .with_state(state)
}

/// A plain answer: `{"message": …}`.
#[derive(Serialize, ToSchema)]
pub struct Message {
    pub message: String,
}

/// A client's request id that is not plain (see `service::request_id`) is dropped, so that the
/// next layer makes a fresh one.
async fn drop_unplain_request_id(mut request: Request, next: Next) -> Response<Body> {
    let headers = request.headers_mut();
    if headers
        .get(&REQUEST_ID)
        .is_some_and(|id| !request_id::is_plain(id.as_bytes()))
    {
        headers.remove(&REQUEST_ID);
    }
    next.run(request).await
}

/// Runs the rest of a request as a task of its own, so that it reaches its end even when the
/// client hangs up and hyper drops the request (see `Stores::run_to_end`).
async fn to_end(request: Request, next: Next) -> Response<Body> {
    match tokio::spawn(next.run(request).in_current_span()).await {
        Ok(response) => response,
        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        Err(error) => ApiError::Internal(error.into()).into_response(),
    }
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such resource")
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
