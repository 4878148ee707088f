//! The suite against a SQLite file in a temporary folder.

use std::sync::Arc;

use api::queue::SqliteQueue;
use tempfile::TempDir;

use crate::suite::LEASE;

pub struct Backend {
    pub queue: Arc<dyn api::queue::JobQueue>,
    _dir: TempDir,
}

pub async fn open() -> Option<Backend> {
    let dir = tempfile::tempdir().unwrap();
    let queue = SqliteQueue::open(&dir.path().join("queue.db"), LEASE, 5000)
        .await
        .unwrap();
    Some(Backend {
        queue: Arc::new(queue),
        _dir: dir,
    })
}

job_queue_suite!(open);
