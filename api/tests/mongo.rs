//! What only the MongoDB backend must do: serve the reference service's documents, and ride out
//! an outage of the server.

mod common;

use std::time::{Duration, Instant};

use bson::{Bson, Document, doc, oid::ObjectId};
use serde_json::{Value, json};

use harness::mongo::{self, MongoServer};
use harness::tls::TestCa;

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

/// The replica-set name the test server advertises (a single-node set).
async fn set_name(uri: &str) -> String {
    let hello = mongodb::Client::with_uri_str(uri)
        .await
        .unwrap()
        .database("admin")
        .run_command(doc! { "hello": 1 })
        .await
        .unwrap();
    hello
        .get_str("setName")
        .unwrap_or_else(|_| panic!("no setName in {hello}"))
        .to_owned()
}

/// `replicaSet=` in the URI: ready once the set's primary answers, and orders are written to it.
/// A set name the server is not a member of finds no primary: not ready.
#[tokio::test]
async fn a_replica_set_uri_is_ready_when_its_primary_answers() {
    let Some(server) = MongoServer::start() else {
        return;
    };
    let name = set_name(&server.uri()).await;
    let uri = format!("{}?replicaSet={name}", server.uri());
    let app = spawn_app_with(|s| s.store = mongo_store(&uri)).await;
    let created = app.post_json("/orders", &reference_order()).await;
    assert_eq!(created.status(), 201);

    let wrong = format!("{}?replicaSet={name}-elsewhere", server.uri());
    let app = spawn_unready(&wrong).await;
    let response = app.get("/readyz").await;
    error_body(response, 503).await;
}

/// `tls=true` with `tlsCAFile`: the server's certificate is checked against that CA; one from
/// another CA, or no TLS, is not ready.
#[tokio::test]
async fn tls_options_in_the_uri_are_used() {
    let ca = TestCa::new("database CA");
    let Some(server) = MongoServer::start_tls(&ca) else {
        return;
    };
    let files = server.tls_files().unwrap();
    let uri = format!("{}?tls=true&tlsCAFile={}", server.uri(), files.ca.display());
    let app = spawn_app_with(|s| s.store = mongo_store(&uri)).await;
    let created = app.post_json("/orders", &reference_order()).await;
    assert_eq!(created.status(), 201);

    let dir = tempfile::tempdir().unwrap();
    let stranger = TestCa::new("another CA").write(&dir.path().join("other.crt"));
    for uri in [
        format!("{}?tls=true&tlsCAFile={}", server.uri(), stranger.display()),
        server.uri(),
    ] {
        let app = spawn_unready(&uri).await;
        error_body(app.get("/readyz").await, 503).await;
    }
}

/// The app on `uri`, not waiting for it to be ready.
async fn spawn_unready(uri: &str) -> common::TestApp {
    let uri = uri.to_owned();
    common::spawn_app_unchecked(move |s| {
        s.store = mongo_store(&uri);
        s.store.server_selection_timeout_ms = 500;
    })
    .await
}

/// Credentials in the URI with `authSource`: a user of the `admin` database writes orders in
/// another; a wrong password is not ready, and the password is not in the answer.
#[tokio::test]
async fn credentials_with_an_auth_source_are_used() {
    let Some(server) = MongoServer::start_with_auth() else {
        return;
    };
    let admin = mongodb::Client::with_uri_str(server.uri())
        .await
        .unwrap()
        .database("admin");
    admin
        .run_command(doc! {
            "createUser": "shop", "pwd": "s3cret-pass",
            "roles": [{ "role": "root", "db": "admin" }],
        })
        .await
        .unwrap();
    let port = server.uri();
    let with = |password: &str| {
        port.replacen("mongodb://", &format!("mongodb://shop:{password}@"), 1) + "?authSource=admin"
    };
    let app = spawn_app_with(|s| s.store = mongo_store(&with("s3cret-pass"))).await;
    let created = app.post_json("/orders", &reference_order()).await;
    assert_eq!(created.status(), 201);

    let app = spawn_unready(&with("wrong-pass")).await;
    let body = error_body(app.get("/readyz").await, 503).await;
    assert!(!body.to_string().contains("wrong-pass"), "{body}");
}
