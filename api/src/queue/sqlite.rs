//! The embedded queue: one row per pending job in a SQLite file (by default the store's), with
//! the lease in the row. Claiming is one UPDATE … RETURNING, so two workers (threads or
//! processes) can never take the same due job.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use chrono::Utc;
use rusqlite::{Connection, OptionalExtension, params};

use super::{Delivery, JobQueue, QueueError};
use crate::images::ImageId;
use crate::sqlite_pool::{SqliteError, SqlitePool, Synchronous};

/// How long `claim` waits between looks at an empty queue.
const POLL: Duration = Duration::from_millis(100);
/// How long one `claim` call waits in all when nothing is due.
const CLAIM_WAIT: Duration = Duration::from_secs(1);

pub struct SqliteQueue {
    pool: SqlitePool,
    lease: Duration,
}

impl SqliteQueue {
    pub async fn open(
        path: &Path,
        lease: Duration,
        busy_timeout_ms: u64,
        synchronous: Synchronous,
    ) -> Result<Self, QueueError> {
        let pool = SqlitePool::open(
            path,
            2,
            Duration::from_millis(busy_timeout_ms),
            synchronous,
            create_table,
        )
        .await
        .with_context(|| format!("opening the SQLite queue at {}", path.display()))?;
        Ok(Self { pool, lease })
    }

    fn lease_ms(&self) -> i64 {
        self.lease.as_millis() as i64
    }
}

impl From<SqliteError> for QueueError {
    fn from(error: SqliteError) -> Self {
        if matches!(error, SqliteError::Busy) {
            return Self::Unavailable(error.to_string());
        }
        Self::Internal(error.into())
    }
}

/// Idempotent, so processes opening the file together need no ordering; independent of the
/// store's migrations, so the queue may live in a file of its own.
fn create_table(conn: &mut Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS image_jobs (
            image_id     TEXT PRIMARY KEY NOT NULL,
            due_ms       INTEGER NOT NULL,
            lease_token  TEXT,
            lease_ms     INTEGER NOT NULL DEFAULT 0
        ) WITHOUT ROWID;
        CREATE INDEX IF NOT EXISTS image_jobs_by_due ON image_jobs (due_ms);
        CREATE TABLE IF NOT EXISTS leases (
            name     TEXT PRIMARY KEY NOT NULL,
            holder   TEXT NOT NULL,
            until_ms INTEGER NOT NULL
        ) WITHOUT ROWID;",
    )
}

/// A statement on a delivery's row changed it only if the lease token is still the row's.
fn held(rows: usize) -> Result<(), QueueError> {
    if rows == 0 {
        Err(QueueError::LeaseLost)
    } else {
        Ok(())
    }
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

#[async_trait]
impl JobQueue for SqliteQueue {
    async fn enqueue(&self, image: ImageId) -> Result<(), QueueError> {
        self.pool
            .run(move |conn| {
                conn.prepare_cached(
                    "INSERT INTO image_jobs (image_id, due_ms) VALUES (?1, ?2)
                 ON CONFLICT (image_id) DO NOTHING",
                )?
                .execute(params![image.to_string(), now_ms()])
                .map(drop)
            })
            .await
    }

    async fn claim(&self, consumer: &str) -> Result<Option<Delivery>, QueueError> {
        let started = tokio::time::Instant::now();
        loop {
            // A fresh token per delivery: a worker whose lease expired cannot ack or renew the
            // job another worker now holds.
            let token = format!("{consumer}/{}", uuid::Uuid::new_v4().simple());
            let lease_ms = self.lease_ms();
            let claimed: Result<Option<String>, QueueError> = {
                let token = token.clone();
                self.pool
                    .run(move |conn| {
                        let now = now_ms();
                        conn.prepare_cached(
                            "UPDATE image_jobs SET lease_token = ?1, lease_ms = ?2 + ?3
                         WHERE image_id = (
                             SELECT image_id FROM image_jobs
                             WHERE due_ms <= ?2 AND (lease_token IS NULL OR lease_ms <= ?2)
                             ORDER BY due_ms LIMIT 1)
                         RETURNING image_id",
                        )?
                        .query_row(params![token, now, lease_ms], |row| row.get::<_, String>(0))
                        .optional()
                    })
                    .await
            };
            if let Some(image) = claimed? {
                let image = ImageId::parse(&image)
                    .map_err(|e| anyhow::anyhow!("a queued job with image id {image:?}: {e}"))?;
                return Ok(Some(Delivery {
                    image,
                    receipt: token,
                    consumer: consumer.to_owned(),
                    deliveries: 0,
                }));
            }
            if started.elapsed() >= CLAIM_WAIT {
                return Ok(None);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    async fn renew(&self, delivery: &Delivery) -> Result<(), QueueError> {
        let token = delivery.receipt.clone();
        let lease_ms = self.lease_ms();
        self.pool
            .run(move |conn| {
                conn.prepare_cached(
                    "UPDATE image_jobs SET lease_ms = ?2 + ?3 WHERE lease_token = ?1",
                )?
                .execute(params![token, now_ms(), lease_ms])
            })
            .await
            .and_then(held)
    }

    async fn ack(&self, delivery: &Delivery) -> Result<(), QueueError> {
        let token = delivery.receipt.clone();
        self.pool
            .run(move |conn| {
                conn.prepare_cached("DELETE FROM image_jobs WHERE lease_token = ?1")?
                    .execute([token])
            })
            .await
            .and_then(held)
    }

    async fn retry_after(&self, delivery: &Delivery, delay: Duration) -> Result<(), QueueError> {
        let token = delivery.receipt.clone();
        let delay_ms = delay.as_millis() as i64;
        self.pool
            .run(move |conn| {
                conn.prepare_cached(
                    "UPDATE image_jobs SET due_ms = ?2, lease_token = NULL, lease_ms = 0
                     WHERE lease_token = ?1",
                )?
                .execute(params![token, now_ms() + delay_ms])
            })
            .await
            .and_then(held)
    }

    async fn ping(&self) -> Result<(), QueueError> {
        self.pool
            .run(|conn| conn.query_row("SELECT count(*) FROM image_jobs", [], |_| Ok(())))
            .await
    }

    async fn queued_images(&self) -> Result<HashSet<ImageId>, QueueError> {
        let ids: Vec<String> = self
            .pool
            .run::<_, QueueError, _>(|conn| {
                conn.prepare_cached("SELECT image_id FROM image_jobs")?
                    .query_map([], |row| row.get(0))?
                    .collect()
            })
            .await?;
        Ok(ids
            .iter()
            .filter_map(|id| ImageId::parse(id).ok())
            .collect())
    }

    async fn try_lease(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool, QueueError> {
        let (name, holder) = (name.to_owned(), holder.to_owned());
        let ttl_ms = ttl.as_millis() as i64;
        self.pool
            .run(move |conn| {
                let now = now_ms();
                conn.prepare_cached(
                    "INSERT INTO leases (name, holder, until_ms) VALUES (?1, ?2, ?3)
                     ON CONFLICT (name) DO UPDATE SET holder = excluded.holder,
                        until_ms = excluded.until_ms
                     WHERE leases.holder = excluded.holder OR leases.until_ms <= ?4",
                )?
                .execute(params![name, holder, now + ttl_ms, now])
                .map(|changed| changed == 1)
            })
            .await
    }
}
