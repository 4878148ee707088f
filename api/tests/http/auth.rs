//! API keys over HTTP: every guarded operation with no key, an unknown, revoked or expired key,
//! a key without the operation's scope (every other scope), and a key with only that scope; on
//! SQLite and, with `ORDERS_TEST_BACKEND=mongodb`, on MongoDB. Then the cache's limit on a
//! revoked key, keys in URLs, CORS, the metrics, and the OpenAPI document.

use std::time::Duration;

use api::auth::{ApiKey, ApiKeyRecord, KeyName, Scope, Scopes, manage};
use chrono::Utc;
use harness::Fetch;
use reqwest::{Client, Method, Response};
use serde_json::{Value, json};

use crate::common::{
    TestApp, client, client_with_key, error_body, make_key, reference_order, spawn_app,
    spawn_app_with,
};

#[derive(Clone, Copy)]
enum Body {
    None,
    Order,
    Changes,
    Picture,
}

/// A guarded operation: `{order}` and `{image}` in the path stand for a fresh resource's id.
struct Operation {
    method: Method,
    path: &'static str,
    needed: Scope,
    body: Body,
    /// What a key with the scope gets.
    granted: u16,
}

fn operations() -> Vec<Operation> {
    let op = |method, path, needed, body, granted| Operation {
        method,
        path,
        needed,
        body,
        granted,
    };
    use Body::*;
    use Scope::*;
    vec![
        op(Method::GET, "/orders", OrdersRead, None, 200),
        op(Method::POST, "/orders", OrdersWrite, Order, 201),
        op(Method::GET, "/orders/{order}", OrdersRead, None, 200),
        op(Method::PUT, "/orders/{order}", OrdersWrite, Changes, 200),
        op(Method::DELETE, "/orders/{order}", OrdersWrite, None, 200),
        op(Method::POST, "/images", ImagesWrite, Picture, 202),
        op(Method::GET, "/images/{image}", ImagesRead, None, 200),
        op(
            Method::GET,
            "/images/{image}/original",
            ImagesRead,
            None,
            200,
        ),
        // No worker runs here: the thumbnail is not made yet.
        op(
            Method::GET,
            "/images/{image}/thumbnail",
            ImagesRead,
            None,
            409,
        ),
        op(Method::DELETE, "/images/{image}", ImagesWrite, None, 200),
        op(Method::GET, "/metrics", Admin, None, 200),
    ]
}

/// Sends `operation` with `client` on fresh resources made with the app's admin key.
async fn send(app: &TestApp, client: &Client, operation: &Operation) -> Response {
    let order = app.create(&reference_order()).await["_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let uploaded = app
        .request(Method::POST, "/images")
        .multipart(harness::pictures::form(
            &harness::pictures::jpeg(64, 48),
            "a.jpg",
        ))
        .fetch_json()
        .await;
    let image = uploaded["job_id"].as_str().unwrap();
    let path = operation
        .path
        .replace("{order}", &order)
        .replace("{image}", image);
    let request = client.request(operation.method.clone(), app.url(&path));
    let request = match operation.body {
        Body::None => request,
        Body::Order => request.json(&reference_order()),
        Body::Changes => request.json(&json!({"quantity": 3})),
        Body::Picture => request.multipart(harness::pictures::form(
            &harness::pictures::jpeg(64, 48),
            "b.jpg",
        )),
    };
    request.fetch().await
}

/// A 401 with the JSON message and the Bearer challenge.
async fn refused_401(response: Response, invalid: bool, what: &str) {
    let challenge = response
        .headers()
        .get("www-authenticate")
        .unwrap_or_else(|| panic!("{what}: no WWW-Authenticate"))
        .to_str()
        .unwrap()
        .to_owned();
    assert!(challenge.starts_with("Bearer "), "{what}: {challenge}");
    assert_eq!(
        challenge.contains(r#"error="invalid_token""#),
        invalid,
        "{what}: {challenge}"
    );
    error_body(response, 401).await;
}

async fn stored_key(app: &TestApp, scopes: Scopes, expires_in: Option<chrono::Duration>) -> String {
    let now = Utc::now();
    let name = KeyName::parse("matrix").unwrap();
    let (key, record) = ApiKeyRecord::create(name, scopes, expires_in.map(|d| now + d), now);
    app.stores.api_keys.insert_api_key(&record).await.unwrap();
    key.reveal().to_owned()
}

#[tokio::test]
async fn every_operation_needs_a_live_key_with_its_scope() {
    let app = spawn_app().await;
    let revoked = make_key(&app.stores, &Scope::ALL).await;
    let id = ApiKey::parse(&revoked).unwrap().id();
    manage::revoke(&*app.stores.api_keys, id, Utc::now())
        .await
        .unwrap();
    let expired = stored_key(
        &app,
        Scopes::of(Scope::ALL),
        Some(chrono::Duration::milliseconds(1)),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let unknown = ApiKey::generate().reveal().to_owned();
    let orders_before = count_orders(&app).await;
    for operation in operations() {
        let what = format!("{} {}", operation.method, operation.path);
        refused_401(send(&app, &client(), &operation).await, false, &what).await;
        for (key, case) in [
            (&unknown, "unknown"),
            (&revoked, "revoked"),
            (&expired, "expired"),
        ] {
            let response = send(&app, &client_with_key(key), &operation).await;
            refused_401(response, true, &format!("{what}, {case} key")).await;
        }
        let others = Scope::ALL
            .into_iter()
            .filter(|s| *s != operation.needed && *s != Scope::Admin);
        let without = client_with_key(&stored_key(&app, Scopes::of(others), None).await);
        let response = send(&app, &without, &operation).await;
        let challenge = response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            challenge.contains(&format!(
                r#"error="insufficient_scope", scope="{}""#,
                operation.needed
            )),
            "{what}: {challenge}"
        );
        let body = error_body(response, 403).await;
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains(operation.needed.as_str()),
            "{what}: {body}"
        );
        let with = client_with_key(&make_key(&app.stores, &[operation.needed]).await);
        let response = send(&app, &with, &operation).await;
        assert_eq!(
            response.status(),
            operation.granted,
            "{what} with its scope"
        );
    }
    // Six sends per operation, each on a fresh order; the granted POST added one and the
    // granted DELETE removed one; a refused write would show here.
    assert_eq!(
        count_orders(&app).await,
        orders_before + operations().len() * 6
    );
}

async fn count_orders(app: &TestApp) -> usize {
    let mut total = 0;
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            Some(cursor) => format!("/orders?limit=1000&after={cursor}"),
            None => "/orders?limit=1000".into(),
        };
        let page = app.get_json(&path).await;
        total += page["orders"].as_array().unwrap().len();
        match page["next"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => return total,
        }
    }
}

