//! The orders resource: the reference clients' requests and answers, and paging.

use harness::Fetch;
use reqwest::Method;
use std::collections::HashSet;

use serde_json::{Value, json};

use crate::common::{error_body, reference_order, spawn_app};

#[tokio::test]
async fn post_creates_an_order_with_201_location_and_the_reference_message() {
    let app = spawn_app().await;
    let response = app.post_json("/orders", &reference_order()).await;
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["message"], "Order created successfully");
    let order = &body["order"];
    let id = order["_id"].as_str().unwrap();
    assert_eq!(id.len(), 24);
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(location, format!("/orders/{id}"));
    for field in ["product", "quantity", "customer_name", "customer_address"] {
        assert_eq!(order[field], reference_order()[field], "{field}");
    }
    let created = order["created_at"].as_str().unwrap();
    assert!(chrono::DateTime::parse_from_rfc3339(created).is_ok());
    assert!(created.ends_with('Z'), "UTC: {created}");
    assert_eq!(order["updated_at"], order["created_at"]);
}

#[tokio::test]
async fn get_returns_what_post_stored() {
    let app = spawn_app().await;
    let created = app.create(&reference_order()).await;
    let response = app
        .get(&format!("/orders/{}", created["_id"].as_str().unwrap()))
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["order"], created);
}

#[tokio::test]
async fn put_with_some_fields_keeps_the_others() {
    let app = spawn_app().await;
    let created = app.create(&reference_order()).await;
    let path = format!("/orders/{}", created["_id"].as_str().unwrap());
    let response = app
        .put_json(
            &path,
            &json!({"quantity": 2, "customer_address": "456 Elm St"}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["message"], "Order updated successfully");
    let order = &body["order"];
    assert_eq!(order["quantity"], 2);
    assert_eq!(order["customer_address"], "456 Elm St");
    assert_eq!(order["product"], "Laptop");
    assert_eq!(order["customer_name"], "John Doe");
    assert_eq!(order["created_at"], created["created_at"]);
    assert!(order["updated_at"].as_str() >= created["updated_at"].as_str());
    let stored: Value = app.get_json(&path).await;
    assert_eq!(&stored["order"], order);
}

#[tokio::test]
async fn put_of_an_absent_order_is_404_and_creates_nothing() {
    let app = spawn_app().await;
    let response = app
        .put_json("/orders/65a1b2c3d4e5f60718293a4b", &json!({"quantity": 2}))
        .await;
    let body = error_body(response, 404).await;
    assert_eq!(body["message"], "Order not found");
    let list: Value = app.get_json("/orders").await;
    assert_eq!(list["orders"], json!([]));
}

#[tokio::test]
async fn delete_answers_200_then_the_order_is_404() {
    let app = spawn_app().await;
    let created = app.create(&reference_order()).await;
    let path = format!("/orders/{}", created["_id"].as_str().unwrap());
    let response = app.delete(&path).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["message"], "Order deleted successfully");
    let body = error_body(app.get(&path).await, 404).await;
    assert_eq!(body["message"], "Order not found");
    error_body(app.delete(&path).await, 404).await;
}

#[tokio::test]
async fn an_absent_id_is_404_with_the_reference_message() {
    let app = spawn_app().await;
    let body = error_body(app.get("/orders/65a1b2c3d4e5f60718293a4b").await, 404).await;
    assert_eq!(body, json!({"message": "Order not found"}));
}

#[tokio::test]
async fn listing_pages_through_every_order_once_in_creation_order() {
    let app = spawn_app().await;
    let mut created = Vec::new();
    for i in 0..23 {
        let mut body = reference_order();
        body["customer_name"] = json!(format!("Customer {i}"));
        created.push(app.create(&body).await["_id"].as_str().unwrap().to_owned());
    }
    let mut seen = Vec::new();
    let mut path = "/orders?limit=10".to_owned();
    let mut pages = 0;
    loop {
        let response = app.get(&path).await;
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        let orders = body["orders"].as_array().unwrap();
        assert!(orders.len() <= 10);
        seen.extend(orders.iter().map(|o| o["_id"].as_str().unwrap().to_owned()));
        pages += 1;
        match body["next"].as_str() {
            Some(next) => path = format!("/orders?limit=10&after={next}"),
            None => break,
        }
        assert!(pages < 10, "paging does not end");
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, created);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 23);
}

#[tokio::test]
async fn listing_defaults_to_100_per_page() {
    let app = spawn_app().await;
    for _ in 0..101 {
        app.create(&reference_order()).await;
    }
    let body: Value = app.get_json("/orders").await;
    assert_eq!(body["orders"].as_array().unwrap().len(), 100);
    let next = body["next"].as_str().unwrap();
    let body: Value = app.get_json(&format!("/orders?after={next}")).await;
    assert_eq!(body["orders"].as_array().unwrap().len(), 1);
    assert_eq!(body["next"], Value::Null);
}

#[tokio::test]
async fn listing_filters_by_exact_customer_name_and_product() {
    let app = spawn_app().await;
    for (product, customer) in [
        ("Laptop", "Ada"),
        ("Mouse", "Ada"),
        ("Laptop", "Bob"),
        ("laptop", "Ada"),
        ("Laptop", "Ada Lovelace"),
    ] {
        let mut body = reference_order();
        body["product"] = json!(product);
        body["customer_name"] = json!(customer);
        app.create(&body).await;
    }
    let count = |path: &'static str| {
        let app = &app;
        async move {
            let body: Value = app.get_json(path).await;
            body["orders"].as_array().unwrap().len()
        }
    };
    assert_eq!(count("/orders?customer_name=Ada").await, 3);
    assert_eq!(count("/orders?product=Laptop").await, 3);
    assert_eq!(count("/orders?product=Laptop&customer_name=Ada").await, 1);
    assert_eq!(count("/orders?customer_name=Ada%20Lovelace").await, 1);
    assert_eq!(count("/orders?customer_name=Nobody").await, 0);
}

#[tokio::test]
async fn a_json_content_type_with_charset_or_suffix_is_accepted() {
    let app = spawn_app().await;
    for content_type in [
        "application/json; charset=utf-8",
        "Application/JSON",
        "application/vnd.shop+json",
    ] {
        let response = app
            .request(Method::POST, "/orders")
            .header("content-type", content_type)
            .body(reference_order().to_string())
            .fetch()
            .await;
        assert_eq!(response.status(), 201, "{content_type}");
    }
}
