//! One attempt at one job: count the attempt, give up on a poison job, make the thumbnail,
//! store it, and record the outcome on the image. The loop around it is in `worker`.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use crate::blobs::{BlobError, BlobKey, BlobStore};
use crate::images::{AttemptEnd, DecodeLimits, ImageId, ImageStatus, ThumbnailSpec, render};
use crate::store::ImageStore;

/// What a job attempt ended with.
pub(super) enum Outcome {
    Done,
    /// Nothing to do: unknown image, or already done or failed.
    Skipped(&'static str),
    Failed {
        reason: String,
        last: bool,
    },
}

/// What every attempt needs.
#[derive(Clone)]
pub(super) struct Thumbnailer {
    pub images: Arc<dyn ImageStore>,
    pub blobs: Arc<BlobStore>,
    pub spec: ThumbnailSpec,
    pub limits: DecodeLimits,
    pub max_attempts: u32,
    /// How long one attempt may take.
    pub timeout: Duration,
}

impl Thumbnailer {
    /// One attempt at one job; returns the attempts counted so far with the outcome.
    pub async fn attempt(&self, id: ImageId) -> (u32, Outcome) {
        let image = match self.images.start_attempt(id, Utc::now()).await {
            Ok(Some(image)) => image,
            Ok(None) => return (0, Outcome::Skipped("no such image")),
            Err(error) => {
                // Not counted (the store did not record it): try again soon.
                return (
                    1,
                    Outcome::Failed {
                        reason: error.to_string(),
                        last: false,
                    },
                );
            }
        };
        let attempts = image.attempts;
        match image.status {
            ImageStatus::Done => return (attempts, Outcome::Skipped("already done")),
            ImageStatus::Failed => return (attempts, Outcome::Skipped("already failed")),
            ImageStatus::Queued | ImageStatus::Processing => {}
        }
        if attempts > self.max_attempts {
            // Earlier attempts ended without a word (the worker died each time): a poison job.
            let reason = format!(
                "gave up after {} attempts that never finished",
                attempts - 1
            );
            return (attempts, self.failed(id, reason, true).await);
        }
        let last = attempts >= self.max_attempts;
        let outcome = match self.make_thumbnail(id).await {
            Ok(()) => Outcome::Done,
            Err(Failure::Retry(reason)) => self.failed(id, reason, last).await,
            Err(Failure::Final(reason)) => self.failed(id, reason, true).await,
            Err(Failure::Outage(reason)) => {
                // The picture was never tried: the attempt is given back, so an outage of the
                // file storage, however long, fails no image.
                let back = AttemptEnd::HandedBack { at: Utc::now() };
                if let Err(error) = self.images.end_attempt(id, &back).await {
                    tracing::warn!(image = %id, %error, "could not uncount the attempt");
                }
                Outcome::Failed {
                    reason: format!("{reason} (not counted as an attempt)"),
                    last: false,
                }
            }
        };
        (attempts, outcome)
    }

    /// Records a failed attempt on the image (the queue is settled by the loop).
    async fn failed(&self, id: ImageId, reason: String, last: bool) -> Outcome {
        let end = AttemptEnd::Failed {
            reason: reason.clone(),
            last,
            at: Utc::now(),
        };
        if let Err(error) = self.images.end_attempt(id, &end).await {
            tracing::warn!(image = %id, %error, "could not record the failure");
        }
        Outcome::Failed { reason, last }
    }

    async fn make_thumbnail(&self, id: ImageId) -> Result<(), Failure> {
        let retry = |e: &dyn std::fmt::Display| Failure::Retry(e.to_string());
        let original = self
            .blobs
            .get(BlobKey::Original(id))
            .await
            .map_err(Failure::from)?
            .ok_or_else(|| Failure::Retry("the original file is missing".into()))?;
        let (spec, limits) = (self.spec, self.limits);
        let rendering = tokio::task::spawn_blocking(move || render(&original, &spec, limits));
        // The decoder's thread cannot be stopped: past the limit its result is dropped.
        // A slow attempt may have met a busy machine: it is tried again. The same bytes
        // decode the same way every time, so a picture that cannot be made fails at once.
        let thumbnail = tokio::time::timeout(self.timeout, rendering)
            .await
            .map_err(|_| {
                Failure::Retry(format!(
                    "making the thumbnail took longer than {} ms",
                    self.timeout.as_millis()
                ))
            })?
            .map_err(|_| Failure::Retry("the resizer crashed".to_owned()))?
            .map_err(|e| Failure::Final(e.to_string()))?;
        // Same key every time: a job done twice leaves one thumbnail.
        self.blobs
            .put(BlobKey::Thumbnail(id), thumbnail.bytes.into())
            .await
            .map_err(Failure::from)?;
        let done = AttemptEnd::Done {
            thumbnail: thumbnail.picture,
            at: Utc::now(),
        };
        self.images
            .end_attempt(id, &done)
            .await
            .map_err(|e| retry(&e))
    }
}

/// Why an attempt did not make the thumbnail.
enum Failure {
    /// Worth another attempt (storage, time limit).
    Retry(String),
    /// The picture itself: another attempt would fail the same way.
    Final(String),
    /// The file storage could not be reached: tried again later, without counting.
    Outage(String),
}

impl From<BlobError> for Failure {
    fn from(error: BlobError) -> Self {
        match error {
            BlobError::Full => Self::Retry(error.to_string()),
            BlobError::Denied(_) | BlobError::Unavailable(_) => Self::Outage(error.to_string()),
        }
    }
}
