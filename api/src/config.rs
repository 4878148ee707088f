//! Settings, loaded once at start-up in layers: built-in defaults, then a TOML file, then
//! environment variables `APP__SECTION__KEY`. A bad value stops start-up with one line naming it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub store: StoreSettings,
    pub log: LogSettings,
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
