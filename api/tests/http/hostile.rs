//! Hostile input: each gets a 4xx JSON answer, nothing is stored, and the server keeps serving.

use std::time::{Duration, Instant};

use harness::Fetch;
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{TestApp, error_body, raw_http, reference_order, spawn_app, spawn_app_with};

async fn post_raw(app: &TestApp, body: Vec<u8>) -> reqwest::Response {
    app.request(Method::POST, "/orders")
        .header("content-type", "application/json")
        .body(body)
        .fetch()
        .await
}

/// Sends bytes as they are over a new connection and returns the whole answer.
async fn still_serving_and_empty(app: &TestApp) {
    assert_eq!(app.get("/healthz").await.status(), 200);
    let list: Value = app.get_json("/orders").await;
    assert_eq!(list["orders"], json!([]));
    app.create(&reference_order()).await;
}

#[tokio::test]
async fn a_megabyte_of_nesting_is_refused() {
    let app = spawn_app().await;
    let nested = [vec![b'['; 512 * 1024], vec![b']'; 512 * 1024]].concat();
    error_body(post_raw(&app, nested.clone()).await, 413).await;
    let mut object = b"{\"product\":".to_vec();
    object.extend(vec![b'['; 60_000]);
    error_body(post_raw(&app, object).await, 400).await;
    still_serving_and_empty(&app).await;
}

#[tokio::test]
async fn deep_nesting_within_a_large_limit_is_400_not_a_stack_overflow() {
    let app = spawn_app_with(|s| s.server.body_limit = 4 * 1024 * 1024).await;
    let nested = [vec![b'['; 1024 * 1024], vec![b']'; 1024 * 1024]].concat();
    error_body(post_raw(&app, nested).await, 400).await;
    still_serving_and_empty(&app).await;
}

#[tokio::test]
async fn huge_numbers_are_refused() {
    let app = spawn_app().await;
    let body = |quantity: &str| {
        format!(
            r#"{{"product":"Laptop","quantity":{quantity},"customer_name":"A","customer_address":"B"}}"#
        )
        .into_bytes()
    };
    error_body(post_raw(&app, body("1e400")).await, 400).await;
    for quantity in [
        "99999999999999999999999999",
        "18446744073709551616",
        "1e7",
        "-0",
    ] {
        let error = error_body(post_raw(&app, body(quantity)).await, 422).await;
        assert!(
            error["errors"]["quantity"].is_string(),
            "{quantity}: {error}"
        );
    }
    let digits = "9".repeat(50_000);
    let response = post_raw(&app, body(&digits)).await;
    assert!(response.status().is_client_error());
    still_serving_and_empty(&app).await;
}

#[tokio::test]
async fn invalid_utf8_is_refused() {
    let app = spawn_app().await;
    let mut body = br#"{"product":"Lap"#.to_vec();
    body.extend([0xff, 0xfe, 0xc3]);
    body.extend(br#"top","quantity":1,"customer_name":"A","customer_address":"B"}"#);
    error_body(post_raw(&app, body).await, 400).await;
    error_body(app.get("/orders/%ff%fe").await, 400).await;
    // Query values are decoded leniently (U+FFFD replaces the bad bytes), so they match nothing.
    let list: Value = app.get_json("/orders?customer_name=%ff").await;
    assert_eq!(list["orders"], json!([]));
    still_serving_and_empty(&app).await;
}

#[tokio::test]
async fn ids_with_path_tricks_are_client_errors() {
    let app = spawn_app().await;
    for path in [
        "/orders/..%2F..%2Fetc%2Fpasswd",
        "/orders/65a1b2c3d4e5f60718293a4b%00",
        "/orders/65a1b2c3d4e5f60718293a4b%20",
        "/orders/%00",
        "/orders/65a1b2c3d4e5f60718293a4b;drop",
        "/orders/'%20OR%201=1--",
    ] {
        error_body(app.get(path).await, 400).await;
    }
    // Clients resolve dot segments before sending; what arrives is another, absent, path.
    error_body(app.get("/orders/%2e%2e/%2e%2e/etc/passwd").await, 404).await;
    let answer = raw_http(
        &app,
        b"GET /orders/../../etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    assert!(answer.contains("\"message\""), "{answer}");
    still_serving_and_empty(&app).await;
}

