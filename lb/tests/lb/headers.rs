//! What the balancer adds to, keeps in and refuses of a request.

use harness::Fetch;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::Value;

use crate::balancer::{balanced, echoed};

#[tokio::test]
async fn the_request_id_round_trips_and_is_created_when_missing() {
    let dir = tempfile::tempdir().unwrap();
    let (_apis, lb) = balanced(dir.path(), 1, &[]);
    let client = reqwest::Client::new();
    let response = client
        .get(lb.url("/orders"))
        .header("x-request-id", "trace-lb-1")
        .fetch()
        .await;
    assert_eq!(response.headers()["x-request-id"], "trace-lb-1");
    for hostile in ["y".repeat(300), "a b".into()] {
        let response = client
            .get(lb.url("/orders"))
            .header("x-request-id", hostile.as_str())
            .fetch()
            .await;
        let replaced = response.headers()["x-request-id"].to_str().unwrap();
        assert_eq!(
            replaced.len(),
            36,
            "a UUID instead of {hostile:?}: {replaced}"
        );
    }
    let response = client.get(lb.url("/orders")).fetch().await;
    let created = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(created.len(), 36, "a UUID: {created}");
    let (echo, lb) = echoed(dir.path(), &[]);
    let response = client.get(lb.url("/orders")).fetch().await;
    let created = response.headers()["x-request-id"].to_str().unwrap();
    let heads = echo.heads.lock().unwrap();
    assert!(
        heads.last().unwrap().contains(created),
        "the upstream saw the id the balancer created: {heads:?}"
    );
}

#[tokio::test]
async fn forwarding_headers_reach_the_upstream_and_hop_by_hop_ones_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let (echo, lb) = echoed(dir.path(), &[]);
    let response = reqwest::Client::new()
        .get(lb.url("/orders"))
        .header("x-forwarded-for", "203.0.113.7")
        .header("connection", "keep-alive, x-secret-hop")
        .header("x-secret-hop", "1")
        .header("keep-alive", "timeout=5")
        .fetch()
        .await;
    assert_eq!(response.status(), 200);
    let heads = echo.heads.lock().unwrap().clone();
    let head = heads
        .iter()
        .rev()
        .find(|h| h.starts_with("GET /orders "))
        .expect("the request reached the upstream")
        .to_ascii_lowercase();
    assert!(
        head.contains("x-forwarded-for: 203.0.113.7, 127.0.0.1"),
        "{head}"
    );
    assert!(head.contains("x-forwarded-proto: http"), "{head}");
    assert!(head.contains("x-request-id: "), "{head}");
    assert!(!head.contains("x-secret-hop"), "{head}");
    assert!(!head.contains("keep-alive: timeout"), "{head}");
}