#[tokio::test]
async fn a_revoked_key_is_refused_once_the_cache_time_has_passed() {
    let app = spawn_app_with(|s| s.auth.cache_ttl = Duration::from_millis(300)).await;
    let key = make_key(&app.stores, &[Scope::OrdersRead]).await;
    let reader = client_with_key(&key);
    assert_eq!(reader.get(app.url("/orders")).fetch().await.status(), 200);
    let id = ApiKey::parse(&key).unwrap().id();
    manage::revoke(&*app.stores.api_keys, id, Utc::now())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let response = reader.get(app.url("/orders")).fetch().await;
    let body = error_body(response, 401).await;
    assert_eq!(body["message"], "this API key was revoked");
}

#[tokio::test]
async fn a_key_in_the_url_is_refused_even_beside_a_good_header() {
    let app = spawn_app().await;
    let key = app.key.clone();
    for path in [
        format!("/orders?access_token={key}"),
        format!("/orders?limit=5&api_key={key}"),
        format!("/images/0123456789abcdef0123456789abcdef?k={key}"),
    ] {
        let body = error_body(app.get(&path).await, 400).await;
        assert!(body["message"].as_str().unwrap().contains("URL"), "{body}");
        let anonymous = client().get(app.url(&path)).fetch().await;
        error_body(anonymous, 400).await;
    }
}

