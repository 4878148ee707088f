//! Orders in the SQLite file: the `orders` table.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};

use super::{SqliteStore, invalid, keys, time, timestamp};
use crate::idempotency::{Claim, KeyRecord, Scope};
use crate::orders::{
    CustomerAddress, CustomerName, ListRequest, Order, OrderChanges, OrderId, Page, Product,
    Quantity,
};
use crate::sqlite_pool::is_busy;
use crate::store::{OrderStore, StoreError};

const COLUMNS: &str =
    "id, product, quantity, customer_name, customer_address, created_at, updated_at";

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
        self.pool.run(move |conn| insert_one(conn, &order)).await
    }

    async fn insert_keyed(&self, order: &Order, key: &KeyRecord) -> Result<Claim, StoreError> {
        let (order, key) = (order.clone(), key.clone());
        self.pool
            .run(move |conn| {
                keys::insert_claiming(conn, Scope::Orders, &key, order.created_at, |tx| {
                    insert_one(tx, &order)
                })
            })
            .await
    }

    async fn insert_many(&self, orders: &[Order]) -> Result<(), StoreError> {
        let orders = orders.to_vec();
        self.pool
            .run(move |conn| {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                for order in &orders {
                    insert_one(&tx, order)?;
                }
                tx.commit()
            })
            .await
    }

    async fn get(&self, id: OrderId) -> Result<Option<Order>, StoreError> {
        self.pool
            .read_here(move |conn| {
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
        self.pool
            .run(move |conn| {
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
        self.pool
            .run(move |conn| {
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
        self.pool
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
            .await
            .map(|orders| Page::from_overfetch(orders, size))
    }

    async fn clear(&self) -> Result<(), StoreError> {
        self.pool
            .run(|conn| conn.execute("DELETE FROM orders", []).map(drop))
            .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let busy_timeout = self.busy_timeout;
        self.pool
            .run(move |conn| {
                // A write needs free space (a new WAL frame) where a read does not. It does not
                // wait for another writer's lock: that writer shows the file takes writes.
                conn.busy_timeout(std::time::Duration::ZERO)?;
                let probe = conn
                    .prepare_cached(
                        "INSERT INTO health (id, checked_at) VALUES (1, ?1)
                         ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at",
                    )
                    .and_then(|mut s| s.execute([timestamp(&Utc::now())]));
                conn.busy_timeout(busy_timeout)?;
                match probe {
                    Err(error) if is_busy(&error) => {
                        conn.query_row("SELECT count(*) FROM sqlite_schema", [], |_| Ok(()))
                    }
                    other => other.map(drop),
                }
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::super::migrate;
    use super::list_sql;
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
