//! Where orders are kept. The domain needs the small [`OrderStore`] trait; each backend is one
//! file implementing it, chosen by the store URI in configuration.

mod mongo;
mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::config::{StoreBackend, StoreSettings};
use crate::orders::{ListRequest, Order, OrderChanges, OrderId, Page};

pub use mongo::MongoStore;
pub use sqlite::SqliteStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend cannot answer now (down, locked for too long); the request may be retried.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// The write collides with stored data (a duplicate id).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The backend refused the data (a MongoDB collection validator).
    #[error("refused by the database: {0}")]
    Rejected(String),
    /// Anything else: a bug, corrupt data, a full disk.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

#[async_trait]
pub trait OrderStore: Send + Sync + 'static {
    async fn insert(&self, order: &Order) -> Result<(), StoreError>;

    /// Inserts many orders in as few round trips as the backend allows (seeding, imports).
    async fn insert_many(&self, orders: &[Order]) -> Result<(), StoreError>;

    async fn get(&self, id: OrderId) -> Result<Option<Order>, StoreError>;

    /// Applies `changes` and stamps `updated_at`; `None` when no such order exists.
    async fn update(
        &self,
        id: OrderId,
        changes: &OrderChanges,
        now: DateTime<Utc>,
    ) -> Result<Option<Order>, StoreError>;

    /// `false` when no such order existed.
    async fn delete(&self, id: OrderId) -> Result<bool, StoreError>;

    async fn list(&self, request: &ListRequest) -> Result<Page, StoreError>;

    /// Removes every order (load-test resets, seeding).
    async fn clear(&self) -> Result<(), StoreError>;

    /// Succeeds when the backend answers a trivial query.
    async fn ping(&self) -> Result<(), StoreError>;
}

/// Opens the backend the settings name, creating its schema when missing.
pub async fn open(settings: &StoreSettings) -> Result<Arc<dyn OrderStore>, StoreError> {
    match settings.backend() {
        StoreBackend::Sqlite(path) => Ok(Arc::new(SqliteStore::open(&path, settings).await?)),
        StoreBackend::Mongo => Ok(Arc::new(MongoStore::open(settings).await?)),
    }
}
