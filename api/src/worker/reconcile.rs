//! Lost jobs found and queued again: an image record still `queued` or `processing` whose job is
//! nowhere in the queue (Redis lost its data, an api died between storing the record and queueing
//! the job). One worker at a time does it, under a lease kept in the queue; queueing again is
//! harmless even when it races a worker finishing the job (a done image is skipped).

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use crate::queue::{JobQueue, QueueError};
use crate::store::{ImageStore, StoreError};

const LEASE: &str = "reconciler";
/// Images looked at per pass: a pass stays short; the next one takes the rest.
const BATCH: u32 = 1000;

pub(super) struct Reconciler {
    pub images: Arc<dyn ImageStore>,
    pub queue: Arc<dyn JobQueue>,
    pub holder: Arc<str>,
    /// How long an unfinished image may go unchanged with no job before it is queued again.
    pub after: Duration,
}

#[derive(Debug, thiserror::Error)]
enum PassError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

impl Reconciler {
    /// A pass every half of `after`, for as long as it is polled.
    pub async fn run(self) {
        let mut ticks = tokio::time::interval((self.after / 2).max(Duration::from_secs(1)));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if let Err(error) = self.pass().await {
                tracing::warn!(%error, "looking for lost jobs failed; trying again later");
            }
        }
    }

    /// One pass: how many images were queued again.
    async fn pass(&self) -> Result<usize, PassError> {
        if !self
            .queue
            .try_lease(LEASE, &self.holder, self.after)
            .await?
        {
            return Ok(0);
        }
        let after = chrono::Duration::from_std(self.after).unwrap_or(chrono::Duration::MAX);
        let before = Utc::now() - after;
        let candidates = self.images.unfinished_since(before, BATCH).await?;
        if candidates.is_empty() {
            return Ok(0);
        }
        let live = self.queue.queued_images().await?;
        let mut queued = 0;
        for image in candidates.into_iter().filter(|id| !live.contains(id)) {
            self.queue.enqueue(image).await?;
            tracing::warn!(%image, "its job was lost: queued again");
            queued += 1;
        }
        Ok(queued)
    }
}
