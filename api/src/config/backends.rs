//! Which backend a store URI or a queue URL names, and how such a string is shown in logs:
//! never with its password.

use std::path::PathBuf;

/// The backend a store URI selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreBackend {
    Sqlite(PathBuf),
    Mongo,
}

/// The job queue a queue URL selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueBackend {
    Sqlite(PathBuf),
    Redis(String),
}

pub(super) fn parse_store_uri(uri: &str) -> Result<StoreBackend, String> {
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

/// `url` when set; else a table in the store's SQLite file; else none.
pub(super) fn queue_backend(url: &str, store_uri: &str) -> Result<Option<QueueBackend>, String> {
    if url.is_empty() {
        return Ok(match parse_store_uri(store_uri) {
            Ok(StoreBackend::Sqlite(path)) => Some(QueueBackend::Sqlite(path)),
            _ => None,
        });
    }
    if url.starts_with("redis://") || url.starts_with("rediss://") {
        return redis::Client::open(url)
            .map(|_| Some(QueueBackend::Redis(url.to_owned())))
            .map_err(|e| format!("{:?} is not a Redis URL: {e}", redact(url)));
    }
    match parse_store_uri(url) {
        Ok(StoreBackend::Sqlite(path)) => Ok(Some(QueueBackend::Sqlite(path))),
        _ => Err(format!(
            "{:?}: expected redis://HOST:PORT, sqlite://PATH, or empty for the store's SQLite file",
            redact(url)
        )),
    }
}

/// Replaces the password of `scheme://user:password@host` with `***`.
pub(super) fn redact(uri: &str) -> String {
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
    fn a_queue_url_names_redis_or_sqlite_and_nothing_else() {
        let sqlite = "sqlite://data/orders.db";
        assert_eq!(
            queue_backend("", sqlite).unwrap(),
            Some(QueueBackend::Sqlite(PathBuf::from("data/orders.db")))
        );
        assert_eq!(queue_backend("", "mongodb://db/").unwrap(), None);
        assert_eq!(
            queue_backend("redis://cache:6379/0", "mongodb://db/").unwrap(),
            Some(QueueBackend::Redis("redis://cache:6379/0".into()))
        );
        let why = queue_backend("amqp://u:topsecret@broker", sqlite).unwrap_err();
        assert!(why.contains("expected redis://"), "{why}");
        assert!(!why.contains("topsecret"), "{why}");
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
