//! One SQLite file opened by a process: the connection pool, the pragmas every connection gets,
//! and what "busy" means. The order store and the job queue both keep their tables through it
//! (by default in the same file).
//!
//! rusqlite is blocking, so each pooled connection lives on its own thread (async-sqlite) and
//! async callers hand it work through a queue: the async workers never wait on SQLite, and under
//! load a connection thread drains its queue without a context switch per query.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use async_sqlite::{Pool, PoolBuilder};
use backon::{BlockingRetryable, ExponentialBuilder};
use rusqlite::{Connection, ErrorCode};

/// Why a piece of work on the file failed.
#[derive(Debug, thiserror::Error)]
pub enum SqliteError {
    /// Another process held the file's lock past the busy timeout.
    #[error("the SQLite file stayed locked past the busy timeout")]
    Busy,
    /// The statement broke a constraint (a duplicate key).
    #[error("constraint violated: {0}")]
    Constraint(rusqlite::Error),
    /// The file system holding the file is full (`SQLITE_FULL`, from `ENOSPC`).
    #[error("the disk holding the SQLite file is full")]
    Full,
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// How far a commit is on disk when SQLite reports it done (`PRAGMA synchronous`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    /// Every commit is fsynced before it is acknowledged: it survives power loss.
    Full,
    /// A commit survives a crash of any process; power loss or an OS crash can drop the last
    /// ones (faster: the WAL is fsynced at checkpoints only).
    Normal,
}

impl Synchronous {
    fn pragma(self) -> &'static str {
        match self {
            Self::Full => "FULL",
            Self::Normal => "NORMAL",
        }
    }
}

pub struct SqlitePool {
    pool: Pool,
}

impl SqlitePool {
    /// Opens `connections` connections to the file (created with its folder if missing) and
    /// runs `setup` once on one of them, retried while another process holds the file (below).
    pub async fn open(
        path: &Path,
        connections: usize,
        busy_timeout: Duration,
        synchronous: Synchronous,
        setup: fn(&mut Connection) -> rusqlite::Result<()>,
    ) -> anyhow::Result<Self> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating the folder {}", parent.display()))?;
        }
        let pool = PoolBuilder::new()
            .path(path)
            .num_conns(connections)
            .open()
            .await?;
        for outcome in pool
            .conn_for_each(move |conn| {
                conn.busy_timeout(busy_timeout)?;
                conn.pragma_update(None, "synchronous", synchronous.pragma())?;
                conn.set_prepared_statement_cache_capacity(32);
                Ok(())
            })
            .await
        {
            outcome?;
        }
        pool.conn_mut(move |conn| {
            // Processes starting together on a new file can deadlock while switching it to WAL;
            // SQLite then answers BUSY at once instead of waiting, so the whole step is retried.
            (|| {
                conn.pragma_update(None, "journal_mode", "WAL")?;
                setup(conn)
            })
            .retry(
                ExponentialBuilder::default()
                    .with_min_delay(Duration::from_millis(10))
                    .with_max_delay(Duration::from_millis(500))
                    .with_total_delay(Some(busy_timeout.max(Duration::from_secs(5))))
                    .without_max_times()
                    .with_jitter(),
            )
            .when(is_busy)
            .call()
        })
        .await?;
        Ok(Self { pool })
    }

    /// Runs blocking work on one of the pool's connection threads; its failure comes back as
    /// the caller's error type (the store's or the queue's).
    pub async fn run<T, E, F>(&self, work: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<SqliteError>,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        self.pool.conn_mut(work).await.map_err(|error| {
            E::from(match error {
                async_sqlite::Error::Rusqlite(error) if is_busy(&error) => SqliteError::Busy,
                async_sqlite::Error::Rusqlite(error)
                    if error.sqlite_error_code() == Some(ErrorCode::DiskFull) =>
                {
                    SqliteError::Full
                }
                async_sqlite::Error::Rusqlite(error)
                    if error.sqlite_error_code() == Some(ErrorCode::ConstraintViolation) =>
                {
                    SqliteError::Constraint(error)
                }
                other => SqliteError::Other(other.into()),
            })
        })
    }
}

pub fn is_busy(error: &rusqlite::Error) -> bool {
    matches!(
        error.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{SqlitePool, Synchronous};

    #[tokio::test]
    async fn every_connection_commits_as_durably_as_asked() {
        let dir = tempfile::tempdir().unwrap();
        for (synchronous, level) in [(Synchronous::Full, 2), (Synchronous::Normal, 1)] {
            let path = dir.path().join(format!("{level}.db"));
            let pool = SqlitePool::open(&path, 3, Duration::from_secs(1), synchronous, |_| Ok(()))
                .await
                .unwrap();
            for _ in 0..6 {
                let found: i64 = pool
                    .run::<_, super::SqliteError, _>(|conn| {
                        conn.pragma_query_value(None, "synchronous", |row| row.get(0))
                    })
                    .await
                    .unwrap();
                assert_eq!(found, level, "{synchronous:?}");
            }
        }
    }
}
