//! The image domain: what an uploaded picture is (`Image`), how an upload is checked before it is
//! accepted (`upload`), and how a thumbnail is made from it (`thumbnail`). Free of HTTP and
//! database types: the api, the worker and the stores all speak these.

mod id;
mod thumbnail;
mod upload;

use chrono::{DateTime, Utc};

pub use id::ImageId;
pub use thumbnail::{
    DecodeLimits, Fit, OutputFormat, RenderError, Thumbnail, ThumbnailSpec, render,
};
pub use upload::{UploadError, UploadLimits, inspect};

/// The formats an upload may have, sniffed from its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    Jpeg,
    Png,
    Webp,
}

impl ImageFormat {
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Jpeg => "image/jpeg",
            Self::Png => "image/png",
            Self::Webp => "image/webp",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Jpeg => "jpeg",
            Self::Png => "png",
            Self::Webp => "webp",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "jpeg" => Some(Self::Jpeg),
            "png" => Some(Self::Png),
            "webp" => Some(Self::Webp),
            _ => None,
        }
    }
}

/// Where an image is on its way to a thumbnail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageStatus {
    /// Waiting for a worker (first time, or again after a failed attempt).
    Queued,
    /// A worker holds the job.
    Processing,
    /// The thumbnail is stored.
    Done,
    /// Every attempt failed; `error` says why.
    Failed,
}

impl ImageStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Processing => "processing",
            Self::Done => "done",
            Self::Failed => "failed",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "queued" => Some(Self::Queued),
            "processing" => Some(Self::Processing),
            "done" => Some(Self::Done),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

/// One stored picture (an original or a thumbnail).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Picture {
    pub format: ImageFormat,
    pub width: u32,
    pub height: u32,
    /// Size of the file in bytes.
    pub bytes: u64,
}

/// How an attempt at an image's thumbnail ended, and when.
#[derive(Debug, Clone, PartialEq)]
pub enum AttemptEnd {
    /// The thumbnail is stored: the image is `done` (again, harmlessly, if a second worker
    /// finishes the same job).
    Done {
        thumbnail: Picture,
        at: DateTime<Utc>,
    },
    /// The attempt failed for `reason`: back to `queued` for a retry, or `failed` when it was the
    /// `last` one.
    Failed {
        reason: String,
        last: bool,
        at: DateTime<Utc>,
    },
    /// The worker stopped before the attempt ended (shutdown) and handed the job back: the
    /// attempt does not count, and a `processing` image is `queued` again.
    HandedBack { at: DateTime<Utc> },
}

impl AttemptEnd {
    /// A failure now that is the last: the image is `failed` for `reason`.
    pub fn gave_up(reason: &str) -> Self {
        Self::Failed {
            reason: reason.to_owned(),
            last: true,
            at: Utc::now(),
        }
    }
}

/// An uploaded image and the state of its thumbnail.
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    pub id: ImageId,
    pub status: ImageStatus,
    pub original: Picture,
    pub thumbnail: Option<Picture>,
    /// How many times a worker has started on it.
    pub attempts: u32,
    /// Why the last attempt failed.
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// When the original file was removed (`images.delete_originals_after`); the record and the
    /// thumbnail stay.
    pub original_removed_at: Option<DateTime<Utc>>,
}

impl Image {
    /// A new upload, waiting for its first worker.
    pub fn queued(id: ImageId, original: Picture, now: DateTime<Utc>) -> Self {
        Self {
            id,
            status: ImageStatus::Queued,
            original,
            thumbnail: None,
            attempts: 0,
            error: None,
            created_at: now,
            updated_at: now,
            original_removed_at: None,
        }
    }
}
