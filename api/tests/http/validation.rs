//! Every rule of an order's fields, and every client error the API answers.

use harness::Fetch;
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{TestApp, error_body, error_for, reference_order, spawn_app, spawn_app_with};

fn with(field: &str, value: Value) -> Value {
    let mut body = reference_order();
    body[field] = value;
    body
}

/// POSTs `body` and checks it is refused with 422 naming `field`; the store stays empty.
async fn refused(app: &TestApp, body: Value, field: &str) {
    let response = app.post_json("/orders", &body).await;
    let error = error_body(response, 422).await;
    assert!(
        error["errors"][field].as_str().is_some(),
        "{field} not named for {body}: {error}"
    );
    let list: Value = app.get_json("/orders").await;
    assert_eq!(list["orders"], json!([]), "{body} was stored");
}

#[tokio::test]
async fn every_missing_field_is_named() {
    let app = spawn_app().await;
    let response = app.post_json("/orders", &json!({})).await;
    let error = error_body(response, 422).await;
    for field in ["product", "quantity", "customer_name", "customer_address"] {
        assert_eq!(error["errors"][field], "is required", "{error}");
    }
}

#[tokio::test]
async fn quantity_must_be_an_integer_from_1_to_a_million() {
    let app = spawn_app().await;
    for bad in [
        json!("5"),
        json!(1.5),
        json!(1e300),
        json!(true),
        json!(null),
        json!(-1),
        json!(0),
        json!(1_000_001),
        json!([1]),
        json!({"n": 1}),
    ] {
        refused(&app, with("quantity", bad), "quantity").await;
    }
    for good in [1, 1_000_000] {
        let created = app.create(&with("quantity", json!(good))).await;
        assert_eq!(created["quantity"], good);
    }
    // The same number as 5, as JSON Schema's `integer` reads it.
    let created = app.create(&with("quantity", json!(5.0))).await;
    assert_eq!(created["quantity"], 5);
}

#[tokio::test]
async fn product_and_customer_name_are_1_to_200_characters_not_blank() {
    let app = spawn_app().await;
    for field in ["product", "customer_name"] {
        for bad in [
            json!(""),
            json!("   "),
            json!("x".repeat(201)),
            json!(null),
            json!(42),
            json!("tab\tinside"),
        ] {
            refused(&app, with(field, bad), field).await;
        }
    }
    let longest = "ü".repeat(200);
    let created = app
        .create(&json!({
            "product": longest, "quantity": 1, "customer_name": longest,
            "customer_address": "x"
        }))
        .await;
    assert_eq!(created["product"], longest);
}

#[tokio::test]
async fn customer_address_is_1_to_500_characters_not_blank() {
    let app = spawn_app().await;
    for bad in [json!(""), json!("\n"), json!("x".repeat(501)), json!(false)] {
        refused(&app, with("customer_address", bad), "customer_address").await;
    }
    let created = app
        .create(&with("customer_address", json!("x".repeat(500))))
        .await;
    assert_eq!(created["customer_address"].as_str().unwrap().len(), 500);
}

#[tokio::test]
async fn unknown_fields_and_id_are_refused_by_name() {
    let app = spawn_app().await;
    refused(&app, with("colour", json!("red")), "colour").await;
    refused(&app, with("_id", json!("65a1b2c3d4e5f60718293a4b")), "_id").await;
    refused(
        &app,
        with("created_at", json!("2020-01-01T00:00:00Z")),
        "created_at",
    )
    .await;
}

#[tokio::test]
async fn put_refuses_invalid_unknown_null_and_empty_bodies() {
    let app = spawn_app().await;
    let created = app.create(&reference_order()).await;
    let path = format!("/orders/{}", created["_id"].as_str().unwrap());
    for (body, field) in [
        (json!({"quantity": "2"}), Some("quantity")),
        (json!({"product": null}), Some("product")),
        (json!({"customer_name": ""}), Some("customer_name")),
        (json!({"status": "shipped"}), Some("status")),
        (json!({"_id": "65a1b2c3d4e5f60718293a4b"}), Some("_id")),
        (json!({}), None),
    ] {
        let error = error_body(app.put_json(&path, &body).await, 422).await;
        if let Some(field) = field {
            assert!(error["errors"][field].is_string(), "{body}: {error}");
        }
    }
    let stored: Value = app.get_json(&path).await;
    assert_eq!(
        stored["order"], created,
        "a refused update changed the order"
    );
}

