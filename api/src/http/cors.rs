//! Cross-origin requests from browsers: tower-http's CORS layer, built from `cors.*`.

use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, Method};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::config::CorsSettings;

/// Headers a browser script may read in an answer.
const EXPOSED: [&str; 4] = [
    "x-request-id",
    "location",
    "retry-after",
    "idempotent-replayed",
];

/// The layer, or `None` when no origin is allowed (then no answer carries a CORS header and
/// browsers refuse every cross-origin call). Settings are checked at start.
pub fn cors_layer(settings: &CorsSettings) -> Option<CorsLayer> {
    if settings.allowed_origins.is_empty() {
        return None;
    }
    let origins = if settings.allowed_origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            settings
                .allowed_origins
                .iter()
                .map(|o| HeaderValue::from_str(o).expect("cors.allowed_origins is checked")),
        )
    };
    let methods: Vec<Method> = settings
        .allowed_methods
        .iter()
        .map(|m| m.parse().expect("cors.allowed_methods is checked"))
        .collect();
    let headers: Vec<HeaderName> = settings
        .allowed_headers
        .iter()
        .map(|h| h.parse().expect("cors.allowed_headers is checked"))
        .collect();
    Some(
        CorsLayer::new()
            .allow_origin(origins)
            .allow_methods(methods)
            .allow_headers(headers)
            .expose_headers(EXPOSED.map(HeaderName::from_static))
            .max_age(Duration::from_secs(settings.max_age_seconds)),
    )
}
