//! The settings of the api's family of binaries (`api`, `worker`, `seed`): one file for all of
//! them, loaded by `service` in layers (defaults < TOML < `APP__SECTION__KEY`). Each section
//! checks itself; each binary checks the sections it uses, so that `seed` never asks for a queue.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use service::ConfigError;
use service::logs::LogSettings;

pub use self::backends::{QueueBackend, StoreBackend};
use self::backends::{parse_store_uri, redact};
use crate::images::{DecodeLimits, ThumbnailSpec};
use crate::sqlite_pool::Synchronous;

mod backends;
mod checks;

pub use self::checks::Section;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub store: StoreSettings,
    pub images: ImageSettings,
    pub idempotency: IdempotencySettings,
    pub auth: AuthSettings,
    pub cors: CorsSettings,
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
    /// How long an upload waits for its turn before it is answered 503 with `Retry-After`.
    pub upload_wait_ms: u64,
    /// Where originals and thumbnails are kept: a folder (`data/blobs`, `file:///var/lib/x`;
    /// relative to the working folder) for one machine, or an S3-compatible bucket
    /// (`s3://BUCKET/PREFIX?endpoint=https://…&region=…`, e.g. DigitalOcean Spaces) when api
    /// replicas and workers are on several.
    pub blob_url: String,
    /// S3: the access key; empty to take `AWS_ACCESS_KEY_ID` (and the secret) from the
    /// environment.
    pub blob_access_key_id: String,
    /// S3: the secret key (never logged); prefer `AWS_SECRET_ACCESS_KEY` in the environment.
    pub blob_secret_access_key: String,
    /// How long after its thumbnail is made an original is kept (`"30d"`, `"12h"`); workers
    /// then remove it in small batches and `GET /images/{id}/original` answers 410. `"0s"`
    /// (the default) keeps originals for good.
    #[serde(with = "humantime_serde")]
    pub delete_originals_after: Duration,
    /// S3: how long one file operation may take, retries included, before the client gets 503
    /// (the worker retries later).
    pub blob_timeout_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdempotencySettings {
    /// How long an `Idempotency-Key` is remembered with what it created (`"24h"`, `"90m"`);
    /// past it a repeat creates anew, and the key is removed.
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// Every request to `/orders` and `/images` needs `Authorization: Bearer <key>` with the
    /// operation's scope (keys: `api keys create`). `false` lets every request through, keys or
    /// not: for a private network only; the api says so at start.
    pub required: bool,
    /// How long a replica trusts what it read of a key (`"10s"`): a revoked key stops working
    /// within this time.
    #[serde(with = "humantime_serde")]
    pub cache_ttl: Duration,
}

/// Cross-origin requests from browsers (a shop's front end on another origin). Nothing is
/// allowed until `allowed_origins` names an origin.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorsSettings {
    /// Origins allowed to call the api from a browser (`https://shop.example.com`), or `*`
    /// for any; empty for none.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    pub allowed_methods: Vec<String>,
    /// Request headers a browser may send.
    pub allowed_headers: Vec<String>,
    /// How long a browser may keep a preflight's answer.
    pub max_age_seconds: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueSettings {
    /// `redis://HOST:PORT/DB`, `rediss://…` (TLS), `sqlite://PATH`, or empty: a table in the
    /// store's SQLite file.
    pub url: String,
    /// `rediss://`: a PEM file of the CA that signs the server's certificate (a managed
    /// database's CA certificate); empty trusts the system's CAs.
    pub tls_ca_file: String,
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
    /// An image still `queued` or `processing`, unchanged this long and with no job in the queue
    /// (its job was lost), is queued again by a worker.
    pub reconcile_after_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerSettings {
    /// Jobs one worker process resizes at once (each on its own blocking thread).
    pub concurrency: usize,
    /// On SIGTERM, how long in-flight jobs may take to finish before they are handed back.
    pub shutdown_timeout_ms: u64,
    /// How long one attempt at a thumbnail may take; past it the attempt fails (and counts), so
    /// a picture that takes forever to decode ends `failed` instead of holding a worker.
    pub job_timeout_ms: u64,
    /// Memory one decode may take (decoded pixels and whole-image decoder buffers); a picture
    /// that needs more fails with the reason instead of growing the worker.
    pub decode_max_bytes: u64,
    pub thumbnail: ThumbnailSpec,
    /// Where the worker answers `/healthz` and `/metrics`; none by default.
    #[serde(default)]
    pub listen: Option<SocketAddr>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// Address to listen on; port 0 picks a free port (reported in the log).
    pub listen: SocketAddr,
    /// A second, private address answering only `/metrics`, `/healthz` and `/readyz`, with no
    /// key: for Prometheus on the private network. None by default. (`/metrics` on `listen`
    /// always needs a key with `admin`.)
    #[serde(default)]
    pub metrics_listen: Option<SocketAddr>,
    /// Largest request body accepted, in bytes.
    pub body_limit: usize,
    /// This replica's name, shown in every log line.
    pub instance: String,
    /// How long a client may take to send a request's headers; hyper also applies it to a
    /// kept-alive connection waiting for its next request, so it is the idle timeout too.
    pub header_read_timeout_ms: u64,
    /// On SIGTERM, how long requests in flight may take before their connections are cut.
    pub shutdown_timeout_ms: u64,
    /// After answering before a request's body was read (413, 415 …), how much more of it is
    /// read and dropped so that the client sees the answer (nginx's lingering close): at most
    /// this many bytes, for at most `linger_ms`.
    pub linger_bytes: u64,
    pub linger_ms: u64,
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
    /// SQLite (store and queue files): `full`, every acknowledged write survives power loss;
    /// `normal`, faster, survives a crash of the process but not of the machine.
    pub synchronous: Synchronous,
    /// MongoDB: how many members acknowledge a write before it is answered: `majority`, or a
    /// number of members.
    pub write_concern: String,
    /// MongoDB: a write is answered once it is in the server's on-disk journal.
    pub journal: bool,
    /// MongoDB: the database holding the collections.
    pub database: String,
    /// MongoDB: the orders collection.
    pub collection: String,
    /// MongoDB: how long opening a connection may take.
    pub connect_timeout_ms: u64,
    /// MongoDB: how long an operation waits for a reachable server before answering 503.
    pub server_selection_timeout_ms: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            server: ServerSettings {
                listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
                metrics_listen: None,
                body_limit: 64 * 1024,
                instance: "api".into(),
                header_read_timeout_ms: 30_000,
                shutdown_timeout_ms: 10_000,
                linger_bytes: 64 * 1024 * 1024,
                linger_ms: 5_000,
            },
            store: StoreSettings {
                uri: "sqlite://data/orders.db".into(),
                pool_size: 8,
                busy_timeout_ms: 5000,
                synchronous: Synchronous::Full,
                write_concern: "majority".into(),
                journal: true,
                database: "orders_db".into(),
                collection: "orders".into(),
                connect_timeout_ms: 2000,
                server_selection_timeout_ms: 2000,
            },
            images: ImageSettings {
                max_upload_bytes: 20 * 1024 * 1024,
                max_pixels: 50_000_000,
                max_concurrent_uploads: 16,
                upload_wait_ms: 10_000,
                blob_url: "data/blobs".into(),
                blob_access_key_id: String::new(),
                blob_secret_access_key: String::new(),
                blob_timeout_ms: 10_000,
                delete_originals_after: Duration::ZERO,
            },
            idempotency: IdempotencySettings {
                retention: Duration::from_secs(24 * 60 * 60),
            },
            auth: AuthSettings {
                required: true,
                cache_ttl: Duration::from_secs(10),
            },
            cors: CorsSettings {
                allowed_origins: Vec::new(),
                allowed_methods: ["GET", "POST", "PUT", "DELETE"].map(String::from).into(),
                allowed_headers: [
                    "authorization",
                    "content-type",
                    "idempotency-key",
                    "x-request-id",
                ]
                .map(String::from)
                .into(),
                max_age_seconds: 600,
            },
            queue: QueueSettings {
                url: String::new(),
                tls_ca_file: String::new(),
                name: "images".into(),
                lease_ms: 30_000,
                max_attempts: 3,
                retry_base_ms: 1000,
                retry_max_ms: 60_000,
                timeout_ms: 2000,
                reconcile_after_ms: 60_000,
            },
            worker: WorkerSettings {
                concurrency: 2,
                shutdown_timeout_ms: 10_000,
                job_timeout_ms: 60_000,
                decode_max_bytes: DecodeLimits::default().max_bytes,
                thumbnail: ThumbnailSpec::default(),
                listen: None,
            },
            log: LogSettings::default(),
        }
    }
}

