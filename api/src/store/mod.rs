//! Where orders and image records are kept. The domain needs the small [`OrderStore`] and
//! [`ImageStore`] traits; each backend implements both (orders and images in their own files),
//! chosen by the store URI in configuration.

mod mongo;
mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::auth::{ApiKeyRecord, KeyId};
use crate::config::{StoreBackend, StoreSettings};
use crate::idempotency::{Claim, IdempotencyKey, KeyRecord, Scope};
use crate::images::{AttemptEnd, Image, ImageId};
use crate::orders::{ListRequest, Order, OrderChanges, OrderId, Page};

pub use mongo::MongoStore;
pub use sqlite::SqliteStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend cannot answer now (down, locked for too long); the request may be retried.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// The disk holding the data is full: writes fail until space is freed.
    #[error("storage is full")]
    Full,
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

    /// Inserts the order together with its idempotency key, in one atomic write; when another
    /// order holds the key (unexpired at the order's creation time), writes nothing and returns
    /// that order's record.
    async fn insert_keyed(&self, order: &Order, key: &KeyRecord) -> Result<Claim, StoreError>;

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

    /// Succeeds when the backend answers and can write (SQLite writes a probe row, so that a
    /// full disk shows here).
    async fn ping(&self) -> Result<(), StoreError>;
}

/// Image records: the state of each upload on its way to a thumbnail.
#[async_trait]
pub trait ImageStore: Send + Sync + 'static {
    async fn insert_image(&self, image: &Image) -> Result<(), StoreError>;

    /// As [`OrderStore::insert_keyed`], for an image record.
    async fn insert_image_keyed(&self, image: &Image, key: &KeyRecord)
    -> Result<Claim, StoreError>;

    async fn get_image(&self, id: ImageId) -> Result<Option<Image>, StoreError>;

    /// Removes the record; `false` when there was none.
    async fn delete_image(&self, id: ImageId) -> Result<bool, StoreError>;

    /// A worker starts on the image: counts the attempt and marks it `processing`, unless it is
    /// already `done` or `failed` (then it is returned unchanged). `None` when unknown.
    async fn start_attempt(
        &self,
        id: ImageId,
        now: DateTime<Utc>,
    ) -> Result<Option<Image>, StoreError>;

    /// Records how an attempt ended (see [`AttemptEnd`]). A `done` image stays done.
    async fn end_attempt(&self, id: ImageId, end: &AttemptEnd) -> Result<(), StoreError>;

    /// Up to `limit` images still `queued` or `processing` whose record has not changed since
    /// `before`, oldest first: candidates for a job that was lost.
    async fn unfinished_since(
        &self,
        before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<ImageId>, StoreError>;

    /// Up to `limit` images `done` since before `before` whose original is still kept, oldest
    /// first: the originals retention removes.
    async fn originals_done_before(
        &self,
        before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<ImageId>, StoreError>;

    /// Records that the image's original file was removed `at`.
    async fn original_removed(&self, id: ImageId, at: DateTime<Utc>) -> Result<(), StoreError>;
}

/// The idempotency keys kept with orders and image records (see `crate::idempotency`).
#[async_trait]
pub trait KeyStore: Send + Sync + 'static {
    /// The record of `key` in `scope`, unless it expired by `now`.
    async fn find_key(
        &self,
        scope: Scope,
        key: &IdempotencyKey,
        now: DateTime<Utc>,
    ) -> Result<Option<KeyRecord>, StoreError>;

    /// Removes the keys expired by `now` (what they created stays); how many there were.
    async fn forget_expired_keys(&self, now: DateTime<Utc>) -> Result<u64, StoreError>;
}

/// The API keys (see `crate::auth`), kept as hashes beside the orders so that every replica sees
/// the same keys.
#[async_trait]
pub trait ApiKeyStore: Send + Sync + 'static {
    /// A key with the same id exists: [`StoreError::Conflict`].
    async fn insert_api_key(&self, record: &ApiKeyRecord) -> Result<(), StoreError>;

    async fn find_api_key(&self, id: KeyId) -> Result<Option<ApiKeyRecord>, StoreError>;

    /// Every key, revoked and expired ones too, oldest first.
    async fn api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError>;

    /// Marks the key revoked at `now`, unless it already is; the record as it now stands, or
    /// `None` when there is no such key.
    async fn revoke_api_key(
        &self,
        id: KeyId,
        now: DateTime<Utc>,
    ) -> Result<Option<ApiKeyRecord>, StoreError>;
}

/// One backend, seen through each trait.
#[derive(Clone)]
pub struct Stores {
    pub orders: Arc<dyn OrderStore>,
    pub images: Arc<dyn ImageStore>,
    pub keys: Arc<dyn KeyStore>,
    pub api_keys: Arc<dyn ApiKeyStore>,
    /// An operation must be polled to its end, never dropped part-way: the MongoDB driver's
    /// manual asks for it, and dropped operations stalled later ones for up to 100 s. SQLite
    /// work runs on its connection's thread whatever happens to the future awaiting it.
    pub run_to_end: bool,
}

impl Stores {
    fn of<T: OrderStore + ImageStore + KeyStore + ApiKeyStore>(store: T, run_to_end: bool) -> Self {
        let store = Arc::new(store);
        Self {
            orders: store.clone(),
            images: store.clone(),
            keys: store.clone(),
            api_keys: store,
            run_to_end,
        }
    }
}

/// Opens the backend the settings name, creating its schema when missing.
pub async fn open(settings: &StoreSettings) -> Result<Stores, StoreError> {
    match settings.backend() {
        StoreBackend::Sqlite(path) => {
            Ok(Stores::of(SqliteStore::open(&path, settings).await?, false))
        }
        StoreBackend::Mongo => Ok(Stores::of(MongoStore::open(settings).await?, true)),
    }
}
