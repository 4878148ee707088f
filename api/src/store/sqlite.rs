//! The embedded backend: one SQLite file in WAL mode, shared safely by several processes on one
//! host. rusqlite is blocking, so each pooled connection lives on its own thread (async-sqlite)
//! and async callers hand it work through a queue: the async workers never wait on SQLite, and
//! under load a connection thread drains its queue without a context switch per query.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use async_sqlite::{Pool, PoolBuilder};
use async_trait::async_trait;
use backon::{BlockingRetryable, ExponentialBuilder};
use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{Connection, ErrorCode, OptionalExtension, Row, TransactionBehavior, params};

use super::{OrderStore, StoreError};
use crate::config::StoreSettings;
use crate::orders::{
    CustomerAddress, CustomerName, ListRequest, Order, OrderChanges, OrderId, Page, Product,
    Quantity,
};

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
];

const COLUMNS: &str =
    "id, product, quantity, customer_name, customer_address, created_at, updated_at";

pub struct SqliteStore {
    pool: Pool,
}

impl SqliteStore {
    pub async fn open(path: &Path, settings: &StoreSettings) -> Result<Self, StoreError> {
        let busy_timeout = Duration::from_millis(settings.busy_timeout_ms);
        let pool = open_pool(path, settings.pool_size as usize, busy_timeout, migrate)
            .await
            .with_context(|| format!("opening the SQLite store at {}", path.display()))?;
        Ok(Self { pool })
    }

    /// Runs blocking SQLite work on one of the pool's connection threads.
    pub(super) async fn run<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        self.pool.conn_mut(work).await.map_err(|error| match error {
            async_sqlite::Error::Rusqlite(error) => map_error(error),
            other => StoreError::Internal(other.into()),
        })
    }
}

/// Opens `connections` connections to the file (created if missing) and runs `setup` once on
/// one of them, retried while another process holds the file (see below).
pub(crate) async fn open_pool(
    path: &Path,
    connections: usize,
    busy_timeout: Duration,
    setup: fn(&mut Connection) -> rusqlite::Result<()>,
) -> anyhow::Result<Pool> {
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
            // WAL with NORMAL sync survives a crash of any process; only an OS crash or
            // power loss can drop the last transactions.
            conn.pragma_update(None, "synchronous", "NORMAL")?;
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
    Ok(pool)
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

pub(crate) fn is_busy(error: &rusqlite::Error) -> bool {
    matches!(
        error.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

fn map_error(error: rusqlite::Error) -> StoreError {
    match error.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            StoreError::Unavailable("the SQLite file stayed locked past the busy timeout".into())
        }
        Some(ErrorCode::ConstraintViolation) => StoreError::Conflict(error.to_string()),
        _ => StoreError::Internal(error.into()),
    }
}

pub(super) fn timestamp(time: &DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub(super) fn invalid(index: usize, message: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, message.into())
}

pub(super) fn time(row: &Row<'_>, index: usize) -> rusqlite::Result<DateTime<Utc>> {
    let text: String = row.get(index)?;
    DateTime::parse_from_rfc3339(&text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| invalid(index, e.to_string()))
}

fn read_order(row: &Row<'_>) -> rusqlite::Result<Order> {
    let id: String = row.get(0)?;
    Ok(Order {
        id: OrderId::parse(&id).map_err(|e| invalid(0, e))?,
        product: Product::parse(row.get::<_, String>(1)?).map_err(|e| invalid(1, e))?,
        quantity: Quantity::parse(row.get(2)?).map_err(|e| invalid(2, e))?,
        customer_name: CustomerName::parse(row.get::<_, String>(3)?).map_err(|e| invalid(3, e))?,
        customer_address: CustomerAddress::parse(row.get::<_, String>(4)?)
            .map_err(|e| invalid(4, e))?,
        created_at: time(row, 5)?,
        updated_at: time(row, 6)?,
    })
}

fn insert_one(conn: &Connection, order: &Order) -> rusqlite::Result<()> {
    let mut statement = conn.prepare_cached(&format!(
        "INSERT INTO orders ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
    ))?;
    statement.execute(params![
        order.id.to_string(),
        order.product.as_ref(),
        order.quantity.get(),
        order.customer_name.as_ref(),
        order.customer_address.as_ref(),
        timestamp(&order.created_at),
        timestamp(&order.updated_at),
    ])?;
    Ok(())
}

/// The listing query for one combination of filters. Each combination has its own SQL text, so
/// that SQLite picks the matching `(filter, id)` index instead of scanning.
fn list_sql(request: &ListRequest) -> String {
    let mut conditions = Vec::new();
    if request.customer_name.is_some() {
        conditions.push("customer_name = :customer_name");
    }
    if request.product.is_some() {
        conditions.push("product = :product");
    }
    if request.after.is_some() {
        conditions.push("id > :after");
    }
    let filter = if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.join(" AND "))
    };
    format!("SELECT {COLUMNS} FROM orders {filter} ORDER BY id LIMIT :limit")
}