#[tokio::test]
async fn malformed_json_is_400_and_a_non_object_is_422() {
    let app = spawn_app().await;
    for text in ["{", "{\"product\": }", "not json", "", "{\"a\":1}garbage"] {
        error_for(
            app.request(Method::POST, "/orders")
                .header("content-type", "application/json")
                .body(text),
            400,
        )
        .await;
    }
    for value in [
        json!([reference_order()]),
        json!("order"),
        json!(null),
        json!(3),
    ] {
        error_body(app.post_json("/orders", &value).await, 422).await;
    }
}

#[tokio::test]
async fn a_body_not_declared_as_json_is_415() {
    let app = spawn_app().await;
    let text = reference_order().to_string();
    let missing = app
        .request(Method::POST, "/orders")
        .body(text.clone())
        .fetch()
        .await;
    error_body(missing, 415).await;
    for content_type in ["text/plain", "application/x-www-form-urlencoded", "json"] {
        error_for(
            app.request(Method::PUT, "/orders/65a1b2c3d4e5f60718293a4b")
                .header("content-type", content_type)
                .body(text.clone()),
            415,
        )
        .await;
    }
}

#[tokio::test]
async fn a_body_over_the_default_64_kib_limit_is_413() {
    let app = spawn_app().await;
    let body = with("product", json!("x".repeat(70 * 1024)));
    let error = error_body(app.post_json("/orders", &body).await, 413).await;
    assert!(
        error["message"].as_str().unwrap().contains("65536"),
        "{error}"
    );
}

#[tokio::test]
async fn the_body_limit_is_configurable() {
    let app = spawn_app_with(|s| s.server.body_limit = 100).await;
    let body = with("customer_address", json!("x".repeat(150)));
    error_body(app.post_json("/orders", &body).await, 413).await;
    app.create(&reference_order()).await;
}

#[tokio::test]
async fn a_malformed_id_is_400_on_every_method() {
    let app = spawn_app().await;
    for id in [
        "abc",
        "65a1b2c3d4e5f60718293a4",
        "65a1b2c3d4e5f60718293a4bb",
        "zzzzzzzzzzzzzzzzzzzzzzzz",
    ] {
        let path = format!("/orders/{id}");
        error_body(app.get(&path).await, 400).await;
        error_body(app.delete(&path).await, 400).await;
        error_body(app.put_json(&path, &json!({"quantity": 1})).await, 400).await;
    }
}

#[tokio::test]
async fn bad_query_parameters_are_400() {
    let app = spawn_app().await;
    for query in [
        "limit=0",
        "limit=1001",
        "limit=-1",
        "limit=ten",
        "limit=1.5",
        "limit=",
        "after=not-a-cursor",
        "after=65a1b2c3d4e5f60718293a4b",
        "colour=red",
        "limit=1&limit=2",
        "customer_name=",
    ] {
        let error = error_body(app.get(&format!("/orders?{query}")).await, 400).await;
        assert!(error["message"].is_string(), "{query}");
    }
    assert_eq!(app.get("/orders?limit=1000").await.status(), 200);
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json() {
    let app = spawn_app().await;
    error_body(app.get("/nope").await, 404).await;
    error_body(app.get("/orders/65a1b2c3d4e5f60718293a4b/items").await, 404).await;
    let patch = app
        .request(Method::PATCH, "/orders/65a1b2c3d4e5f60718293a4b")
        .fetch()
        .await;
    error_body(patch, 405).await;
    error_body(app.delete("/orders").await, 405).await;
}
