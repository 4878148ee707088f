//! Settings, loaded once at start-up in layers: built-in defaults, then a TOML file, then
//! environment variables `APP__SECTION__KEY`. A bad value stops start-up with one line naming it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::images::ThumbnailSpec;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub store: StoreSettings,
    pub images: ImageSettings,
    pub queue: QueueSettings,
    pub worker: WorkerSettings,
    pub log: LogSettings,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageSettings {
    /// Largest upload accepted (the whole multipart body), in bytes.
    pub max_upload_bytes: usize,
    /// Largest canvas accepted (width × height, read from the header), in pixels.
    pub max_pixels: u64,
    /// Uploads read at once per replica (each may hold up to `max_upload_bytes` in memory);
    /// more wait their turn.
    pub max_concurrent_uploads: usize,
    /// Folder holding originals and thumbnails (a shared volume when replicas are on several
    /// machines); relative to the working folder.
    pub blob_dir: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueSettings {
    /// `redis://HOST:PORT/DB`, `sqlite://PATH`, or empty: a table in the store's SQLite file.
    pub url: String,
    /// Prefix of the Redis keys (`images:jobs`, `images:delayed`), so stacks can share a server.
    pub name: String,
    /// How long a worker holds a job without renewing it before another worker takes it over.
    pub lease_ms: u64,
    /// Attempts per image before it is marked `failed`.
    pub max_attempts: u32,
    /// Delay before the first retry; doubled per attempt (with jitter) up to `retry_max_ms`.
    pub retry_base_ms: u64,
    pub retry_max_ms: u64,
    /// Redis: how long connecting and each command may take before the caller gets 503.
    pub timeout_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerSettings {
    /// Jobs one worker process resizes at once (each on its own blocking thread).
    pub concurrency: usize,
    /// On SIGTERM, how long in-flight jobs may take to finish before they are handed back.
    pub shutdown_timeout_ms: u64,
    pub thumbnail: ThumbnailSpec,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// Address to listen on; port 0 picks a free port (reported in the log).
    pub listen: SocketAddr,
    /// Largest request body accepted, in bytes.
    pub body_limit: usize,
    /// This replica's name, shown in every log line.
    pub instance: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSettings {
    /// `sqlite://PATH` (relative to the working folder, or absolute as `sqlite:///abs/path`),
    /// or `mongodb://…` / `mongodb+srv://…`.
    pub uri: String,
    /// Connections kept per process (SQLite connection threads; MongoDB's maximum pool size).
    pub pool_size: u32,
    /// SQLite: how long a write waits for another process's lock before answering 503.
    pub busy_timeout_ms: u64,
    /// MongoDB: the database holding the collections.
    pub database: String,
    /// MongoDB: the orders collection.
    pub collection: String,
    /// MongoDB: how long opening a connection may take.
    pub connect_timeout_ms: u64,
    /// MongoDB: how long an operation waits for a reachable server before answering 503.
    pub server_selection_timeout_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `api=debug,tower_http=info`; `RUST_LOG` overrides it.
    pub level: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// The job queue a queue URL selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueBackend {
    Sqlite(PathBuf),
    Redis(String),
}

/// The backend a store URI selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreBackend {
    Sqlite(PathBuf),
    Mongo,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            server: ServerSettings {
                listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
                body_limit: 64 * 1024,
                instance: "api".into(),
            },
            store: StoreSettings {
                uri: "sqlite://data/orders.db".into(),
                pool_size: 8,
                busy_timeout_ms: 5000,
                database: "orders_db".into(),
                collection: "orders".into(),
                connect_timeout_ms: 2000,
                server_selection_timeout_ms: 2000,
            },
            images: ImageSettings {
                max_upload_bytes: 20 * 1024 * 1024,
                max_pixels: 50_000_000,
                max_concurrent_uploads: 16,
                blob_dir: PathBuf::from("data/blobs"),
            },
            queue: QueueSettings {
                url: String::new(),
                name: "images".into(),
                lease_ms: 30_000,
                max_attempts: 3,
                retry_base_ms: 1000,
                retry_max_ms: 60_000,
                timeout_ms: 2000,
            },
            worker: WorkerSettings {
                concurrency: 2,
                shutdown_timeout_ms: 10_000,
                thumbnail: ThumbnailSpec::default(),
            },
            log: LogSettings {
                format: LogFormat::Text,
                level: "info".into(),
            },
        }
    }
}

