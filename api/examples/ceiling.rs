//! The framework's ceiling for `bench/orders`: a bare axum server answering `GET /orders/{id}`
//! with a fixed order as JSON — no store, no middleware. What the real api reaches beside it
//! shows what our store and middleware cost.
//!
//! It also answers `GET /readyz`, so that it can stand in as a trivial upstream behind `lb`
//! (`bench/lb.py`).
//!
//! Usage: `cargo run --release --example ceiling -- 127.0.0.1:0`

use axum::extract::Path;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

async fn order(Path(id): Path<String>) -> Json<Value> {
    Json(json!({
        "order": {
            "_id": id,
            "product": "Laptop",
            "quantity": 1,
            "customer_name": "John Doe",
            "customer_address": "123 Main St",
            "created_at": "2026-11-22T11:02:06.123Z",
            "updated_at": "2026-11-22T11:02:06.123Z"
        }
    }))
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    let router = Router::new().route("/orders/{id}", get(order)).route(
        "/readyz",
        get(|| async { Json(json!({"status": "ready"})) }),
    );
    axum::serve(listener, router).await
}
