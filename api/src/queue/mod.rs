//! The image job queue. At-least-once: a job stays owned by the worker that claimed it until it
//! is acknowledged (after its result is stored) or handed back; a worker that dies stops renewing
//! its lease and the job is taken over by another once the lease expires. Failed jobs come back
//! after a delay. Two backends: Redis streams (production) and a table in a SQLite file
//! (the zero-setup default).

mod redis;
mod sqlite;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::config::{QueueBackend, Settings};
use crate::images::ImageId;

pub use self::redis::RedisQueue;
pub use self::sqlite::SqliteQueue;

/// A job held by one worker, with what the backend needs to renew, acknowledge or return it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub image: ImageId,
    /// The backend's handle for this delivery (a stream entry id, or the lease token).
    receipt: String,
    /// Who claimed it.
    consumer: String,
    /// Redis: how many times the entry had been delivered with this one (a takeover is a new
    /// delivery, so an earlier holder's handle no longer matches).
    deliveries: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The queue cannot be reached now; the caller may retry later.
    #[error("the job queue is unavailable: {0}")]
    Unavailable(String),
    /// The delivery is no longer this holder's: its lease expired and another worker took the
    /// job over, or it was already settled.
    #[error("the job's lease was lost to another worker")]
    LeaseLost,
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

#[async_trait]
pub trait JobQueue: Send + Sync + 'static {
    /// Adds a job for `image`. Once this returns, the job survives any process dying.
    async fn enqueue(&self, image: ImageId) -> Result<(), QueueError>;

    /// Takes the next due job (new, retried, or abandoned by a dead worker) for `consumer`,
    /// waiting up to about a second when there is none.
    async fn claim(&self, consumer: &str) -> Result<Option<Delivery>, QueueError>;

    /// Renews the lease: the job stays this delivery's for another lease period.
    /// `LeaseLost` when another worker has taken it over.
    async fn renew(&self, delivery: &Delivery) -> Result<(), QueueError>;

    /// The job is finished (its result is stored); it will not be delivered again.
    /// `LeaseLost` (and nothing changes) when another worker has taken it over.
    async fn ack(&self, delivery: &Delivery) -> Result<(), QueueError>;

    /// Hands the job back, to be delivered again after `delay` (zero: at once).
    /// `LeaseLost` (and nothing changes) when another worker has taken it over.
    async fn retry_after(&self, delivery: &Delivery, delay: Duration) -> Result<(), QueueError>;

    /// Succeeds when the backend answers.
    async fn ping(&self) -> Result<(), QueueError>;

    /// The images that have a job in the queue now: waiting, delayed, or held by a worker.
    async fn queued_images(&self) -> Result<HashSet<ImageId>, QueueError>;

    /// Takes (or keeps) the lease `name` for `holder` for `ttl`, unless another holder's lease
    /// on it is still running; `true` when `holder` has it now.
    async fn try_lease(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool, QueueError>;
}

/// Opens the queue `backend` names.
pub async fn open(
    backend: QueueBackend,
    settings: &Settings,
) -> Result<Arc<dyn JobQueue>, QueueError> {
    let lease = Duration::from_millis(settings.queue.lease_ms);
    match backend {
        QueueBackend::Sqlite(path) => Ok(Arc::new(
            SqliteQueue::open(
                &path,
                lease,
                settings.store.busy_timeout_ms,
                settings.store.synchronous,
            )
            .await?,
        )),
        QueueBackend::Redis(url) => {
            let ca = match settings.queue.tls_ca_file.as_str() {
                "" => None,
                file => Some(std::fs::read(file).map_err(|e| {
                    QueueError::Internal(anyhow::anyhow!("queue.tls_ca_file: reading {file}: {e}"))
                })?),
            };
            Ok(Arc::new(RedisQueue::open(
                &url,
                ca,
                &settings.queue.name,
                lease,
                Duration::from_millis(settings.queue.timeout_ms),
            )?))
        }
    }
}