pub use settings::ConfigError;

impl Settings {
    /// Loads defaults < `file` (if given) < environment variables with `prefix` (`APP`).
    pub fn load(file: Option<&Path>, prefix: &str) -> Result<Self, ConfigError> {
        let settings: Settings = settings::load(file, prefix, &[])?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let fail = |key: &str, why: &str| Err(ConfigError::key(key, why));
        if self.server.body_limit == 0 {
            return fail("server.body_limit", "must be at least 1 byte");
        }
        if self.server.instance.trim().is_empty() {
            return fail("server.instance", "must not be empty");
        }
        if self.store.pool_size == 0 {
            return fail("store.pool_size", "must be at least 1");
        }
        if let Err(why) = parse_store_uri(&self.store.uri) {
            return fail("store.uri", &why);
        }
        if self.store.database.is_empty() || self.store.database.contains(['/', '.', ' ', '$']) {
            return fail("store.database", "must be a MongoDB database name");
        }
        if self.store.collection.is_empty() || self.store.collection.starts_with("system.") {
            return fail("store.collection", "must be a MongoDB collection name");
        }
        if self.store.server_selection_timeout_ms == 0 || self.store.connect_timeout_ms == 0 {
            return fail(
                "store.server_selection_timeout_ms",
                "timeouts must be at least 1 ms",
            );
        }
        if self.images.max_upload_bytes == 0 || self.images.max_pixels == 0 {
            return fail("images.max_upload_bytes", "limits must be at least 1");
        }
        if self.images.max_concurrent_uploads == 0 {
            return fail("images.max_concurrent_uploads", "must be at least 1");
        }
        if let Err(why) = self.queue_backend() {
            return fail("queue.url", &why);
        }
        if self.queue.name.is_empty() || self.queue.name.contains(char::is_whitespace) {
            return fail("queue.name", "must be a word without spaces");
        }
        if self.queue.lease_ms < 100 {
            return fail("queue.lease_ms", "must be at least 100 ms");
        }
        if self.queue.max_attempts == 0 {
            return fail("queue.max_attempts", "must be at least 1");
        }
        if self.queue.retry_base_ms > self.queue.retry_max_ms {
            return fail("queue.retry_base_ms", "must not exceed queue.retry_max_ms");
        }
        if self.queue.timeout_ms == 0 {
            return fail("queue.timeout_ms", "must be at least 1 ms");
        }
        if self.worker.concurrency == 0 {
            return fail("worker.concurrency", "must be at least 1");
        }
        let thumbnail = &self.worker.thumbnail;
        if !(1..=4096).contains(&thumbnail.width) || !(1..=4096).contains(&thumbnail.height) {
            return fail("worker.thumbnail.width", "sizes must be 1 to 4096 pixels");
        }
        if !(1..=100).contains(&thumbnail.jpeg_quality) {
            return fail("worker.thumbnail.jpeg_quality", "must be 1 to 100");
        }
        if self
            .log
            .level
            .parse::<tracing_subscriber::EnvFilter>()
            .is_err()
        {
            return fail("log.level", "is not a valid tracing filter");
        }
        Ok(())
    }
}

impl Settings {
    /// The queue the settings name, or why they name none.
    pub fn queue_backend(&self) -> Result<QueueBackend, String> {
        let url = self.queue.url.as_str();
        if url.is_empty() {
            return match parse_store_uri(&self.store.uri) {
                Ok(StoreBackend::Sqlite(path)) => Ok(QueueBackend::Sqlite(path)),
                _ => {
                    Err("must be set (redis://… or sqlite://…) when the store is not SQLite".into())
                }
            };
        }
        if url.starts_with("redis://") || url.starts_with("rediss://") {
            return redis::Client::open(url)
                .map(|_| QueueBackend::Redis(url.to_owned()))
                .map_err(|e| format!("{:?} is not a Redis URL: {e}", redact(url)));
        }
        match parse_store_uri(url) {
            Ok(StoreBackend::Sqlite(path)) => Ok(QueueBackend::Sqlite(path)),
            _ => Err(format!(
                "{:?}: expected redis://HOST:PORT, sqlite://PATH, or empty for the store's SQLite file",
                redact(url)
            )),
        }
    }

