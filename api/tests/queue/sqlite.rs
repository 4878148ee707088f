//! The suite against a SQLite file in a temporary folder.

use std::sync::Arc;
use std::time::Duration;

use api::queue::{JobQueue, SqliteQueue};
use tempfile::TempDir;

pub struct Backend {
    pub queue: Arc<dyn JobQueue>,
    dir: TempDir,
}

pub async fn open(lease: Duration) -> Option<Backend> {
    let dir = tempfile::tempdir().unwrap();
    let queue = handle(&dir, lease).await;
    Some(Backend { queue, dir })
}

async fn handle(dir: &TempDir, lease: Duration) -> Arc<dyn JobQueue> {
    let path = dir.path().join("queue.db");
    Arc::new(
        SqliteQueue::open(&path, lease, 5000, api::sqlite_pool::Synchronous::Full)
            .await
            .unwrap(),
    )
}

impl Backend {
    /// Another handle on the same file, as another worker process would open.
    pub async fn another(&self, lease: Duration) -> Arc<dyn JobQueue> {
        handle(&self.dir, lease).await
    }
}

job_queue_suite!(open);
