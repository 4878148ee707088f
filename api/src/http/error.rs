//! The one error type of the HTTP layer, mapped once to a status and a JSON body
//! `{"message": …, "errors": {field: why}}`.

use std::collections::BTreeMap;

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::{IntoResponses, ToSchema};

use crate::auth::{AuthError, Scope};
use crate::blobs::BlobError;
use crate::queue::QueueError;
use crate::store::StoreError;

/// Per-field reasons, keyed by the field's name in the request.
pub type FieldErrors = BTreeMap<String, String>;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request cannot be understood (malformed JSON, id, query parameter or cursor).
    #[error("{0}")]
    BadRequest(String),
    /// 400: an API key in the URL's query (keys go in the Authorization header only).
    #[error(
        "an API key was sent in the URL: send it only as Authorization: Bearer <key>, and revoke \
         this one (URLs are logged)"
    )]
    KeyInUrl,
    /// 401 with `WWW-Authenticate`: no key, or one that does not work (unknown, revoked,
    /// expired).
    #[error("{message}")]
    Unauthenticated {
        message: String,
        /// The key was presented but refused (`error="invalid_token"`, RFC 6750).
        invalid: bool,
    },
    /// 403: the key works but lacks the scope.
    #[error("this API key lacks the scope {0}")]
    Forbidden(Scope),
    /// 404: no such resource.
    #[error("{0}")]
    NotFound(&'static str),
    /// 405: the path exists but not with this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 409: the write collides with stored data.
    #[error("{0}")]
    Conflict(String),
    /// 410: it existed and was removed for good.
    #[error("{0}")]
    Gone(String),
    /// 422: the `Idempotency-Key` was first sent with another request.
    #[error("this Idempotency-Key was already used with a different request")]
    KeyReused,
    /// 413: the body is larger than the configured limit.
    #[error("request body is larger than the limit of {0} bytes")]
    PayloadTooLarge(usize),
    /// 415: the body is not of a type this endpoint takes.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 422: well-formed JSON whose fields break the rules.
    #[error("{message}")]
    Validation {
        message: String,
        errors: FieldErrors,
    },
    /// 503: the store cannot answer now; safe to retry later.
    #[error("the database is unavailable, try again later")]
    Unavailable(String),
    /// 503: the disk holding the store or the files is full; safe to retry once space is freed.
    #[error("storage is full, try again later")]
    StorageFull,
    /// 503: the job queue cannot take the upload now; safe to retry later.
    #[error("the job queue is unavailable, try again later")]
    QueueUnavailable(String),
    /// 503: the file storage (folder or bucket) cannot take or give a file now.
    #[error("the file storage is unavailable, try again later")]
    BlobsUnavailable(String),
    /// 503 with `Retry-After`: every upload slot stayed taken for `images.upload_wait_ms`.
    #[error("too many uploads at once, try again shortly")]
    UploadsBusy,
    /// 503: this replica runs without a job queue (`queue.url` unset beside a non-SQLite store).
    #[error("no job queue is configured: uploads are off on this service")]
    NoQueue,
    /// 500: a bug or an unexpected failure; the cause goes to the log, never to the client.
    #[error("internal server error")]
    Internal(#[source] anyhow::Error),
}

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong, for a person.
    pub message: String,
    /// Per-field reasons, present on validation errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<FieldErrors>,
}

/// For the OpenAPI document: what an operation on one resource by id may answer besides its own.
#[derive(IntoResponses)]
pub enum IdErrors {
    #[response(status = 400, description = "Malformed id")]
    Malformed(ErrorBody),
    #[response(status = 404, description = "No such resource")]
    Missing(ErrorBody),
}

/// For the OpenAPI document: what an operation that takes a JSON body may answer besides its own.
#[derive(IntoResponses)]
pub enum JsonBodyErrors {
    #[response(status = 400, description = "Malformed JSON")]
    Malformed(ErrorBody),
    #[response(status = 413, description = "Body over the limit")]
    TooLarge(ErrorBody),
    #[response(status = 415, description = "Not declared as JSON")]
    NotJson(ErrorBody),
    #[response(status = 422, description = "Invalid, missing or unknown fields")]
    Invalid(ErrorBody),
}

