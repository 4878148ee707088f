//! The embedded backend: one SQLite file in WAL mode (see `sqlite_pool`), shared safely by
//! several processes on one host: the schema and its migrations, error mapping and row helpers;
//! orders and image records each in their own file.

mod api_keys;
mod images;
mod keys;
mod orders;

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, Row, TransactionBehavior};

use super::StoreError;
use crate::config::StoreSettings;
use crate::orders::to_rfc3339_millis as timestamp;
use crate::sqlite_pool::{SqliteError, SqlitePool};

/// Schema steps, applied in order; `PRAGMA user_version` records how many have run.
const MIGRATIONS: &[&str] = &[
    r#"
    CREATE TABLE orders (
        id               TEXT PRIMARY KEY NOT NULL,
        product          TEXT NOT NULL,
        quantity         INTEGER NOT NULL,
        customer_name    TEXT NOT NULL,
        customer_address TEXT NOT NULL,
        created_at       TEXT NOT NULL,
        updated_at       TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX orders_by_customer_name ON orders (customer_name, id);
    CREATE INDEX orders_by_product ON orders (product, id);
"#,
    r#"
    CREATE TABLE images (
        id               TEXT PRIMARY KEY NOT NULL,
        status           TEXT NOT NULL,
        original_format  TEXT NOT NULL,
        original_width   INTEGER NOT NULL,
        original_height  INTEGER NOT NULL,
        original_bytes   INTEGER NOT NULL,
        thumbnail_format TEXT,
        thumbnail_width  INTEGER,
        thumbnail_height INTEGER,
        thumbnail_bytes  INTEGER,
        attempts         INTEGER NOT NULL,
        error            TEXT,
        created_at       TEXT NOT NULL,
        updated_at       TEXT NOT NULL
    ) WITHOUT ROWID;
"#,
    r#"
    CREATE TABLE idempotency_keys (
        scope       TEXT NOT NULL,
        key         TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        response    TEXT NOT NULL,
        expires_at  TEXT NOT NULL,
        PRIMARY KEY (scope, key)
    ) WITHOUT ROWID;
    CREATE INDEX idempotency_keys_by_expiry ON idempotency_keys (expires_at);
"#,
    r#"
    CREATE TABLE health (
        id         INTEGER PRIMARY KEY CHECK (id = 1),
        checked_at TEXT NOT NULL
    );
"#,
    r#"
    CREATE INDEX images_by_status_and_age ON images (status, updated_at);
"#,
    r#"
    ALTER TABLE images ADD COLUMN original_removed_at TEXT;
"#,
    r#"
    CREATE TABLE api_keys (
        id         TEXT PRIMARY KEY NOT NULL,
        name       TEXT NOT NULL,
        hash       TEXT NOT NULL,
        scopes     TEXT NOT NULL,
        created_at TEXT NOT NULL,
        expires_at TEXT,
        revoked_at TEXT
    ) WITHOUT ROWID;
"#,
];

pub struct SqliteStore {
    pool: SqlitePool,
    busy_timeout: Duration,
}

impl From<SqliteError> for StoreError {
    fn from(error: SqliteError) -> Self {
        match error {
            SqliteError::Busy => Self::Unavailable(error.to_string()),
            SqliteError::Full => Self::Full,
            SqliteError::Constraint(cause) => Self::Conflict(cause.to_string()),
            SqliteError::Other(cause) => Self::Internal(cause),
        }
    }
}

impl SqliteStore {
    pub async fn open(path: &Path, settings: &StoreSettings) -> Result<Self, StoreError> {
        let busy_timeout = Duration::from_millis(settings.busy_timeout_ms);
        let pool = SqlitePool::open(
            path,
            settings.pool_size as usize,
            busy_timeout,
            settings.synchronous,
            migrate,
        )
        .await
        .with_context(|| format!("opening the SQLite store at {}", path.display()))?;
        Ok(Self { pool, busy_timeout })
    }
}

/// Applies the missing schema steps. `BEGIN IMMEDIATE` takes the write lock before reading the
/// version, so replicas starting together on one file apply each step exactly once.
fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let applied: i64 = tx.pragma_query_value(None, "user_version", |row| row.get(0))?;
    for step in MIGRATIONS.iter().skip(applied.try_into().unwrap_or(0)) {
        tx.execute_batch(step)?;
    }
    tx.pragma_update(None, "user_version", MIGRATIONS.len() as i64)?;
    tx.commit()
}

fn invalid(index: usize, message: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, message.into())
}

fn time(row: &Row<'_>, index: usize) -> rusqlite::Result<DateTime<Utc>> {
    let text: String = row.get(index)?;
    DateTime::parse_from_rfc3339(&text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| invalid(index, e.to_string()))
}