#[tokio::test]
async fn oversized_headers_and_bodies_are_refused_with_json() {
    let dir = tempfile::tempdir().unwrap();
    let limits = [
        ("APP__LIMITS__MAX_BODY_BYTES", "1000"),
        ("APP__LIMITS__MAX_HEADER_BYTES", "2000"),
    ];
    let (_apis, lb) = balanced(dir.path(), 1, &limits);
    let client = reqwest::Client::new();
    let response = client
        .get(lb.url("/orders"))
        .header("x-big", "a".repeat(3000))
        .fetch()
        .await;
    assert_eq!(response.status(), 431);
    let body: Value = response.json().await.unwrap();
    assert!(body["message"].is_string());

    let response = client
        .post(lb.url("/orders"))
        .body("x".repeat(5000))
        .fetch()
        .await;
    assert_eq!(response.status(), 413);
    let body: Value = response.json().await.unwrap();
    assert!(body["message"].is_string());

    let mut stream = TcpStream::connect(("127.0.0.1", lb.port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "POST /orders HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    for _ in 0..4 {
        let _ = write!(stream, "200\r\n{}\r\n", "y".repeat(0x200));
    }
    let _ = write!(stream, "0\r\n\r\n");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    let small = client
        .post(lb.url("/orders"))
        .body("x".repeat(500))
        .fetch()
        .await;
    assert_eq!(
        small.status(),
        415,
        "a body under the limit reaches the api"
    );
}

/// A client that sends its headers a byte at a time is disconnected once the header deadline
/// passes, while the bytes keep coming.
#[test]
fn a_client_trickling_its_headers_is_cut_off_at_the_header_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let (echo, lb) = echoed(dir.path(), &[("APP__TIMEOUTS__CLIENT_HEADER_MS", "1000")]);
    let stream = TcpStream::connect(("127.0.0.1", lb.port)).unwrap();
    let mut reader = stream.try_clone().unwrap();
    reader
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let started = std::time::Instant::now();
    let trickle = std::thread::spawn(move || {
        let mut stream = stream;
        for byte in b"GET /orders HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" {
            if stream.write_all(&[*byte]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let mut answer = Vec::new();
    let outcome = reader.read_to_end(&mut answer);
    let elapsed = started.elapsed();
    assert!(
        outcome.is_ok()
            || outcome
                .as_ref()
                .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
        "{outcome:?}"
    );
    assert!(
        elapsed >= Duration::from_millis(900),
        "cut off too early: {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_secs(4),
        "not cut off in time: {elapsed:?}"
    );
    assert!(
        echo.heads
            .lock()
            .unwrap()
            .iter()
            .all(|h| !h.contains("X-Slow"))
    );
    trickle.join().unwrap();
}

/// The deadline does not touch clients that keep a connection open between normal requests.
#[tokio::test]
async fn keep_alive_clients_are_not_cut_off_between_requests() {
    let dir = tempfile::tempdir().unwrap();
    let (_echo, lb) = echoed(dir.path(), &[("APP__TIMEOUTS__CLIENT_HEADER_MS", "500")]);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .build()
        .unwrap();
    for _ in 0..3 {
        let response = client.get(lb.url("/orders")).fetch().await;
        assert_eq!(response.status(), 200);
        tokio::time::sleep(Duration::from_millis(800)).await;
    }
}

/// Through the lb, an answer given before the body is read reaches a client that writes its
/// whole request before reading (Python's `http.client`): a 2 MB JSON body refused by the api
/// (413 after 64 KiB), and a 30 MB upload refused by the lb itself (over `limits.max_body_bytes`).
#[tokio::test]
async fn an_early_answer_reaches_a_client_that_sends_everything_first() {
    let dir = tempfile::tempdir().unwrap();
    let (_apis, lb) = balanced(dir.path(), 1, &[]);
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], lb.port));
    harness::assert_early_answers_are_readable(addr, None).await;
}

/// `/metrics` (and any path in `server.internal_paths`) is answered 404 by the lb itself on its
/// public listener, however it is spelled, and never reaches a replica; the rest passes.
#[tokio::test]
async fn internal_paths_are_not_forwarded_from_the_public_listener() {
    let dir = tempfile::tempdir().unwrap();
    let (apis, lb) = balanced(
        dir.path(),
        1,
        &[("APP__SERVER__INTERNAL_PATHS", "/metrics,/internal")],
    );
    let client = reqwest::Client::new();
    for path in [
        "/metrics",
        "/metrics/",
        "/metrics?x=1",
        "/%6detrics",
        "/%6D%65trics/x",
        "/internal",
        "/internal/debug",
    ] {
        let response = client.get(lb.url(path)).fetch().await;
        assert_eq!(response.status(), 404, "{path}");
        let body: Value = response.json().await.unwrap();
        assert!(body["message"].is_string(), "{path}: {body}");
    }
    // The replica's first scrape: besides lb's health checks, no request reached it.
    assert_eq!(answered_besides_health_checks(&apis[0]), 0);
    assert_eq!(client.get(lb.url("/orders")).fetch().await.status(), 200);
    assert_eq!(client.get(lb.url("/internals")).fetch().await.status(), 404);
    // Those two did reach it (and the scrape above).
    assert_eq!(answered_besides_health_checks(&apis[0]), 3);
}

/// The requests `api` answered, by its own counter, other than lb's `GET /readyz`.
fn answered_besides_health_checks(api: &harness::Api) -> u64 {
    harness::get_text(api.addr, "/metrics")
        .lines()
        .filter(|l| l.starts_with("http_requests_total{") && !l.contains("route=\"/readyz\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}
