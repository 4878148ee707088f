//! The suite against a SQLite file in a temporary folder.

use std::sync::Arc;

use api::queue::{JobQueue, SqliteQueue};
use tempfile::TempDir;

use crate::suite::LEASE;

pub struct Backend {
    pub queue: Arc<dyn JobQueue>,
    dir: TempDir,
}

pub async fn open() -> Option<Backend> {
    let dir = tempfile::tempdir().unwrap();
    let queue = handle(&dir).await;
    Some(Backend { queue, dir })
}

async fn handle(dir: &TempDir) -> Arc<dyn JobQueue> {
    let path = dir.path().join("queue.db");
    Arc::new(SqliteQueue::open(&path, LEASE, 5000).await.unwrap())
}

impl Backend {
    /// Another handle on the same file, as another worker process would open.
    pub async fn another(&self) -> Arc<dyn JobQueue> {
        handle(&self.dir).await
    }
}

job_queue_suite!(open);
