//! Originals removed a while after their thumbnail is made (`images.delete_originals_after`,
//! off by default): the file goes first, then the record says so, so that a pass cut short is
//! finished by the next. One worker at a time does it, under a lease kept in the queue, in small
//! batches so that the store and the bucket see a trickle, not a flood.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use crate::blobs::{BlobError, BlobKey, BlobStore};
use crate::queue::{JobQueue, QueueError};
use crate::store::{ImageStore, StoreError};

const LEASE: &str = "retention";
/// Originals removed per batch.
const BATCH: u32 = 50;
/// Batches per pass: the rest waits for the next pass.
const BATCHES: usize = 20;

pub(super) struct Retention {
    pub images: Arc<dyn ImageStore>,
    pub blobs: Arc<BlobStore>,
    pub queue: Arc<dyn JobQueue>,
    pub holder: Arc<str>,
    /// How long after its thumbnail an original is kept.
    pub after: Duration,
}

#[derive(Debug, thiserror::Error)]
enum PassError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Blobs(#[from] BlobError),
}

impl Retention {
    /// A pass every tenth of `after` (between 1 s and a minute), for as long as it is polled.
    pub async fn run(self) {
        let every = (self.after / 10).clamp(Duration::from_secs(1), Duration::from_secs(60));
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            match self.pass(every).await {
                Ok(0) => {}
                Ok(removed) => tracing::info!(removed, "originals removed (retention)"),
                Err(error) => {
                    tracing::warn!(%error, "removing old originals failed; trying again later");
                }
            }
        }
    }

    /// One pass: how many originals were removed.
    async fn pass(&self, lease: Duration) -> Result<usize, PassError> {
        if !self.queue.try_lease(LEASE, &self.holder, lease).await? {
            return Ok(0);
        }
        let after = chrono::Duration::from_std(self.after).unwrap_or(chrono::Duration::MAX);
        let mut removed = 0;
        for _ in 0..BATCHES {
            let now = Utc::now();
            let due = self
                .images
                .originals_done_before(now - after, BATCH)
                .await?;
            for &image in &due {
                self.blobs.delete(BlobKey::Original(image)).await?;
                self.images.original_removed(image, now).await?;
            }
            removed += due.len();
            if due.len() < BATCH as usize {
                break;
            }
        }
        Ok(removed)
    }
}
