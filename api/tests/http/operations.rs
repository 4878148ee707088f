//! Health, readiness, metrics, the OpenAPI document, request ids, and a locked store.

use harness::Fetch;
use reqwest::Method;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{
    error_body, reference_order, spawn_app, spawn_app_with, spawn_sqlite_app_with,
};

#[tokio::test]
async fn healthz_and_readyz_answer_200_with_the_instance() {
    let app = spawn_app_with(|s| s.server.instance = "api-7".into()).await;
    for path in ["/healthz", "/readyz"] {
        let response = app.get(path).await;
        assert_eq!(response.status(), 200, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["instance"], "api-7");
    }
}

#[tokio::test]
async fn metrics_count_requests_by_route_template_and_status() {
    let app = spawn_app_with(|s| s.server.instance = "api-3".into()).await;
    let created = app.create(&reference_order()).await;
    let id = created["_id"].as_str().unwrap();
    app.get(&format!("/orders/{id}")).await;
    app.get(&format!("/orders/{id}")).await;
    app.get("/orders/65a1b2c3d4e5f60718293a4b").await;
    app.get("/scanner/probe/1").await;
    let response = app.get("/metrics").await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    let line = |labels: &str| {
        text.lines()
            .find(|l| l.starts_with("http_requests_total{") && l.contains(labels))
            .and_then(|l| l.rsplit(' ').next())
            .map(str::to_owned)
    };
    assert_eq!(
        line(r#"method="GET",route="/orders/{id}",status="200""#).as_deref(),
        Some("2"),
        "{text}"
    );
    assert_eq!(
        line(r#"method="GET",route="/orders/{id}",status="404""#).as_deref(),
        Some("1")
    );
    assert_eq!(
        line(r#"method="POST",route="/orders",status="201""#).as_deref(),
        Some("1")
    );
    assert!(line(r#"route="unmatched",status="404""#).is_some());
    assert!(!text.contains(id), "raw ids must not become labels");
    assert!(text.contains(r#"instance="api-3""#));
    assert!(text.contains("http_request_duration_seconds_bucket{"));
}

/// A scanner sending made-up methods (HTTP allows any token) cannot grow the label set: they
/// all count as `OTHER`, and the number of series stays the same after a thousand of them.
#[tokio::test]
async fn made_up_methods_share_one_label() {
    let app = spawn_app().await;
    let series = |text: &str| text.lines().filter(|l| !l.starts_with('#')).count();
    let probe = |i: usize| Method::from_bytes(format!("XQ{i}F").as_bytes()).unwrap();
    app.request(probe(0), "/orders").fetch().await;
    // The first scrape is counted after it answers: the next one shows it.
    app.get("/metrics").await;
    let before = series(&app.get("/metrics").await.text().await.unwrap());
    for i in 1..1000 {
        app.request(probe(i), "/orders").fetch().await;
    }
    let text = app.get("/metrics").await.text().await.unwrap();
    assert_eq!(series(&text), before, "{text}");
    assert!(
        text.contains(r#"method="OTHER",route="/orders",status="405""#),
        "{text}"
    );
    assert!(!text.contains("XQ1F"), "a made-up method became a label");
}

#[tokio::test]
async fn the_openapi_document_describes_every_endpoint() {
    let app = spawn_app().await;
    let doc: Value = app.get_json("/openapi.json").await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = &doc["paths"];
    for (path, methods) in [
        ("/orders", &["get", "post"][..]),
        ("/orders/{id}", &["get", "put", "delete"][..]),
        ("/healthz", &["get"][..]),
        ("/readyz", &["get"][..]),
        ("/metrics", &["get"][..]),
    ] {
        for method in methods {
            assert!(paths[path][method].is_object(), "{method} {path} missing");
        }
    }
    assert!(doc["components"]["schemas"]["OrderView"].is_object());
}

#[tokio::test]
async fn a_request_id_is_kept_or_created_and_echoed() {
    let app = spawn_app().await;
    let response = app
        .request(Method::GET, "/orders")
        .header("x-request-id", "trace-abc-123")
        .fetch()
        .await;
    assert_eq!(response.headers()["x-request-id"], "trace-abc-123");
    // Ids that could flood or forge log lines are replaced by a fresh UUID.
    for hostile in ["x".repeat(129), "a b".into(), "x\" level=ERROR".into()] {
        let response = app
            .request(Method::GET, "/orders")
            .header("x-request-id", hostile.as_str())
            .fetch()
            .await;
        let echoed = response.headers()["x-request-id"].to_str().unwrap();
        assert_ne!(echoed, hostile);
        assert_eq!(echoed.len(), 36, "a UUID: {echoed}");
    }
    let first = app.get("/orders").await.headers()["x-request-id"].clone();
    let second = app.get("/nope").await.headers()["x-request-id"].clone();
    assert!(!first.is_empty());
    assert_ne!(first, second);
}

/// Another process holding the SQLite write lock past the busy timeout: writes answer 503 JSON
/// quickly, reads go on (WAL), and writes succeed again once the lock is gone.
#[tokio::test]
async fn sqlite_a_write_blocked_by_another_process_lock_is_503_then_recovers() {
    let app = spawn_sqlite_app_with(|s| s.store.busy_timeout_ms = 300).await;
    let created = app.create(&reference_order()).await;
    let path = app.dir.path().join("orders.db");
    let locker = rusqlite::Connection::open(&path).unwrap();
    locker.execute_batch("BEGIN IMMEDIATE").unwrap();

    let started = Instant::now();
    let body = error_body(app.post_json("/orders", &reference_order()).await, 503).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        body["message"].as_str().unwrap().contains("unavailable"),
        "{body}"
    );
    let read = app
        .get(&format!("/orders/{}", created["_id"].as_str().unwrap()))
        .await;
    assert_eq!(read.status(), 200);
    assert_eq!(app.get("/readyz").await.status(), 200);

    locker.execute_batch("ROLLBACK").unwrap();
    app.create(&reference_order()).await;
    let list: Value = app.get_json("/orders").await;
    assert_eq!(list["orders"].as_array().unwrap().len(), 2);
    assert_eq!(list["next"], json!(null));
}