#[tokio::test]
async fn duplicate_keys_and_floods_of_unknown_fields_are_refused() {
    let app = spawn_app().await;
    let duplicate = br#"{"product":"A","quantity":1,"quantity":"1","customer_name":"A","customer_address":"B"}"#;
    error_body(post_raw(&app, duplicate.to_vec()).await, 422).await;
    let mut flood = reference_order();
    for i in 0..2000 {
        flood[format!("f{i}")] = json!(i);
    }
    let error = error_body(app.post_json("/orders", &flood).await, 422).await;
    assert_eq!(error["errors"].as_object().unwrap().len(), 2000);
    still_serving_and_empty(&app).await;
}

#[tokio::test]
async fn a_chunked_body_over_the_limit_is_413() {
    let app = spawn_app().await;
    let chunk = "x".repeat(8 * 1024);
    let mut request = b"POST /orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_vec();
    for _ in 0..10 {
        request.extend(format!("{:x}\r\n{chunk}\r\n", chunk.len()).into_bytes());
    }
    request.extend(b"0\r\n\r\n");
    let answer = raw_http(&app, &request).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    still_serving_and_empty(&app).await;
}

/// A slowloris client (headers one byte at a time, never finished) is cut at
/// `server.header_read_timeout_ms`, while a normal client is served meanwhile; an idle kept-alive
/// connection is closed after the same time.
#[tokio::test]
async fn slow_headers_and_idle_connections_are_cut_at_the_header_deadline() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app_with(|s| s.server.header_read_timeout_ms = 1000).await;
    let mut slow = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let started = Instant::now();
    let drip = async {
        for byte in
            b"GET /orders HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        {
            if slow.write_all(&[*byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut rest = Vec::new();
        let _ = slow.read_to_end(&mut rest).await;
        started.elapsed()
    };
    let served = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        app.get("/healthz").await.status()
    };
    let (cut_after, status) = tokio::join!(drip, served);
    assert_eq!(status, 200);
    assert!(
        cut_after >= Duration::from_millis(900) && cut_after < Duration::from_secs(4),
        "cut after {cut_after:?}"
    );

    let mut idle = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut head = [0_u8; 12];
    idle.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    let started = Instant::now();
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), idle.read_to_end(&mut rest))
        .await
        .expect("the idle connection was closed")
        .unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(800),
        "{:?}",
        started.elapsed()
    );
}

/// An answer given before the body is read (413, 401 here) reaches a client that writes its
/// whole request before reading (Python's `http.client`): the api reads and drops the rest of the
/// body instead of resetting the connection under the client.
#[tokio::test]
async fn an_early_answer_reaches_a_client_that_sends_everything_first() {
    let app = spawn_app().await;
    let addr = app.addr;
    harness::assert_early_answers_are_readable(addr, Some(app.key.clone())).await;
    let without_key = tokio::task::spawn_blocking(move || {
        harness::send_then_read(addr, "upload", 10_000_000, None)
    })
    .await
    .unwrap();
    let (status, body) = without_key.expect("the client read the answer");
    assert_eq!(status, 401, "{body}");
}

/// Clients that hang up while their requests wait on the store (a load generator's deadline, a
/// proxy's timeout) must not stall the requests after them. The MongoDB driver's manual asks for
/// every operation to be polled to its end; dropped part-way, they left later operations waiting
/// up to 100 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_hanging_up_mid_request_do_not_stall_later_requests() {
    use tokio::io::AsyncWriteExt;
    let app = spawn_app().await;
    for _ in 0..100 {
        app.create(&reference_order()).await;
    }
    let request = format!(
        "GET /orders?limit=100 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\r\n",
        app.key
    );
    for round in 0..10 {
        let mut hangups = tokio::task::JoinSet::new();
        for i in 0..64u64 {
            let (addr, request) = (app.addr, request.clone());
            hangups.spawn(async move {
                let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
                stream.write_all(request.as_bytes()).await.unwrap();
                // Spread over the time a list takes, so some hang up mid-operation.
                tokio::time::sleep(Duration::from_micros(i * 40)).await;
            });
        }
        while hangups.join_next().await.is_some() {}
        let answer = tokio::time::timeout(Duration::from_secs(5), app.get("/orders?limit=1"))
            .await
            .unwrap_or_else(|_| panic!("round {round}: no answer in 5 s after clients hung up"));
        assert_eq!(answer.status(), 200, "round {round}");
    }
}
