//! `Idempotency-Key` on `POST /orders` and `POST /images`: a repeat gets the first answer, never
//! a second resource; a reused key with another body, and malformed keys, are refused.

use std::time::Duration;

use harness::Fetch;
use harness::pictures::{self, form};
use reqwest::header::HeaderMap;
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{Value, json};

use crate::common::{TestApp, error_body, raw_http, reference_order, spawn_app, spawn_app_with};

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    async fn of(request: RequestBuilder) -> Self {
        let response = request.fetch().await;
        Self {
            status: response.status(),
            headers: response.headers().clone(),
            body: response.text().await.unwrap(),
        }
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }

    fn replayed(&self) -> bool {
        self.headers
            .get("idempotent-replayed")
            .is_some_and(|v| v == "true")
    }
}

fn keyed(app: &TestApp, path: &str, key: &str) -> RequestBuilder {
    app.request(Method::POST, path)
        .header("idempotency-key", key)
}

async fn post_order(app: &TestApp, key: &str, body: &Value) -> Answer {
    Answer::of(keyed(app, "/orders", key).json(body)).await
}

async fn order_count(app: &TestApp) -> usize {
    let page = app.get_json("/orders?limit=1000").await;
    page["orders"].as_array().unwrap().len()
}

#[tokio::test]
async fn a_repeat_gets_the_first_answer_and_creates_nothing() {
    let app = spawn_app().await;
    let first = post_order(&app, "order-1", &reference_order()).await;
    assert_eq!(first.status, StatusCode::CREATED);
    assert!(!first.replayed());
    // The same fields, written differently, are the same request.
    let reordered = r#"{ "customer_address": "123 Main St", "customer_name": "John Doe",
        "quantity": 1, "product": "Laptop" }"#;
    let second = keyed(&app, "/orders", "order-1")
        .header("content-type", "application/json")
        .body(reordered);
    let second = Answer::of(second).await;
    assert_eq!(second.status, StatusCode::CREATED);
    assert!(second.replayed());
    assert_eq!(second.body, first.body, "the stored answer, byte for byte");
    assert_eq!(second.headers["location"], first.headers["location"]);
    assert_eq!(second.json()["order"]["_id"], first.json()["order"]["_id"]);
    assert_eq!(order_count(&app).await, 1);

    // Without a key, each POST creates.
    app.create(&reference_order()).await;
    app.create(&reference_order()).await;
    assert_eq!(order_count(&app).await, 3);
}

#[tokio::test]
async fn a_key_reused_with_another_body_is_refused() {
    let app = spawn_app().await;
    assert_eq!(post_order(&app, "k", &reference_order()).await.status, 201);
    let mut other = reference_order();
    other["quantity"] = json!(2);
    let response = keyed(&app, "/orders", "k").json(&other).fetch().await;
    let body = error_body(response, 422).await;
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("Idempotency-Key")
    );
    assert_eq!(order_count(&app).await, 1);
}

#[tokio::test]
async fn concurrent_repeats_create_exactly_one_order() {
    let app = spawn_app().await;
    let order = reference_order();
    let answers =
        futures_util::future::join_all((0..8).map(|_| post_order(&app, "racing-key", &order)))
            .await;
    let ids: Vec<Value> = answers
        .iter()
        .map(|a| {
            assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
            a.json()["order"]["_id"].clone()
        })
        .collect();
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    assert_eq!(answers.iter().filter(|a| !a.replayed()).count(), 1);
    assert_eq!(order_count(&app).await, 1);
}