    /// The queue URL with any password replaced, safe to log.
    pub fn redacted_queue(&self) -> String {
        match self.queue_backend() {
            Ok(QueueBackend::Redis(url)) => redact(&url),
            Ok(QueueBackend::Sqlite(path)) => format!("sqlite://{}", path.display()),
            Err(_) => redact(&self.queue.url),
        }
    }
}

impl StoreSettings {
    /// The backend the (validated) URI names.
    pub fn backend(&self) -> StoreBackend {
        parse_store_uri(&self.uri).expect("store.uri is validated when settings load")
    }

    /// The URI with any password replaced, safe to log.
    pub fn redacted_uri(&self) -> String {
        redact(&self.uri)
    }
}

fn parse_store_uri(uri: &str) -> Result<StoreBackend, String> {
    if let Some(path) = uri.strip_prefix("sqlite://") {
        if path.is_empty() {
            return Err("sqlite:// needs a file path, e.g. sqlite://data/orders.db".into());
        }
        return Ok(StoreBackend::Sqlite(PathBuf::from(path)));
    }
    if uri.starts_with("mongodb://") || uri.starts_with("mongodb+srv://") {
        return Ok(StoreBackend::Mongo);
    }
    let scheme = uri.split("://").next().unwrap_or_default();
    Err(format!(
        "unsupported scheme {scheme:?} in {:?}: expected sqlite://PATH or mongodb://HOST",
        redact(uri)
    ))
}

/// Replaces the password of `scheme://user:password@host` with `***`.
fn redact(uri: &str) -> String {
    let Some((scheme, rest)) = uri.split_once("://") else {
        return uri.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return uri.to_owned();
    };
    match rest[..at].split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***{}", &rest[at..]),
        None => uri.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_is_redacted_and_the_rest_kept() {
        assert_eq!(
            redact("mongodb://shop:s3cret@db.internal:27017/orders_db?authSource=admin"),
            "mongodb://shop:***@db.internal:27017/orders_db?authSource=admin"
        );
        assert_eq!(redact("sqlite://data/orders.db"), "sqlite://data/orders.db");
        assert_eq!(redact("mongodb://shop@db/x"), "mongodb://shop@db/x");
    }

    #[test]
    fn an_unknown_scheme_is_rejected_without_showing_the_password() {
        let why = parse_store_uri("postgres://u:topsecret@h/db").unwrap_err();
        assert!(why.contains("postgres"));
        assert!(!why.contains("topsecret"));
    }

    #[test]
    fn the_queue_defaults_to_the_store_file_and_needs_a_url_beside_mongodb() {
        let mut settings = Settings::default();
        assert_eq!(
            settings.queue_backend().unwrap(),
            QueueBackend::Sqlite(PathBuf::from("data/orders.db"))
        );
        settings.store.uri = "mongodb://db:27017/".into();
        assert!(
            settings
                .queue_backend()
                .unwrap_err()
                .contains("must be set")
        );
        settings.queue.url = "redis://:s3cret@cache:6379/0".into();
        assert_eq!(
            settings.queue_backend().unwrap(),
            QueueBackend::Redis("redis://:s3cret@cache:6379/0".into())
        );
        assert_eq!(settings.redacted_queue(), "redis://:***@cache:6379/0");
        settings.queue.url = "amqp://broker".into();
        assert!(
            settings
                .queue_backend()
                .unwrap_err()
                .contains("expected redis://")
        );
    }

    #[test]
    fn a_relative_sqlite_path_is_kept_relative() {
        assert_eq!(
            parse_store_uri("sqlite://data/x.db").unwrap(),
            StoreBackend::Sqlite(PathBuf::from("data/x.db"))
        );
        assert_eq!(
            parse_store_uri("sqlite:///var/lib/x.db").unwrap(),
            StoreBackend::Sqlite(PathBuf::from("/var/lib/x.db"))
        );
    }
}
