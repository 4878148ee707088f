//! The suite against a real `redis-server` of each test's own.

use std::sync::Arc;
use std::time::Duration;

use api::queue::RedisQueue;
use harness::RedisServer;
use tempfile::TempDir;

use crate::suite::LEASE;

pub struct Backend {
    pub queue: Arc<dyn api::queue::JobQueue>,
    _server: RedisServer,
    _dir: TempDir,
}

pub async fn open() -> Option<Backend> {
    let dir = tempfile::tempdir().unwrap();
    let server = RedisServer::start(dir.path())?;
    let queue = RedisQueue::open(&server.url(), "test", LEASE, Duration::from_secs(2)).unwrap();
    Some(Backend {
        queue: Arc::new(queue),
        _server: server,
        _dir: dir,
    })
}

job_queue_suite!(open);
