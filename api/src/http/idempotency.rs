//! The `Idempotency-Key` header on creating requests (see `crate::idempotency` for the rules):
//! read and checked before the body, and the stored answer replayed with `Idempotent-Replayed`.

use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use utoipa::IntoParams;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::{ObjectBuilder, Required, Type};

use super::error::ApiError;
use crate::idempotency::{Fingerprint, IdempotencyKey, KeyRecord, MAX_KEY_LEN, StoredResponse};

const HEADER: HeaderName = HeaderName::from_static("idempotency-key");
const REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// The request's key, if it sent one.
pub struct KeyHeader(pub Option<IdempotencyKey>);

impl<S: Send + Sync> FromRequestParts<S> for KeyHeader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let mut values = parts.headers.get_all(&HEADER).iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            return match parts.headers.contains_key(&HEADER) {
                true => Err(ApiError::BadRequest("Idempotency-Key: send it once".into())),
                false => Ok(Self(None)),
            };
        };
        IdempotencyKey::parse(value.as_bytes())
            .map(|key| Self(Some(key)))
            .map_err(|why| ApiError::BadRequest(format!("Idempotency-Key: {why}")))
    }
}

impl IntoParams for KeyHeader {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        // Surrounding spaces are not part of a header's value, hence the first and last rule.
        let schema = ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(MAX_KEY_LEN))
            .pattern(Some(format!(
                "^[!-~]([ -~]{{0,{}}}[!-~])?$",
                MAX_KEY_LEN - 2
            )));
        vec![
            ParameterBuilder::new()
                .name("Idempotency-Key")
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .description(Some(format!(
                    "Makes a retry safe: a repeat with the same key and body gets the first \
                     answer again (with `Idempotent-Replayed: true`) instead of creating twice. \
                     1 to {MAX_KEY_LEN} printable ASCII characters, compared as sent."
                )))
                .schema(Some(schema))
                .build(),
        ]
    }
}

/// What is kept with the created resource for `retention`.
pub fn record(
    key: IdempotencyKey,
    fingerprint: Fingerprint,
    response: StoredResponse,
    now: DateTime<Utc>,
    retention: Duration,
) -> KeyRecord {
    let retention = chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
    KeyRecord {
        key,
        fingerprint,
        response,
        expires_at: now
            .checked_add_signed(retention)
            .unwrap_or(DateTime::<Utc>::MAX_UTC),
    }
}

/// The answer to a repeat of the request that created `earlier`.
pub fn replay(earlier: &KeyRecord, fingerprint: &Fingerprint) -> Result<Response, ApiError> {
    earlier
        .replay_for(fingerprint)
        .map(|stored| respond(stored, true))
        .ok_or(ApiError::KeyReused)
}

/// A stored answer as a response, byte for byte the same each time it is given.
pub fn respond(stored: &StoredResponse, replayed: bool) -> Response {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let mut response = (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        stored.body.clone(),
    )
        .into_response();
    let headers = response.headers_mut();
    if let Ok(location) = HeaderValue::from_str(&stored.location) {
        headers.insert(header::LOCATION, location);
    }
    if replayed {
        headers.insert(REPLAYED, HeaderValue::from_static("true"));
    }
    response
}