#[async_trait]
impl OrderStore for SqliteStore {
    async fn insert(&self, order: &Order) -> Result<(), StoreError> {
        let order = order.clone();
        self.run(move |conn| insert_one(conn, &order)).await
    }

    async fn insert_many(&self, orders: &[Order]) -> Result<(), StoreError> {
        let orders = orders.to_vec();
        self.run(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            for order in &orders {
                insert_one(&tx, order)?;
            }
            tx.commit()
        })
        .await
    }

    async fn get(&self, id: OrderId) -> Result<Option<Order>, StoreError> {
        self.run(move |conn| {
            conn.prepare_cached(&format!("SELECT {COLUMNS} FROM orders WHERE id = ?1"))?
                .query_row([id.to_string()], read_order)
                .optional()
        })
        .await
    }

    async fn update(
        &self,
        id: OrderId,
        changes: &OrderChanges,
        now: DateTime<Utc>,
    ) -> Result<Option<Order>, StoreError> {
        let changes = changes.clone();
        self.run(move |conn| {
            conn.prepare_cached(&format!(
                "UPDATE orders SET
                    product = COALESCE(?1, product),
                    quantity = COALESCE(?2, quantity),
                    customer_name = COALESCE(?3, customer_name),
                    customer_address = COALESCE(?4, customer_address),
                    updated_at = ?5
                 WHERE id = ?6
                 RETURNING {COLUMNS}"
            ))?
            .query_row(
                params![
                    changes.product.as_ref().map(AsRef::as_ref),
                    changes.quantity.map(|q| q.get()),
                    changes.customer_name.as_ref().map(AsRef::as_ref),
                    changes.customer_address.as_ref().map(AsRef::as_ref),
                    timestamp(&now),
                    id.to_string(),
                ],
                read_order,
            )
            .optional()
        })
        .await
    }

    async fn delete(&self, id: OrderId) -> Result<bool, StoreError> {
        self.run(move |conn| {
            let deleted = conn
                .prepare_cached("DELETE FROM orders WHERE id = ?1")?
                .execute([id.to_string()])?;
            Ok(deleted > 0)
        })
        .await
    }

    async fn list(&self, request: &ListRequest) -> Result<Page, StoreError> {
        let size = request.size;
        let request = request.clone();
        let orders = self
            .run(move |conn| {
                let mut statement = conn.prepare_cached(&list_sql(&request))?;
                let limit = i64::from(request.size.get()) + 1;
                let customer_name = request
                    .customer_name
                    .as_ref()
                    .map(|n| n.as_ref().to_owned());
                let product = request.product.as_ref().map(|p| p.as_ref().to_owned());
                let after = request.after.map(|c| c.id().to_string());
                let mut named: Vec<(&str, &dyn rusqlite::ToSql)> = vec![(":limit", &limit)];
                let optional = [
                    (":customer_name", &customer_name),
                    (":product", &product),
                    (":after", &after),
                ];
                for (name, value) in optional {
                    if let Some(value) = value {
                        named.push((name, value));
                    }
                }
                statement
                    .query_map(named.as_slice(), read_order)?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .await?;
        Ok(Page::from_overfetch(orders, size))
    }

    async fn clear(&self) -> Result<(), StoreError> {
        self.run(|conn| conn.execute("DELETE FROM orders", []).map(drop))
            .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.run(|conn| conn.query_row("SELECT count(*) FROM sqlite_schema", [], |_| Ok(())))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::{list_sql, migrate};
    use crate::orders::{Cursor, CustomerName, ListRequest, OrderId, Product};

    /// Every combination of filters the API offers must be answered from an index, in id order,
    /// so that a page costs the same with a thousand orders or a million.
    #[test]
    fn every_listing_query_reads_an_index_without_sorting() {
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        let name = || Some(CustomerName::parse("Ada").unwrap());
        let product = || Some(Product::parse("Pen").unwrap());
        let after = || Some(Cursor::after(OrderId::generate()));
        for (customer_name, product, after) in [
            (None, None, None),
            (None, None, after()),
            (name(), None, after()),
            (None, product(), after()),
            (name(), product(), None),
        ] {
            let request = ListRequest {
                customer_name,
                product,
                after,
                ..ListRequest::default()
            };
            let sql = list_sql(&request);
            let plan: Vec<String> = conn
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .unwrap()
                .query_map(
                    rusqlite::named_params! {
                        ":limit": 101, ":customer_name": "Ada", ":product": "Pen", ":after": "a"
                    }
                    .iter()
                    .filter(|(name, _)| sql.contains(name))
                    .copied()
                    .collect::<Vec<_>>()
                    .as_slice(),
                    |row| row.get::<_, String>(3),
                )
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            let plan = plan.join(" | ");
            // With no condition at all, walking the primary key in order and stopping at the
            // limit is the right plan; any condition must be a search of an index.
            if sql.contains("WHERE") {
                assert!(plan.starts_with("SEARCH"), "{sql}: {plan}");
            }
            assert!(!plan.contains("TEMP B-TREE"), "{sql} sorts: {plan}");
        }
    }
}