/// For the OpenAPI document: what an operation that writes may answer when storage fails.
#[derive(IntoResponses)]
pub enum StoreErrors {
    #[response(
        status = 503,
        description = "The store is unavailable, or its disk is full; retry later"
    )]
    Unavailable(ErrorBody),
}

impl ApiError {
    pub fn validation(errors: FieldErrors) -> Self {
        Self::Validation {
            message: "the request has invalid fields".into(),
            errors,
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) | Self::KeyInUrl => StatusCode::BAD_REQUEST,
            Self::Unauthenticated { .. } => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Gone(_) => StatusCode::GONE,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Validation { .. } | Self::KeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unavailable(_)
            | Self::QueueUnavailable(_)
            | Self::BlobsUnavailable(_)
            | Self::NoQueue
            | Self::StorageFull
            | Self::UploadsBusy => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            Self::Internal(cause) => tracing::error!(error = ?cause, "request failed"),
            Self::Unavailable(cause) => tracing::warn!(%cause, "store unavailable"),
            Self::QueueUnavailable(cause) => tracing::warn!(%cause, "queue unavailable"),
            Self::BlobsUnavailable(cause) => tracing::warn!(%cause, "file storage unavailable"),
            Self::StorageFull => tracing::warn!("a write failed: storage is full"),
            _ => {}
        }
        let status = self.status();
        let message = self.to_string();
        let retry_after = matches!(self, Self::UploadsBusy).then_some([(header::RETRY_AFTER, "1")]);
        let challenge = match &self {
            Self::Unauthenticated { invalid: false, .. } => Some(r#"Bearer realm="orders""#.into()),
            Self::Unauthenticated { invalid: true, .. } => {
                Some(r#"Bearer realm="orders", error="invalid_token""#.into())
            }
            Self::Forbidden(scope) => Some(format!(
                r#"Bearer realm="orders", error="insufficient_scope", scope="{scope}""#
            )),
            _ => None,
        }
        .map(|value: String| [(header::WWW_AUTHENTICATE, value)]);
        let errors = match self {
            Self::Validation { errors, .. } if !errors.is_empty() => Some(errors),
            _ => None,
        };
        (
            status,
            retry_after,
            challenge,
            Json(ErrorBody { message, errors }),
        )
            .into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable(cause) => Self::Unavailable(cause),
            StoreError::Full => Self::StorageFull,
            StoreError::Conflict(cause) => {
                tracing::info!(%cause, "write conflict");
                Self::Conflict("the order conflicts with a stored one".into())
            }
            StoreError::Rejected(cause) => {
                tracing::info!(%cause, "write refused by the database");
                Self::Validation {
                    message: "the database refused the order".into(),
                    errors: FieldErrors::new(),
                }
            }
            StoreError::Internal(cause) => Self::Internal(cause),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        let message = error.to_string();
        match error {
            AuthError::Missing => Self::Unauthenticated {
                message,
                invalid: false,
            },
            AuthError::Malformed | AuthError::Unknown => Self::Unauthenticated {
                message,
                invalid: true,
            },
            AuthError::Revoked(id) | AuthError::Expired(id) => {
                tracing::debug!(key_id = %id, %message, "key refused");
                Self::Unauthenticated {
                    message,
                    invalid: true,
                }
            }
            AuthError::Forbidden { id, needed } => {
                tracing::debug!(key_id = %id, %needed, "key lacks the scope");
                Self::Forbidden(needed)
            }
            AuthError::Store(error) => error.into(),
        }
    }
}

impl From<QueueError> for ApiError {
    fn from(error: QueueError) -> Self {
        match error {
            QueueError::Unavailable(cause) => Self::QueueUnavailable(cause),
            QueueError::LeaseLost => Self::Internal(anyhow::anyhow!("a job lease was lost")),
            QueueError::Internal(cause) => Self::Internal(cause),
        }
    }
}

impl From<BlobError> for ApiError {
    fn from(error: BlobError) -> Self {
        match error {
            BlobError::Full => Self::StorageFull,
            other => Self::BlobsUnavailable(other.to_string()),
        }
    }
}
