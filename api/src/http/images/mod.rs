//! `/images`: upload a picture (queued for a worker), follow its status, download the original
//! and the thumbnail.

mod receive;
pub mod upload;
mod view;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use self::upload::upload;
pub use self::view::ImageView;
use super::error::{ApiError, ErrorBody, IdErrors};
use super::path_id::{IdPath, ImagePath};
use super::{AppState, Message};
use crate::blobs::BlobKey;
use crate::images::{Image, ImageId, ImageStatus, Picture};

const NOT_FOUND: &str = "Image not found";

pub fn router(max_upload_bytes: usize) -> Router<AppState> {
    Router::new()
        .route(
            "/images",
            post(upload).layer(DefaultBodyLimit::max(max_upload_bytes)),
        )
        .route("/images/{id}", get(show).delete(remove))
        .route("/images/{id}/original", get(original))
        .route("/images/{id}/thumbnail", get(thumbnail))
}

async fn find(state: &AppState, id: ImageId) -> Result<Image, ApiError> {
    state
        .images
        .get_image(id)
        .await?
        .ok_or(ApiError::NotFound(NOT_FOUND))
}

/// The image's status, sizes, attempts and links.
#[utoipa::path(get, path = "/images/{id}", tag = "images", operation_id = "getImage",
    params(ImagePath),
    responses((status = 200, description = "The image", body = ImageView), IdErrors))]
pub async fn show(
    State(state): State<AppState>,
    IdPath(id): ImagePath,
) -> Result<Json<ImageView>, ApiError> {
    Ok(Json(ImageView::from(&find(&state, id).await?)))
}

/// Delete an image: its files, then its record (so a retry after a failure finishes the job).
/// A worker still holding its job finds no record and lets it go.
#[utoipa::path(delete, path = "/images/{id}", tag = "images", operation_id = "deleteImage",
    params(ImagePath),
    responses((status = 200, description = "Deleted, files and all", body = Message), IdErrors))]
pub async fn remove(
    State(state): State<AppState>,
    IdPath(id): ImagePath,
) -> Result<Json<Message>, ApiError> {
    let image = find(&state, id).await?;
    state.blobs.delete(BlobKey::Thumbnail(image.id)).await?;
    state.blobs.delete(BlobKey::Original(image.id)).await?;
    state.images.delete_image(image.id).await?;
    Ok(Json(Message {
        message: "Image deleted successfully".into(),
    }))
}

/// The uploaded file as it was sent; 410 once removed (`images.delete_originals_after`).
#[utoipa::path(get, path = "/images/{id}/original", tag = "images",
    operation_id = "getOriginal", params(ImagePath),
    responses(
        (status = 200, description = "The file, with its type, an ETag and cache headers"),
        (status = 304, description = "Not modified (If-None-Match)"),
        (status = 410, description = "Removed a while after its thumbnail was made", body = ErrorBody),
        IdErrors,
    ))]
pub async fn original(
    State(state): State<AppState>,
    IdPath(id): ImagePath,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let image = find(&state, id).await?;
    if let Some(removed) = image.original_removed_at {
        return Err(ApiError::Gone(format!(
            "the original was removed at {} (images.delete_originals_after); the thumbnail is kept",
            crate::orders::to_rfc3339_millis(&removed)
        )));
    }
    serve_file(
        &state,
        BlobKey::Original(image.id),
        image.original,
        &headers,
        "o",
    )
    .await
}

/// The thumbnail, once the image is `done`.
#[utoipa::path(get, path = "/images/{id}/thumbnail", tag = "images",
    operation_id = "getThumbnail", params(ImagePath),
    responses(
        (status = 200, description = "The thumbnail, with its type, an ETag and cache headers"),
        (status = 304, description = "Not modified (If-None-Match)"),
        (status = 409, description = "Not ready yet, or failed", body = ErrorBody),
        IdErrors,
    ))]
pub async fn thumbnail(
    State(state): State<AppState>,
    IdPath(id): ImagePath,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let image = find(&state, id).await?;
    match (image.status, image.thumbnail) {
        (ImageStatus::Done, Some(picture)) => {
            let tag = format!("t{}x{}", picture.width, picture.height);
            serve_file(
                &state,
                BlobKey::Thumbnail(image.id),
                picture,
                &headers,
                &tag,
            )
            .await
        }
        (ImageStatus::Failed, _) => Err(ApiError::Conflict(format!(
            "the thumbnail could not be made: {}",
            image.error.as_deref().unwrap_or("unknown reason")
        ))),
        (status, _) => Err(ApiError::Conflict(format!(
            "the thumbnail is not ready yet (status: {})",
            status.as_str()
        ))),
    }
}

/// A stored file with validators: an image's files never change once written, so they may be
/// cached for good and revalidated by ETag.
async fn serve_file(
    state: &AppState,
    key: BlobKey,
    picture: Picture,
    headers: &HeaderMap,
    tag: &str,
) -> Result<Response, ApiError> {
    let id = match key {
        BlobKey::Original(id) | BlobKey::Thumbnail(id) => id,
    };
    let etag = format!("\"{id}-{tag}\"");
    let cache = [
        (header::ETAG, etag.clone()),
        (
            header::CACHE_CONTROL,
            "public, max-age=31536000, immutable".into(),
        ),
    ];
    let matches = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|candidate| candidate.trim() == etag || candidate.trim() == "*");
    if matches {
        return Ok((StatusCode::NOT_MODIFIED, cache).into_response());
    }
    let blob = state
        .blobs
        .read(key)
        .await?
        .ok_or(ApiError::NotFound("the image's file is missing"))?;
    // Streamed: a download holds a chunk at a time, whatever the file's size.
    let mut response = (cache, Body::from_stream(blob.chunks)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(blob.len));
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(picture.format.content_type()),
    );
    // Uploaded bytes are served back: browsers must not guess another type from them.
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Ok(response)
}
