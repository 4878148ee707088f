//! The key check in front of `/orders`, `/images` and `/metrics`: which scope each request needs
//! (one rule, also used for the OpenAPI document), and the middleware that asks `auth` whether
//! the presented key holds it.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::Response;
use chrono::Utc;

use super::error::ApiError;
use crate::auth::{self, Authenticator, Scope};

/// A group of routes guarded by one pair of scopes.
#[derive(Debug, Clone, Copy)]
pub enum Area {
    Orders,
    Images,
    /// `/metrics` on the public listener.
    Metrics,
}

impl Area {
    /// The scope a request with `method` needs here: reading needs `…:read`, anything else
    /// `…:write`.
    pub fn needed(self, method: &Method) -> Scope {
        let reading = matches!(*method, Method::GET | Method::HEAD);
        match (self, reading) {
            (Area::Orders, true) => Scope::OrdersRead,
            (Area::Orders, false) => Scope::OrdersWrite,
            (Area::Images, true) => Scope::ImagesRead,
            (Area::Images, false) => Scope::ImagesWrite,
            (Area::Metrics, _) => Scope::Admin,
        }
    }

    /// The area of a documented path.
    pub fn of_path(path: &str) -> Option<Self> {
        if path == "/orders" || path.starts_with("/orders/") {
            Some(Area::Orders)
        } else if path == "/images" || path.starts_with("/images/") {
            Some(Area::Images)
        } else if path == "/metrics" {
            Some(Area::Metrics)
        } else {
            None
        }
    }
}

/// What the middleware needs: the checker (`None` when `auth.required` is off) and the area.
#[derive(Clone)]
pub struct Guard {
    pub auth: Option<Arc<Authenticator>>,
    pub area: Area,
}

pub async fn require(
    State(guard): State<Guard>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    // Refused whether or not keys are required: a URL is logged on its way (proxies, browser
    // history), so a key in one must be revoked, and the caller should hear it now.
    if request.uri().query().is_some_and(auth::holds_a_key) {
        return Err(ApiError::KeyInUrl);
    }
    let Some(checker) = guard.auth else {
        return Ok(next.run(request).await);
    };
    let needed = guard.area.needed(request.method());
    let mut presented = request.headers().get_all(header::AUTHORIZATION).iter();
    let value = match (presented.next(), presented.next()) {
        (None, _) => Err(auth::AuthError::Missing),
        (Some(_), Some(_)) => Err(auth::AuthError::Malformed),
        (Some(value), None) => value.to_str().map_err(|_| auth::AuthError::Malformed),
    };
    let id = match value {
        Ok(value) => checker.check(value, needed, Utc::now()).await,
        Err(refusal) => Err(refusal),
    }?;
    // Logs name the key by its id, never by the key.
    tracing::Span::current().record("key_id", id.as_str());
    Ok(next.run(request).await)
}
