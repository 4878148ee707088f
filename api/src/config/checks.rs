//! What each section of the settings requires, and which sections a binary checks.

use service::ConfigError;

use super::backends::parse_store_uri;
use super::{
    AuthSettings, CorsSettings, IdempotencySettings, ImageSettings, QueueSettings, ServerSettings,
    Settings, StoreSettings, WorkerSettings,
};

/// A section of the settings that a binary uses; each binary checks only its own (see its
/// `main`), so that `seed` never asks for a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Server,
    Store,
    Images,
    /// The queue's rules, and its URL when one is given; there may be none.
    Queue,
    /// The worker's rules; a worker also needs a queue.
    Worker,
}

/// The first rule broken, as `(broken, key, why)`.
fn first_broken(rules: &[(bool, &str, &str)]) -> Result<(), ConfigError> {
    match rules.iter().find(|(broken, _, _)| *broken) {
        Some((_, key, why)) => Err(ConfigError::key(key, why)),
        None => Ok(()),
    }
}

impl Settings {
    /// Checks the sections a binary uses.
    pub fn check(&self, sections: &[Section]) -> Result<(), ConfigError> {
        sections.iter().try_for_each(|section| match section {
            Section::Server => self
                .server
                .check()
                .and(self.idempotency.check())
                .and(self.auth.check())
                .and(self.cors.check()),
            Section::Store => self.store.check(),
            Section::Images => self.images.check(),
            Section::Queue => self.queue.check().and(self.queue_backend().map(drop)),
            Section::Worker => self.worker.check().and(self.required_queue().map(drop)),
        })
    }
}

impl ServerSettings {
    fn check(&self) -> Result<(), ConfigError> {
        first_broken(&[
            (
                self.body_limit == 0,
                "server.body_limit",
                "must be at least 1 byte",
            ),
            (
                self.instance.trim().is_empty(),
                "server.instance",
                "must not be empty",
            ),
            (
                self.header_read_timeout_ms == 0,
                "server.header_read_timeout_ms",
                "must be at least 1 ms",
            ),
        ])
    }
}

impl AuthSettings {
    fn check(&self) -> Result<(), ConfigError> {
        first_broken(&[(
            self.cache_ttl > std::time::Duration::from_secs(3600),
            "auth.cache_ttl",
            "must be at most an hour (a revoked key works until it ends)",
        )])
    }
}

impl CorsSettings {
    fn check(&self) -> Result<(), ConfigError> {
        for origin in &self.allowed_origins {
            if let Err(why) = check_origin(origin) {
                return Err(ConfigError::key("cors.allowed_origins", &why));
            }
        }
        for method in &self.allowed_methods {
            if method.parse::<axum::http::Method>().is_err() || method.is_empty() {
                return Err(ConfigError::key(
                    "cors.allowed_methods",
                    &format!("{method:?} is not an HTTP method"),
                ));
            }
        }
        for header in &self.allowed_headers {
            if header.parse::<axum::http::HeaderName>().is_err() {
                return Err(ConfigError::key(
                    "cors.allowed_headers",
                    &format!("{header:?} is not a header name"),
                ));
            }
        }
        Ok(())
    }
}

/// `*`, or `scheme://host[:port]` exactly as a browser sends it in `Origin` (no path, no
/// trailing slash).
fn check_origin(origin: &str) -> Result<(), String> {
    if origin == "*" {
        return Ok(());
    }
    let parsed = url::Url::parse(origin).map_err(|e| format!("{origin:?}: {e}"))?;
    let serialised = parsed.origin().ascii_serialization();
    if !matches!(parsed.scheme(), "http" | "https") || serialised != origin {
        return Err(format!(
            "{origin:?} is not an origin as browsers send it (like https://shop.example.com)"
        ));
    }
    Ok(())
}

impl IdempotencySettings {
    fn check(&self) -> Result<(), ConfigError> {
        first_broken(&[(
            self.retention.as_secs() == 0,
            "idempotency.retention",
            "must be at least one second",
        )])
    }
}

