//! The suites against MongoDB (a fresh database per test), plus what only MongoDB must do.

use std::time::{Duration, Instant};

use api::idempotency::{IdempotencyKey, Scope};
use api::store::{self, Stores};
use harness::mongo;

use crate::common::mongo_store;
use crate::orders::order;

pub struct Backend {
    pub stores: Stores,
    uri: String,
    database: String,
}

/// The stores on a fresh database, once its indexes exist (bounded wait).
pub async fn open() -> Option<Backend> {
    let uri = mongo::uri()?;
    let settings = mongo_store(&uri);
    let stores = store::open(&settings).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while let Err(error) = stores.orders.ping().await {
        assert!(Instant::now() < deadline, "MongoDB not ready: {error}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Some(Backend {
        stores,
        uri,
        database: settings.database,
    })
}

impl Backend {
    pub async fn finish(self) {
        mongo::drop_database(&self.uri, &self.database).await;
    }
}

order_store_suite!(open);
image_store_suite!(open);
key_store_suite!(open);
api_key_store_suite!(open);

#[tokio::test]
async fn the_listing_indexes_exist() {
    let Some(backend) = open().await else { return };
    let client = mongodb::Client::with_uri_str(&backend.uri).await.unwrap();
    let names = client
        .database(&backend.database)
        .collection::<bson::Document>("orders")
        .list_index_names()
        .await
        .unwrap();
    for name in ["customer_name_1__id_1", "product_1__id_1"] {
        assert!(
            names.iter().any(|n| n == name),
            "{name} missing from {names:?}"
        );
    }
    backend
        .stores
        .orders
        .insert(&order("Pen", "A", 1))
        .await
        .unwrap();
    backend.finish().await;
}

/// A request that stored its key and died before inserting the order: the next request with the
/// key finishes the creation, so the order its key names exists, once.
#[tokio::test]
async fn a_key_left_pending_is_finished_by_the_next_request() {
    let Some(backend) = open().await else { return };
    let client = mongodb::Client::with_uri_str(&backend.uri).await.unwrap();
    let database = client.database(&backend.database);
    let placed = order("Pen", "Ada", 2);
    let id = placed.id.object_id();
    let expires = bson::DateTime::from_millis(placed.created_at.timestamp_millis() + 3_600_000);
    let pending = bson::doc! {
        "_id": id, "product": "Pen", "quantity": 2_i64, "customer_name": "Ada",
        "customer_address": "1 Main St", "created_at": bson::DateTime::now(),
        "updated_at": bson::DateTime::now(),
    };
    database
        .collection::<bson::Document>("idempotency_keys")
        .insert_one(bson::doc! {
            "_id": "orders:left-pending", "fingerprint": "f",
            "response": { "status": 201, "location": format!("/orders/{id}"), "body": "{}" },
            "expires_at": expires, "pending": pending,
        })
        .await
        .unwrap();
    let key = IdempotencyKey::parse(b"left-pending").unwrap();
    let found = backend
        .stores
        .keys
        .find_key(Scope::Orders, &key, placed.created_at)
        .await
        .unwrap()
        .expect("the pending key is found");
    assert_eq!(found.response.location, format!("/orders/{id}"));
    let created = backend.stores.orders.get(placed.id).await.unwrap();
    assert_eq!(created.expect("the order was finished").quantity.get(), 2);
    let again = backend
        .stores
        .keys
        .find_key(Scope::Orders, &key, placed.created_at)
        .await;
    assert!(again.unwrap().is_some());
    let page = backend
        .stores
        .orders
        .list(&api::orders::ListRequest::default())
        .await
        .unwrap();
    assert_eq!(page.orders.len(), 1, "finished once");
    backend.finish().await;
}