#[tokio::test]
async fn malformed_and_hostile_authorization_headers_are_401() {
    let app = spawn_app().await;
    let key = app.key.clone();
    let long = "A".repeat(8000);
    for value in [
        key.clone(),
        format!("Basic {key}"),
        format!("Bearer{key}"),
        "Bearer".into(),
        "Bearer ".into(),
        format!("Bearer {key}x"),
        format!("Bearer {}", key.to_uppercase()),
        format!("Bearer {long}"),
        format!("Bearer {}", &key[..key.len() - 1]),
    ] {
        let response = client()
            .get(app.url("/orders"))
            .header("authorization", &value)
            .fetch()
            .await;
        error_body(response, 401).await;
    }
    let twice = client()
        .get(app.url("/orders"))
        .header("authorization", format!("Bearer {key}"))
        .header("authorization", format!("Bearer {key}"))
        .fetch()
        .await;
    error_body(twice, 401).await;
    // Bytes that are not text.
    let raw = crate::common::raw_http_unkeyed(
        &app,
        b"GET /orders HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\xfe\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(raw.starts_with("HTTP/1.1 401"), "{raw}");
    // The good key still works.
    assert_eq!(app.get("/orders").await.status(), 200);
}

#[tokio::test]
async fn health_readiness_the_document_and_the_page_need_no_key() {
    let app = spawn_app().await;
    for path in ["/healthz", "/readyz", "/openapi.json", "/"] {
        let response = client().get(app.url(path)).fetch().await;
        assert_eq!(response.status(), 200, "{path}");
    }
    // An unknown path is still 404, key or not.
    error_body(client().get(app.url("/nope")).fetch().await, 404).await;
}

#[tokio::test]
async fn without_auth_required_requests_pass_without_a_key() {
    let app = spawn_app_with(|s| s.auth.required = false).await;
    assert_eq!(client().get(app.url("/orders")).fetch().await.status(), 200);
    let created = client()
        .post(app.url("/orders"))
        .json(&reference_order())
        .fetch()
        .await;
    assert_eq!(created.status(), 201);
}

#[tokio::test]
async fn the_private_metrics_listener_serves_metrics_without_a_key_and_nothing_else() {
    let app =
        spawn_app_with(|s| s.server.metrics_listen = Some("127.0.0.1:0".parse().unwrap())).await;
    error_body(client().get(app.url("/metrics")).fetch().await, 401).await;
    let metrics_addr = app.metrics_addr.unwrap();
    let private = |path: &str| format!("http://{metrics_addr}{path}");
    let metrics = client().get(private("/metrics")).fetch().await;
    assert_eq!(metrics.status(), 200);
    assert!(
        metrics
            .text()
            .await
            .unwrap()
            .contains("http_requests_total")
    );
    assert_eq!(client().get(private("/readyz")).fetch().await.status(), 200);
    error_body(client().get(private("/orders")).fetch().await, 404).await;
}

#[tokio::test]
async fn cors_preflights_are_answered_for_allowed_origins_only() {
    let app = spawn_app_with(|s| {
        s.cors.allowed_origins = vec!["https://shop.example.com".into()];
    })
    .await;
    let preflight = |origin: &'static str| {
        client()
            .request(Method::OPTIONS, app.url("/orders"))
            .header("origin", origin)
            .header("access-control-request-method", "PUT")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            )
            .fetch()
    };
    let allowed = preflight("https://shop.example.com").await;
    assert_eq!(allowed.status(), 200);
    let headers = allowed.headers();
    assert_eq!(
        headers["access-control-allow-origin"],
        "https://shop.example.com"
    );
    assert!(
        headers["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("PUT")
    );
    assert!(
        headers["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .contains("authorization")
    );
    let refused = preflight("https://evil.example.net").await;
    assert!(
        refused
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    // A real call from the allowed origin: its answers, errors too, say who may read them.
    let anonymous = client()
        .get(app.url("/orders"))
        .header("origin", "https://shop.example.com")
        .fetch()
        .await;
    assert_eq!(
        anonymous.headers()["access-control-allow-origin"],
        "https://shop.example.com"
    );
    error_body(anonymous, 401).await;
    let keyed = app
        .request(Method::GET, "/orders")
        .header("origin", "https://shop.example.com")
        .fetch()
        .await;
    assert_eq!(keyed.status(), 200);
    assert!(
        keyed.headers()["access-control-expose-headers"]
            .to_str()
            .unwrap()
            .contains("x-request-id")
    );
}

#[tokio::test]
async fn by_default_no_origin_is_allowed() {
    let app = spawn_app().await;
    let preflight = client()
        .request(Method::OPTIONS, app.url("/orders"))
        .header("origin", "https://shop.example.com")
        .header("access-control-request-method", "GET")
        .fetch()
        .await;
    assert!(
        preflight.status().is_client_error(),
        "{}",
        preflight.status()
    );
    assert!(
        preflight
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    let call = app
        .request(Method::GET, "/orders")
        .header("origin", "https://shop.example.com")
        .fetch()
        .await;
    assert!(call.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn the_document_names_the_scheme_and_each_operations_scope() {
    let app = spawn_app().await;
    let document: Value = client().get(app.url("/openapi.json")).fetch_json().await;
    assert_eq!(
        document["components"]["securitySchemes"]["apiKey"]["scheme"],
        "bearer"
    );
    for operation in operations() {
        let path = operation
            .path
            .replace("{order}", "{id}")
            .replace("{image}", "{id}");
        let method = operation.method.as_str().to_lowercase();
        let documented = &document["paths"][&path][&method];
        assert_eq!(
            documented["security"],
            json!([{"apiKey": [operation.needed.as_str()]}]),
            "{method} {path}"
        );
        for status in ["401", "403"] {
            assert!(
                documented["responses"][status].is_object(),
                "{method} {path}"
            );
        }
    }
    assert!(document["paths"]["/healthz"]["get"]["security"].is_null());
}
