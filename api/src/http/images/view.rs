//! The JSON shape of an image: the domain's values as clients see them, and their schema.

use serde::Serialize;
use utoipa::ToSchema;

use crate::images::{Image, ImageFormat, ImageStatus, Picture};
use crate::orders::to_rfc3339_millis as shown;

/// An image format, as `format` fields show it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum FormatView {
    Jpeg,
    Png,
    Webp,
}

impl From<ImageFormat> for FormatView {
    fn from(format: ImageFormat) -> Self {
        match format {
            ImageFormat::Jpeg => Self::Jpeg,
            ImageFormat::Png => Self::Png,
            ImageFormat::Webp => Self::Webp,
        }
    }
}

/// Where an image is on its way to a thumbnail.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StatusView {
    /// Waiting for a worker (first time, or again after a failed attempt).
    Queued,
    /// A worker holds the job.
    Processing,
    /// The thumbnail is stored.
    Done,
    /// Every attempt failed; `error` says why.
    Failed,
}

impl From<ImageStatus> for StatusView {
    fn from(status: ImageStatus) -> Self {
        match status {
            ImageStatus::Queued => Self::Queued,
            ImageStatus::Processing => Self::Processing,
            ImageStatus::Done => Self::Done,
            ImageStatus::Failed => Self::Failed,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PictureView {
    pub format: FormatView,
    #[schema(example = "image/jpeg")]
    pub content_type: &'static str,
    pub width: u32,
    pub height: u32,
    /// Size of the file in bytes.
    pub bytes: u64,
}

impl From<Picture> for PictureView {
    fn from(picture: Picture) -> Self {
        Self {
            format: picture.format.into(),
            content_type: picture.format.content_type(),
            width: picture.width,
            height: picture.height,
            bytes: picture.bytes,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Links {
    #[serde(rename = "self")]
    pub this: String,
    /// Absent once the original was removed (`original_removed_at`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub original: Option<String>,
    /// Present once the thumbnail is ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thumbnail: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ImageView {
    #[schema(example = "0f4c2a9e8d7b4c1a9e3f5b6d7c8a9b0c")]
    pub id: String,
    /// The same id: one job per image.
    pub job_id: String,
    pub status: StatusView,
    pub original: PictureView,
    pub thumbnail: Option<PictureView>,
    /// Times a worker has started on it.
    #[schema(example = 1)]
    pub attempts: u32,
    /// Why the last attempt failed.
    pub error: Option<String>,
    #[schema(example = "2026-11-22T13:45:00.123Z")]
    pub created_at: String,
    pub updated_at: String,
    /// When the original file was removed, a while after the thumbnail was made
    /// (`images.delete_originals_after`); `null` while it is kept.
    #[schema(example = json!(null))]
    pub original_removed_at: Option<String>,
    pub links: Links,
}

impl From<&Image> for ImageView {
    fn from(image: &Image) -> Self {
        let this = format!("/images/{}", image.id);
        let done = image.status == ImageStatus::Done;
        Self {
            id: image.id.to_string(),
            job_id: image.id.to_string(),
            status: image.status.into(),
            original: image.original.into(),
            thumbnail: image.thumbnail.map(Into::into),
            attempts: image.attempts,
            error: image.error.clone(),
            created_at: shown(&image.created_at),
            updated_at: shown(&image.updated_at),
            original_removed_at: image.original_removed_at.as_ref().map(shown),
            links: Links {
                original: image
                    .original_removed_at
                    .is_none()
                    .then(|| format!("{this}/original")),
                thumbnail: done.then(|| format!("{this}/thumbnail")),
                this,
            },
        }
    }
}
