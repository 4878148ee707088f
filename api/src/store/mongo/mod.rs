//! The production backend: MongoDB through the official driver, in the database `orders_db`
//! (configurable): the client, the indexes, error mapping; orders and image records each in
//! their own file and collection.

mod api_keys;
mod images;
mod keys;
mod orders;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use bson::{Bson, Document, doc};
use chrono::{DateTime, Utc};
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::options::{
    Acknowledgment, ClientOptions, ReadPreference, SelectionCriteria, WriteConcern,
};
use mongodb::{Client, Collection, IndexModel};

use super::StoreError;
use crate::config::StoreSettings;

/// MongoDB's duplicate-key error code.
const DUPLICATE_KEY: i32 = 11000;
/// Document validation failure (a collection validator refused the document).
const DOCUMENT_VALIDATION_FAILURE: i32 = 121;

pub struct MongoStore {
    client: Client,
    orders: Collection<Document>,
    images: Collection<Document>,
    keys: Collection<Document>,
    api_keys: Collection<Document>,
    /// Set once the indexes exist; until then the store does not call itself ready.
    indexed: Arc<AtomicBool>,
}

impl MongoStore {
    /// Connects lazily: a server that is down at start-up does not stop the api; the indexes are
    /// created as soon as it answers, and `/readyz` says 503 until then.
    pub async fn open(settings: &StoreSettings) -> Result<Self, StoreError> {
        let mut options = ClientOptions::parse(&settings.uri)
            .await
            .map_err(|e| StoreError::Internal(anyhow::anyhow!("store.uri: {}", e.kind)))?;
        options.app_name = Some("orders-api".into());
        options.max_pool_size = Some(settings.pool_size);
        options.connect_timeout = Some(Duration::from_millis(settings.connect_timeout_ms));
        options.server_selection_timeout =
            Some(Duration::from_millis(settings.server_selection_timeout_ms));
        // An acknowledged order is on the disk of a majority of the replica set by default.
        let members = match settings.write_concern.parse::<u32>() {
            Ok(count) => Acknowledgment::Nodes(count),
            Err(_) => Acknowledgment::Majority,
        };
        options.write_concern = Some(
            WriteConcern::builder()
                .w(members)
                .journal(settings.journal)
                .build(),
        );
        let client = Client::with_options(options).map_err(map_error)?;
        let database = client.database(&settings.database);
        let orders = database.collection::<Document>(&settings.collection);
        let images = database.collection::<Document>("images");
        let keys = database.collection::<Document>(keys::COLLECTION);
        let api_keys = database.collection::<Document>(api_keys::COLLECTION);
        let store = Self {
            client,
            orders,
            images,
            keys,
            api_keys,
            indexed: Arc::new(AtomicBool::new(false)),
        };
        store.spawn_index_creation();
        Ok(store)
    }

    /// Creates the listing indexes (idempotent), retrying in the background while the server
    /// is unreachable.
    fn spawn_index_creation(&self) {
        let (orders, images, keys) = (self.orders.clone(), self.images.clone(), self.keys.clone());
        let indexed = self.indexed.clone();
        tokio::spawn(async move {
            let create = || async {
                orders
                    .create_indexes([
                        IndexModel::builder()
                            .keys(doc! { "customer_name": 1, "_id": 1 })
                            .build(),
                        IndexModel::builder()
                            .keys(doc! { "product": 1, "_id": 1 })
                            .build(),
                    ])
                    .await?;
                images
                    .create_index(
                        IndexModel::builder()
                            .keys(doc! { "status": 1, "updated_at": 1 })
                            .build(),
                    )
                    .await?;
                keys.create_index(keys::index()).await
            };
            let outcome = create
                .retry(
                    ExponentialBuilder::default()
                        .with_min_delay(Duration::from_millis(200))
                        .with_max_delay(Duration::from_secs(10))
                        .without_max_times(),
                )
                .notify(|error, after| {
                    tracing::warn!(error = %error.kind, ?after, "creating indexes failed; retrying");
                })
                .await;
            match outcome {
                Ok(_) => indexed.store(true, Ordering::Release),
                Err(error) => tracing::error!(error = %error.kind, "creating indexes failed"),
            }
        });
    }
}

impl MongoStore {
    /// A primary answers (writes can be taken: with a replica set, not just any member) and the
    /// indexes exist.
    async fn ready(&self) -> Result<(), StoreError> {
        self.client
            .database("admin")
            .run_command(doc! { "ping": 1 })
            .selection_criteria(SelectionCriteria::ReadPreference(ReadPreference::Primary))
            .await
            .map_err(|error| match map_error(error) {
                StoreError::Unavailable(cause) => {
                    StoreError::Unavailable(format!("no primary is reachable: {cause}"))
                }
                other => other,
            })?;
        if self.indexed.load(Ordering::Acquire) {
            Ok(())
        } else {
            Err(StoreError::Unavailable(
                "the indexes are not created yet".into(),
            ))
        }
    }
}

fn map_error(error: mongodb::error::Error) -> StoreError {
    match error.kind.as_ref() {
        ErrorKind::ServerSelection { .. }
        | ErrorKind::Io(_)
        | ErrorKind::ConnectionPoolCleared { .. }
        | ErrorKind::Shutdown => StoreError::Unavailable(error.kind.to_string()),
        ErrorKind::Write(WriteFailure::WriteError(write)) => write_error(write.code, &error),
        ErrorKind::InsertMany(many) => match many.write_errors.as_deref() {
            Some([first, ..]) => write_error(first.code, &error),
            _ => StoreError::Internal(error.into()),
        },
        ErrorKind::Command(command) => write_error(command.code, &error),
        _ => StoreError::Internal(error.into()),
    }
}

fn write_error(code: i32, error: &mongodb::error::Error) -> StoreError {
    match code {
        DUPLICATE_KEY => StoreError::Conflict(error.kind.to_string()),
        DOCUMENT_VALIDATION_FAILURE => StoreError::Rejected(error.kind.to_string()),
        _ => StoreError::Internal(anyhow::anyhow!("{}", error.kind)),
    }
}

fn time(value: Option<&Bson>) -> Option<DateTime<Utc>> {
    match value {
        Some(Bson::DateTime(t)) => DateTime::from_timestamp_millis(t.timestamp_millis()),
        Some(Bson::String(s)) => DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| t.with_timezone(&Utc)),
        _ => None,
    }
}

/// A time as BSON, to the millisecond (what every backend keeps).
fn stamp(time: DateTime<Utc>) -> bson::DateTime {
    bson::DateTime::from_millis(time.timestamp_millis())
}