service::settings_family!(Settings, Api);

impl StoreSettings {
    /// The backend the (checked) URI names.
    pub fn backend(&self) -> StoreBackend {
        parse_store_uri(&self.uri).expect("store.uri is checked when settings load")
    }

    /// The URI with any password replaced, safe to log.
    pub fn redacted_uri(&self) -> String {
        redact(&self.uri)
    }
}

impl Settings {
    /// The job queue: `queue.url`, or when it is empty a table in the store's SQLite file;
    /// `None` when it is empty and the store is not SQLite (then there is no queue).
    pub fn queue_backend(&self) -> Result<Option<QueueBackend>, ConfigError> {
        backends::queue_backend(&self.queue.url, &self.store.uri)
            .map_err(|why| ConfigError::key("queue.url", &why))
    }

    /// As [`Self::queue_backend`], for a binary that cannot work without a queue.
    pub fn required_queue(&self) -> Result<QueueBackend, ConfigError> {
        self.queue_backend()?.ok_or_else(|| {
            ConfigError::key(
                "queue.url",
                "must be set (redis://… or sqlite://…) when the store is not SQLite",
            )
        })
    }

    /// The queue URL with any password replaced, safe to log.
    pub fn redacted_queue(&self) -> String {
        match self.queue_backend() {
            Ok(Some(QueueBackend::Redis(url))) => redact(&url),
            Ok(Some(QueueBackend::Sqlite(path))) => format!("sqlite://{}", path.display()),
            Ok(None) => "none".into(),
            Err(_) => redact(&self.queue.url),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Settings;

    #[test]
    fn the_catalogue_lists_every_key() {
        service::settings::check_catalogue::<Settings>(service::Family::Api).unwrap();
    }

    #[test]
    fn writes_are_durable_by_default() {
        let store = Settings::default().store;
        assert_eq!(store.synchronous, crate::sqlite_pool::Synchronous::Full);
        assert_eq!(
            (store.write_concern.as_str(), store.journal),
            ("majority", true)
        );
    }

    #[test]
    fn the_queue_defaults_to_the_store_file_and_is_optional_beside_mongodb() {
        let mut settings = Settings::default();
        assert!(settings.queue_backend().unwrap().is_some());
        settings.store.uri = "mongodb://db:27017/".into();
        assert!(settings.queue_backend().unwrap().is_none());
        assert_eq!(settings.redacted_queue(), "none");
        let error = settings.required_queue().unwrap_err();
        assert!(error.to_string().contains("queue.url"), "{error}");
        settings.queue.url = "redis://:s3cret@cache:6379/0".into();
        assert!(settings.required_queue().is_ok());
        assert_eq!(settings.redacted_queue(), "redis://:***@cache:6379/0");
    }
}
