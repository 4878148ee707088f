//! The suites against MongoDB (a fresh database per test), plus what only MongoDB must do.

use std::time::{Duration, Instant};

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