#[tokio::test]
async fn keys_are_1_to_255_printable_characters() {
    let app = spawn_app().await;
    let longest = "k".repeat(255);
    assert_eq!(
        post_order(&app, &longest, &reference_order()).await.status,
        201
    );
    let quoted = post_order(&app, "\"a quoted key\"", &reference_order()).await;
    assert!(
        quoted.status == 201 && !quoted.replayed(),
        "a key of its own"
    );
    for bad in [
        String::new(),
        "k".repeat(256),
        "k".repeat(5000),
        "tab\there".into(),
    ] {
        let response = keyed(&app, "/orders", &bad)
            .json(&reference_order())
            .fetch()
            .await;
        let body = error_body(response, 400).await;
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .starts_with("Idempotency-Key")
        );
    }
    for raw in [&b"ctl\x01key"[..], b"del\x7f", "caf\u{e9}".as_bytes()] {
        let body = reference_order().to_string();
        let mut request = b"POST /orders HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\
            Content-Type: application/json\r\nIdempotency-Key: "
            .to_vec();
        request.extend_from_slice(raw);
        request.extend_from_slice(format!("\r\nContent-Length: {}\r\n\r\n", body.len()).as_bytes());
        request.extend_from_slice(body.as_bytes());
        let answer = raw_http(&app, &request).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{raw:?}: {answer}");
    }
    let twice = app
        .request(Method::POST, "/orders")
        .header("idempotency-key", "a")
        .header("idempotency-key", "b")
        .json(&reference_order())
        .fetch()
        .await;
    error_body(twice, 400).await;
    assert_eq!(order_count(&app).await, 2);
}

#[tokio::test]
async fn a_key_is_forgotten_after_its_retention() {
    let app = spawn_app_with(|s| s.idempotency.retention = Duration::from_secs(1)).await;
    let first = post_order(&app, "short-lived", &reference_order()).await;
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let second = post_order(&app, "short-lived", &reference_order()).await;
    assert_eq!(second.status, StatusCode::CREATED);
    assert!(!second.replayed());
    assert_ne!(second.json()["order"]["_id"], first.json()["order"]["_id"]);
    assert_eq!(order_count(&app).await, 2);
}

#[tokio::test]
async fn a_repeat_after_the_order_was_deleted_gets_the_first_answer() {
    let app = spawn_app().await;
    let first = post_order(&app, "gone", &reference_order()).await;
    let location = first.headers["location"].to_str().unwrap().to_owned();
    assert_eq!(app.delete(&location).await.status(), 200);
    let again = post_order(&app, "gone", &reference_order()).await;
    assert!(again.replayed());
    assert_eq!(again.body, first.body);
    assert_eq!(order_count(&app).await, 0);
}

async fn upload(app: &TestApp, key: &str, bytes: &[u8]) -> Answer {
    Answer::of(keyed(app, "/images", key).multipart(form(bytes, "photo.png"))).await
}

fn originals(app: &TestApp) -> usize {
    walk(&app.dir.path().join("blobs"))
}

fn walk(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .map(|e| e.unwrap().path())
            .map(|p| if p.is_dir() { walk(&p) } else { 1 })
            .sum()
    })
}

#[tokio::test]
async fn a_repeated_upload_gets_the_first_job() {
    let app = spawn_app().await;
    let picture = pictures::png_with_alpha(40);
    let first = upload(&app, "upload-1", &picture).await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.body);
    let answers =
        futures_util::future::join_all((0..4).map(|_| upload(&app, "upload-1", &picture))).await;
    for again in &answers {
        assert_eq!(again.status, StatusCode::ACCEPTED);
        assert!(again.replayed());
        assert_eq!(again.body, first.body);
        assert_eq!(again.headers["location"], first.headers["location"]);
    }
    assert_eq!(originals(&app), 1, "one stored original");

    let other = upload(&app, "upload-1", &pictures::png_with_alpha(41)).await;
    assert_eq!(other.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        other.json()["message"]
            .as_str()
            .unwrap()
            .contains("Idempotency-Key")
    );

    let racing =
        futures_util::future::join_all((0..4).map(|_| upload(&app, "upload-2", &picture))).await;
    let job = racing[0].json()["job_id"].clone();
    assert!(
        racing
            .iter()
            .all(|a| a.status == 202 && a.json()["job_id"] == job)
    );
    // The losers' copies are removed before they answer.
    assert_eq!(originals(&app), 2);
}
