//! Replicas dying under load, and no replica at all.

use harness::Fetch;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::balancer::{balanced, echoed, requests};

const ORDER: &str = r#"{"product":"Laptop","quantity":1,"customer_name":"John Doe","customer_address":"123 Main St"}"#;

#[tokio::test]
async fn killing_a_replica_under_load_fails_no_request_and_it_rejoins_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (mut apis, lb) = balanced(dir.path(), 3, &[("APP__HEALTH__INTERVAL_MS", "300")]);
    let addrs: Vec<_> = apis.iter().map(|api| api.addr).collect();

    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let created: Value = client
        .post(lb.url("/orders"))
        .header("content-type", "application/json")
        .body(ORDER)
        .fetch_json()
        .await;
    let path = format!("/orders/{}", created["order"]["_id"].as_str().unwrap());

    let mut failures = Vec::new();
    let mut sent = 0;
    let started = Instant::now();
    let mut killed = false;
    while started.elapsed() < Duration::from_secs(4) && sent < 20_000 {
        if !killed && started.elapsed() > Duration::from_secs(1) {
            apis[1].process.kill();
            killed = true;
        }
        let response = if sent % 2 == 0 {
            client.get(lb.url(&path)).send().await
        } else {
            client
                .put(lb.url(&path))
                .json(&json!({"quantity": sent % 100 + 1}))
                .send()
                .await
        };
        sent += 1;
        match response {
            Ok(r) if r.status() == 200 => {}
            Ok(r) => failures.push(format!("{}", r.status())),
            Err(e) => failures.push(e.to_string()),
        }
    }
    assert!(sent > 100, "only {sent} requests sent");
    assert!(
        failures.is_empty(),
        "{} of {sent} failed: {failures:?}",
        failures.len()
    );
    lb.wait_for_health(&[(addrs[1], false), (addrs[0], true), (addrs[2], true)]);

    apis[1].restart();
    lb.wait_for_health(&[(addrs[1], true)]);
    let before = requests(&apis[1], "/orders/{id}");
    for _ in 0..30 {
        assert_eq!(client.get(lb.url(&path)).fetch().await.status(), 200);
    }
    assert!(
        requests(&apis[1], "/orders/{id}") > before,
        "the restarted replica gets no traffic"
    );
}

/// The lb sends a POST that carries an `Idempotency-Key` again to another replica when the first
/// stops answering. Here the first replica has begun the insert (held back by the test's lock on
/// the SQLite file) when it is stopped with SIGSTOP, past the lb's read timeout; the retry goes
/// to the other replica. Once the lock is released and the first replica resumes, its insert
/// runs too: the key makes the two tries one order, and the client's answer names it.
#[tokio::test]
async fn a_keyed_post_retried_past_a_stopped_replica_creates_one_order() {
    let dir = tempfile::tempdir().unwrap();
    let (apis, lb) = balanced(
        dir.path(),
        2,
        &[
            ("APP__TIMEOUTS__UPSTREAM_READ_MS", "1000"),
            // A hung health check must not take the stopped replica out meanwhile.
            ("APP__HEALTH__TIMEOUT_MS", "30000"),
        ],
    );
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    // Round robin: the replica that did not serve this GET gets the next request.
    client.get(lb.url("/orders")).fetch().await;
    let first = usize::from(requests(&apis[0], "/orders") > 0);

    let mut lock = rusqlite::Connection::open(dir.path().join("orders.db")).unwrap();
    let held = lock
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .unwrap();
    let post = tokio::spawn({
        let (client, url) = (client.clone(), lb.url("/orders"));
        async move {
            client
                .post(url)
                .header("content-type", "application/json")
                .header("idempotency-key", "retried-once")
                .body(ORDER)
                .fetch()
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    apis[first].process.signal("STOP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while lb.counter("lb_retries_total") == 0 {
        assert!(Instant::now() < deadline, "the POST was not retried");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    held.rollback().unwrap();
    let response = post.await.unwrap();
    assert_eq!(response.status(), 201);
    let answer: Value = response.json().await.unwrap();
    apis[first].process.signal("CONT");
    // The resumed replica's insert, already with the database, runs now (it is not cancelled
    // with the closed connection): milliseconds, given a wide margin.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let listed: Value = client.get(lb.url("/orders")).fetch_json().await;
    let stored: Vec<&Value> = listed["orders"].as_array().unwrap().iter().collect();
    assert_eq!(stored.len(), 1, "{listed}");
    assert_eq!(stored[0]["_id"], answer["order"]["_id"]);
}

#[tokio::test]
async fn with_every_replica_down_the_answer_is_a_quick_json_5xx() {
    let dir = tempfile::tempdir().unwrap();
    let (mut apis, lb) = balanced(dir.path(), 2, &[]);
    let addrs: Vec<_> = apis.iter().map(|api| api.addr).collect();
    for api in &mut apis {
        api.process.kill();
    }
    let client = reqwest::Client::new();
    for _ in 0..2 {
        let started = Instant::now();
        let response = client.get(lb.url("/orders")).fetch().await;
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "took {:?}",
            started.elapsed()
        );
        assert!(
            matches!(response.status().as_u16(), 502 | 503),
            "{}",
            response.status()
        );
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json")
        );
        let body: Value = response.json().await.unwrap();
        assert!(body["message"].is_string(), "{body}");
    }
    lb.wait_for_health(&addrs.iter().map(|a| (*a, false)).collect::<Vec<_>>());
    let response = client.get(lb.url("/orders")).fetch().await;
    assert_eq!(response.status(), 503);
}

/// SIGTERM: no new connections, but a request in flight is answered (pingora's grace period),
/// and the process exits soon after it.
#[tokio::test]
async fn sigterm_lets_requests_in_flight_finish_and_then_stops() {
    let dir = tempfile::tempdir().unwrap();
    let (_echo, mut lb) = echoed(dir.path(), &[("APP__SERVER__GRACE_PERIOD_SECONDS", "3")]);
    let in_flight = tokio::spawn(
        reqwest::Client::new()
            .get(lb.url("/orders"))
            .header("x-echo-delay-ms", "1500")
            .send(),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    lb.process.signal("TERM");
    let answer = in_flight
        .await
        .unwrap()
        .expect("the request in flight was cut");
    assert_eq!(answer.status(), 200);
    assert!(
        lb.process.wait_bounded(Duration::from_secs(10)).is_some(),
        "still running 10 s after SIGTERM"
    );
    assert!(std::net::TcpStream::connect(("127.0.0.1", lb.port)).is_err());
}
