//! The suite again over TLS (`rediss://`), against `redis-server --tls-port` with certificates
//! the test makes; and a server whose certificate another CA signed is refused.

use std::sync::Arc;
use std::time::Duration;

use api::images::ImageId;
use api::queue::{JobQueue, QueueError, RedisQueue};
use harness::RedisServer;
use harness::tls::TestCa;
use tempfile::TempDir;

pub struct Backend {
    pub queue: Arc<dyn JobQueue>,
    server: RedisServer,
    ca: String,
    _dir: TempDir,
}

fn handle(server: &RedisServer, ca: &str, lease: Duration) -> Arc<dyn JobQueue> {
    let ca = Some(ca.as_bytes().to_vec());
    Arc::new(RedisQueue::open(&server.url(), ca, "test", lease, Duration::from_secs(2)).unwrap())
}

pub async fn open(lease: Duration) -> Option<Backend> {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("orders test CA");
    let server = RedisServer::start_tls(dir.path(), &ca)?;
    assert!(server.url().starts_with("rediss://"));
    Some(Backend {
        queue: handle(&server, &ca.pem(), lease),
        server,
        ca: ca.pem(),
        _dir: dir,
    })
}

impl Backend {
    pub async fn another(&self, lease: Duration) -> Arc<dyn JobQueue> {
        handle(&self.server, &self.ca, lease)
    }
}

job_queue_suite!(open);

#[tokio::test]
async fn a_server_certificate_from_another_ca_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let Some(server) = RedisServer::start_tls(dir.path(), &TestCa::new("the server's CA")) else {
        return;
    };
    let stranger = TestCa::new("another CA").pem();
    let queue = handle(&server, &stranger, Duration::from_secs(5));
    let error = queue.enqueue(ImageId::generate()).await.unwrap_err();
    let QueueError::Unavailable(reason) = &error else {
        panic!("{error:?}")
    };
    assert!(reason.contains("certificate"), "{reason}");
}

/// Without a CA file only the system's CAs are trusted: a test CA is not among them.
#[tokio::test]
async fn the_system_trust_store_does_not_trust_a_private_ca() {
    let dir = tempfile::tempdir().unwrap();
    let Some(server) = RedisServer::start_tls(dir.path(), &TestCa::new("private CA")) else {
        return;
    };
    let queue = RedisQueue::open(
        &server.url(),
        None,
        "test",
        Duration::from_secs(5),
        Duration::from_secs(2),
    )
    .unwrap();
    let error = queue.enqueue(ImageId::generate()).await.unwrap_err();
    assert!(error.to_string().contains("certificate"), "{error}");
}
