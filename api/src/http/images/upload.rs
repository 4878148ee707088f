//! `POST /images`: a multipart form with one field `file`. The size limit applies while the body
//! streams in; the format and dimensions are checked from the first bytes before anything is
//! stored, and the file streams on into the blob store (`receive`).

use std::time::Duration;

use axum::extract::multipart::{MultipartError, MultipartRejection};
use axum::extract::{Multipart, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::Utc;
use serde::Serialize;
use utoipa::ToSchema;

use super::receive::{Received, receive};
use crate::blobs::BlobKey;
use crate::http::AppState;
use crate::http::error::{ApiError, ErrorBody, FieldErrors};
use crate::http::idempotency::{self, KeyHeader};
use crate::idempotency::{Claim, Scope, StoredResponse};
use crate::images::{Image, ImageId, UploadLimits};

const FIELD: &str = "file";

#[derive(Debug, Serialize, ToSchema)]
pub struct UploadAccepted {
    #[schema(example = "Success")]
    pub message: String,
    pub job_id: String,
    #[schema(example = "/images/0f4c2a9e8d7b4c1a9e3f5b6d7c8a9b0c")]
    pub status_url: String,
}

/// The form of an upload: the one field `file`; any other field is refused with 422.
#[derive(ToSchema)]
#[allow(dead_code)] // only documents the request schema: the form is read part by part
pub struct UploadForm {
    /// A JPEG, PNG or WebP file, at most `images.max_upload_bytes` with the rest of the form.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

pub(super) fn field_error(why: impl Into<String>) -> ApiError {
    ApiError::Validation {
        message: "the upload is not acceptable".into(),
        errors: FieldErrors::from([(FIELD.to_owned(), why.into())]),
    }
}

pub(super) fn multipart_error(error: MultipartError, limit: usize) -> ApiError {
    if error.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge(limit)
    } else {
        ApiError::BadRequest(format!("malformed multipart body: {}", error.body_text()))
    }
}

/// Upload an image (JPEG, PNG or WebP) as the multipart field `file`; a worker makes its
/// thumbnail. Answers at once with where to follow the job.
#[utoipa::path(post, path = "/images", tag = "images", operation_id = "uploadImage",
    params(KeyHeader),
    request_body(content_type = "multipart/form-data", content = UploadForm,
        description = "Field `file`: the image"),
    responses(
        (status = 202, description = "Stored and queued; `Location` is the status URL", body = UploadAccepted),
        (status = 400, description = "Malformed multipart body", body = ErrorBody),
        (status = 413, description = "Body over the limit", body = ErrorBody),
        (status = 415, description = "Not multipart, or not a JPEG, PNG or WebP", body = ErrorBody),
        (status = 422, description = "No file, an empty file, an unreadable header, or too many pixels", body = ErrorBody),
        (status = 503, description = "The store, the file storage or the queue is unavailable, no queue is configured, or every upload slot stayed busy (`Retry-After`)", body = ErrorBody),
    ))]
pub async fn upload(
    State(state): State<AppState>,
    KeyHeader(key): KeyHeader,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    let queue = state.queue.clone().ok_or(ApiError::NoQueue)?;
    let mut multipart = multipart.map_err(|_| {
        ApiError::UnsupportedMediaType("Content-Type must be multipart/form-data".into())
    })?;
    // Bounds the memory uploads can hold: the rest wait here with their bodies unread, for a
    // while: past it the client is told to come back rather than held until the lb gives up.
    let wait = Duration::from_millis(state.uploads.upload_wait_ms);
    let _slot = tokio::time::timeout(wait, state.upload_slots.acquire())
        .await
        .map_err(|_| ApiError::UploadsBusy)?
        .map_err(|_| ApiError::Internal(anyhow::anyhow!("the upload slots were closed")))?;
    let limit = state.uploads.max_upload_bytes;
    let limits = UploadLimits {
        max_pixels: state.uploads.max_pixels,
    };
    let mut file: Option<Received> = None;
    let read = async {
        while let Some(mut field) = multipart
            .next_field()
            .await
            .map_err(|e| multipart_error(e, limit))?
        {
            if field.name() != Some(FIELD) {
                let name = field.name().unwrap_or_default().to_owned();
                return Err(ApiError::validation(FieldErrors::from([(
                    name,
                    "is not a field of an upload".to_owned(),
                )])));
            }
            if file.is_some() {
                return Err(field_error("send one file per upload"));
            }
            file = Some(receive(&state.blobs, &mut field, limits, limit).await?);
        }
        Ok(())
    };
    if let Err(error) = read.await {
        // A file stored before the rest of the form turned out wrong is not kept.
        if let Some(received) = &file {
            forget(&state, received.id).await;
        }
        return Err(error);
    }
    let Received {
        id,
        picture: original,
        fingerprint,
    } = file.ok_or_else(|| field_error("is required"))?;
    let now = Utc::now();
    // A repeat of a finished upload is answered with the first answer; this copy goes.
    if let Some(key) = &key {
        let earlier = state.keys.find_key(Scope::Images, key, now).await;
        if !matches!(earlier, Ok(None)) {
            forget(&state, id).await;
        }
        if let Some(earlier) = earlier? {
            return idempotency::replay(&earlier, &fingerprint);
        }
    }
    let status_url = format!("/images/{id}");
    let body = UploadAccepted {
        message: "Success".into(),
        job_id: id.to_string(),
        status_url: status_url.clone(),
    };
    let response = StoredResponse {
        status: StatusCode::ACCEPTED.as_u16(),
        location: status_url,
        body: serde_json::to_string(&body).map_err(|e| ApiError::Internal(e.into()))?,
    };
    let image = Image::queued(id, original, now);
    let claim = match key {
        None => state.images.insert_image(&image).await.map(|()| None),
        Some(key) => {
            let record =
                idempotency::record(key, fingerprint, response.clone(), now, state.key_retention);
            state
                .images
                .insert_image_keyed(&image, &record)
                .await
                .map(|claim| Some((claim, record.fingerprint)))
        }
    };
    let claim = match claim {
        Ok(claim) => claim,
        Err(error) => {
            forget(&state, id).await;
            return Err(error.into());
        }
    };
    if let Some((Claim::Taken(earlier), fingerprint)) = claim {
        // A concurrent repeat stored its upload first: this copy is not needed.
        forget(&state, id).await;
        return idempotency::replay(&earlier, &fingerprint);
    }
    if let Err(error) = queue.enqueue(id).await {
        // The client is told to retry and never learns this id: nothing of it is kept, and its
        // idempotency key is free for the retry.
        let _ = state.images.delete_image(id).await;
        forget(&state, id).await;
        return Err(error.into());
    }
    tracing::info!(image = %id, format = original.format.as_str(), width = original.width,
        height = original.height, bytes = original.bytes, "image queued");
    Ok(idempotency::respond(&response, false))
}

/// Removes a stored original that no record names; a failure only leaves a stray file.
async fn forget(state: &AppState, id: ImageId) {
    if let Err(error) = state.blobs.delete(BlobKey::Original(id)).await {
        tracing::warn!(image = %id, %error, "a stray original could not be removed");
    }
}