impl StoreSettings {
    fn check(&self) -> Result<(), ConfigError> {
        if let Err(why) = parse_store_uri(&self.uri) {
            return Err(ConfigError::key("store.uri", &why));
        }
        let (database, collection) = (&self.database, &self.collection);
        first_broken(&[
            (self.pool_size == 0, "store.pool_size", "must be at least 1"),
            (
                self.write_concern != "majority"
                    && !self.write_concern.parse::<u32>().is_ok_and(|n| n >= 1),
                "store.write_concern",
                "must be \"majority\" or a number of members (1 or more)",
            ),
            (
                database.is_empty() || database.contains(['/', '.', ' ', '$']),
                "store.database",
                "must be a MongoDB database name",
            ),
            (
                collection.is_empty() || collection.starts_with("system."),
                "store.collection",
                "must be a MongoDB collection name",
            ),
            (
                self.server_selection_timeout_ms == 0 || self.connect_timeout_ms == 0,
                "store.server_selection_timeout_ms",
                "timeouts must be at least 1 ms",
            ),
        ])
    }
}

impl ImageSettings {
    fn check(&self) -> Result<(), ConfigError> {
        if let Err(why) = crate::blobs::BlobLocation::parse(&self.blob_url) {
            return Err(ConfigError::key("images.blob_url", &why));
        }
        first_broken(&[
            (
                self.blob_timeout_ms == 0,
                "images.blob_timeout_ms",
                "must be at least 1 ms",
            ),
            (
                self.max_upload_bytes == 0 || self.max_pixels == 0,
                "images.max_upload_bytes",
                "limits must be at least 1",
            ),
            (
                self.max_concurrent_uploads == 0,
                "images.max_concurrent_uploads",
                "must be at least 1",
            ),
            (
                self.upload_wait_ms == 0,
                "images.upload_wait_ms",
                "must be at least 1 ms",
            ),
        ])
    }
}

impl QueueSettings {
    fn check(&self) -> Result<(), ConfigError> {
        first_broken(&[
            (
                !self.tls_ca_file.is_empty() && !self.url.starts_with("rediss://"),
                "queue.tls_ca_file",
                "is for a rediss:// queue URL only",
            ),
            (
                self.name.is_empty() || self.name.contains(char::is_whitespace),
                "queue.name",
                "must be a word without spaces",
            ),
            (
                self.lease_ms < 100,
                "queue.lease_ms",
                "must be at least 100 ms",
            ),
            (
                self.max_attempts == 0,
                "queue.max_attempts",
                "must be at least 1",
            ),
            (
                self.retry_base_ms > self.retry_max_ms,
                "queue.retry_base_ms",
                "must not exceed queue.retry_max_ms",
            ),
            (
                self.timeout_ms == 0,
                "queue.timeout_ms",
                "must be at least 1 ms",
            ),
            (
                self.reconcile_after_ms < 1000,
                "queue.reconcile_after_ms",
                "must be at least 1000 ms",
            ),
        ])
    }
}

impl WorkerSettings {
    fn check(&self) -> Result<(), ConfigError> {
        let thumbnail = &self.thumbnail;
        let size = 1..=4096;
        first_broken(&[
            (
                self.concurrency == 0,
                "worker.concurrency",
                "must be at least 1",
            ),
            (
                self.job_timeout_ms == 0,
                "worker.job_timeout_ms",
                "must be at least 1 ms",
            ),
            (
                self.decode_max_bytes < 1024 * 1024,
                "worker.decode_max_bytes",
                "must be at least 1 MiB",
            ),
            (
                !size.contains(&thumbnail.width) || !size.contains(&thumbnail.height),
                "worker.thumbnail.width",
                "sizes must be 1 to 4096 pixels",
            ),
            (
                !(1..=100).contains(&thumbnail.jpeg_quality),
                "worker.thumbnail.jpeg_quality",
                "must be 1 to 100",
            ),
        ])
    }
}
