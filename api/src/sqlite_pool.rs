//! One SQLite file opened by a process: the connection pool, the pragmas every connection gets,
//! and what "busy" means. The order store and the job queue both keep their tables through it
//! (by default in the same file).
//!
//! rusqlite is blocking, so each pooled connection lives on its own thread (async-sqlite) and
//! async callers hand it work through a queue: under load a connection thread drains its queue
//! without a context switch per query. The one exception is a point read by primary key (an
//! order, an image): it costs less than the hand-off itself, so it runs on the calling thread,
//! on a read-only connection that thread keeps (`read_here`), and goes through the queue only
//! when the file is locked. The async workers never wait for a lock.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use async_sqlite::{Pool, PoolBuilder};
use backon::{BlockingRetryable, ExponentialBuilder};
use rusqlite::{Connection, ErrorCode, OpenFlags};
use thread_local::ThreadLocal;

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
    path: PathBuf,
    /// Read-only connections for point reads, one per thread that asked (`read_here`).
    readers: ThreadLocal<RefCell<Connection>>,
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
        Ok(Self {
            pool,
            path: path.to_owned(),
            readers: ThreadLocal::new(),
        })
    }

    /// Runs a short read right on the calling thread, on a read-only connection of its own:
    /// no hand-off to a connection thread and back, which costs more than an indexed lookup.
    /// It never waits for a lock there (an async worker must not block): if the file is busy,
    /// the read goes through the pool's threads as `run` does.
    pub async fn read_here<T, E, F>(&self, work: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<SqliteError>,
        F: Fn(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        // A reader that cannot be opened leaves the queue to serve the read, as a lock does.
        let here = match self
            .readers
            .get_or_try(|| self.open_reader().map(RefCell::new))
        {
            Ok(reader) => reader.try_borrow_mut().ok().map(|mut conn| work(&mut conn)),
            Err(_) => None,
        };
        match here {
            Some(Ok(found)) => Ok(found),
            Some(Err(error)) if !is_busy(&error) => Err(E::from(classify(error))),
            _ => self.run(work).await,
        }
    }

    fn open_reader(&self) -> rusqlite::Result<Connection> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.set_prepared_statement_cache_capacity(16);
        Ok(conn)
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
                async_sqlite::Error::Rusqlite(error) => classify(error),
                other => SqliteError::Other(other.into()),
            })
        })
    }
}

fn classify(error: rusqlite::Error) -> SqliteError {
    if is_busy(&error) {
        return SqliteError::Busy;
    }
    match error.sqlite_error_code() {
        Some(ErrorCode::DiskFull) => SqliteError::Full,
        Some(ErrorCode::ConstraintViolation) => SqliteError::Constraint(error),
        _ => SqliteError::Other(error.into()),
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

    use super::{SqliteError, SqlitePool, Synchronous};

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
                    .run::<_, SqliteError, _>(|conn| {
                        conn.pragma_query_value(None, "synchronous", |row| row.get(0))
                    })
                    .await
                    .unwrap();
                assert_eq!(found, level, "{synchronous:?}");
            }
        }
    }

    async fn open(path: &std::path::Path) -> SqlitePool {
        SqlitePool::open(
            path,
            2,
            Duration::from_secs(5),
            Synchronous::Normal,
            |conn| {
                conn.execute_batch("CREATE TABLE IF NOT EXISTS t (k INTEGER PRIMARY KEY, v TEXT)")
            },
        )
        .await
        .unwrap()
    }

    fn value(conn: &mut rusqlite::Connection, k: i64) -> rusqlite::Result<Option<String>> {
        use rusqlite::OptionalExtension;
        conn.query_row("SELECT v FROM t WHERE k = ?1", [k], |row| row.get(0))
            .optional()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reads_here_see_every_write_committed_before_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rw.db");
        let writer = open(&path).await;
        // Another process's pool on the same file, as each api replica has.
        let reader = open(&path).await;
        for k in 0..200_i64 {
            let read = move |conn: &mut rusqlite::Connection| value(conn, k);
            assert_eq!(
                reader.read_here::<_, SqliteError, _>(read).await.unwrap(),
                None
            );
            writer
                .run::<_, SqliteError, _>(move |conn| {
                    conn.execute("INSERT INTO t (k, v) VALUES (?1, ?2)", (k, format!("v{k}")))
                        .map(drop)
                })
                .await
                .unwrap();
            let found = reader.read_here::<_, SqliteError, _>(read).await.unwrap();
            assert_eq!(found.as_deref(), Some(format!("v{k}").as_str()), "{k}");
        }
    }
}
