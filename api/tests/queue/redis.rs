//! The suite against a real `redis-server` of each test's own.

use std::sync::Arc;
use std::time::Duration;

use api::queue::{JobQueue, RedisQueue};
use harness::RedisServer;
use tempfile::TempDir;

pub struct Backend {
    pub queue: Arc<dyn JobQueue>,
    server: RedisServer,
    _dir: TempDir,
}

pub async fn open(lease: Duration) -> Option<Backend> {
    let dir = tempfile::tempdir().unwrap();
    let server = RedisServer::start(dir.path())?;
    Some(Backend {
        queue: handle(&server, lease),
        server,
        _dir: dir,
    })
}

fn handle(server: &RedisServer, lease: Duration) -> Arc<dyn JobQueue> {
    Arc::new(RedisQueue::open(&server.url(), None, "test", lease, Duration::from_secs(2)).unwrap())
}

impl Backend {
    /// Another handle on the same server, as another worker process would open.
    pub async fn another(&self, lease: Duration) -> Arc<dyn JobQueue> {
        handle(&self.server, lease)
    }
}

job_queue_suite!(open);
