//! What only the MongoDB backend must do: serve the reference service's documents, and ride out
//! an outage of the server.

mod common;

use std::time::{Duration, Instant};

use bson::{Bson, Document, doc, oid::ObjectId};
use serde_json::{Value, json};

use harness::mongo::{self, MongoServer};

use crate::common::{error_body, mongo_store, reference_order, spawn_app_with};

#[tokio::test]
async fn documents_written_by_the_reference_service_are_served() {
    let Some(uri) = mongo::uri() else {
        return;
    };
    let settings = mongo_store(&uri);
    let store = settings.clone();
    let app = spawn_app_with(move |s| s.store = store).await;
    let collection = mongodb::Client::with_uri_str(&uri)
        .await
        .unwrap()
        .database(&settings.database)
        .collection::<Document>("orders");
    let legacy = |quantity: Bson| {
        doc! {
            "_id": ObjectId::new(), "product": "Laptop", "quantity": quantity,
            "customer_name": "John Doe", "customer_address": "123 Main St",
        }
    };
    let mut with_extras = legacy(Bson::Int64(3));
    with_extras.insert("status", "shipped");
    with_extras.insert("notes", doc! { "gift": true });
    let documents = [
        (legacy(Bson::Int32(1)), 1),
        (with_extras, 3),
        (legacy(Bson::Double(2.0)), 2),
        (legacy(Bson::Double(2.6)), 3),
    ];
    for (document, _) in &documents {
        collection.insert_one(document.clone()).await.unwrap();
    }
    for (document, quantity) in &documents {
        let id = document.get_object_id("_id").unwrap();
        let response = app.get(&format!("/orders/{}", id.to_hex())).await;
        assert_eq!(response.status(), 200);
        let order = response.json::<Value>().await.unwrap()["order"].clone();
        assert_eq!(order["quantity"], *quantity, "{document}");
        assert_eq!(order["product"], "Laptop");
        let created =
            chrono::DateTime::parse_from_rfc3339(order["created_at"].as_str().unwrap()).unwrap();
        assert_eq!(
            created.timestamp(),
            id.timestamp().timestamp_millis() / 1000
        );
        assert_eq!(order["updated_at"], order["created_at"]);
        assert!(
            order.get("status").is_none(),
            "unknown fields are not shown"
        );
    }
    let list: Value = app.get_json("/orders").await;
    assert_eq!(list["orders"].as_array().unwrap().len(), 4);

    let id = documents[1].0.get_object_id("_id").unwrap();
    let updated = app
        .put_json(&format!("/orders/{}", id.to_hex()), &json!({"quantity": 5}))
        .await;
    assert_eq!(updated.status(), 200);
    let stored = collection
        .find_one(doc! { "_id": id })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored
            .get_i64("quantity")
            .ok()
            .or(stored.get_i32("quantity").ok().map(i64::from)),
        Some(5)
    );
    assert_eq!(
        stored.get_str("status").unwrap(),
        "shipped",
        "an update keeps unknown fields"
    );
    mongo::drop_database(&uri, &settings.database).await;
}

#[tokio::test]
async fn an_outage_answers_503_quickly_and_the_service_recovers_by_itself() {
    let Some(mut server) = MongoServer::start() else {
        return;
    };
    let settings = mongo_store(&server.uri());
    let timeout = Duration::from_millis(settings.server_selection_timeout_ms);
    let app = spawn_app_with(move |s| s.store = settings).await;
    let created = app.create(&reference_order()).await;
    let path = format!("/orders/{}", created["_id"].as_str().unwrap());

    server.stop();
    let bound = timeout + Duration::from_secs(3);
    let started = Instant::now();
    error_body(app.get("/readyz").await, 503).await;
    let body = error_body(app.get(&path).await, 503).await;
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("database is unavailable"),
        "{body}"
    );
    error_body(app.post_json("/orders", &reference_order()).await, 503).await;
    assert!(
        started.elapsed() < bound * 3,
        "503s took {:?}",
        started.elapsed()
    );

    server.restart();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let response = app.get(&path).await;
        if response.status() == 200 {
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["order"], created, "the order survived the restart");
            break;
        }
        assert!(Instant::now() < deadline, "the api did not recover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(app.get("/readyz").await.status(), 200);
    app.create(&reference_order()).await;
}
