//! The admin API: the upstreams as the balancer sees them, draining one (it waits for the
//! replica's requests in flight, then the replica gets no new ones) and enabling it again, and
//! the optional token.

use std::time::{Duration, Instant};

use harness::Fetch;
use serde_json::Value;

use crate::balancer::{Echo, Lb};

fn admin_url(lb: &Lb, path: &str) -> String {
    format!("http://127.0.0.1:{}{path}", lb.admin)
}

async fn upstreams(client: &reqwest::Client, lb: &Lb) -> Vec<Value> {
    let listed: Value = client.get(admin_url(lb, "/upstreams")).fetch_json().await;
    listed.as_array().expect("a list").clone()
}

#[tokio::test]
async fn a_drained_replica_finishes_its_requests_and_gets_no_new_ones_until_enabled() {
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = (Echo::start(), Echo::start());
    let lb = Lb::start(dir.path(), &[first.addr, second.addr], &[]);
    lb.wait_for_health(&[(first.addr, true), (second.addr, true)]);
    let client = reqwest::Client::new();

    // Two slow requests: round-robin puts one on each replica.
    let slow = |client: reqwest::Client, url: String| async move {
        client
            .get(url)
            .header("x-echo-delay-ms", "1500")
            .fetch()
            .await
            .status()
    };
    let slow_requests = [
        tokio::spawn(slow(client.clone(), lb.url("/slow"))),
        tokio::spawn(slow(client.clone(), lb.url("/slow"))),
    ];
    tokio::time::sleep(Duration::from_millis(300)).await;
    let listed = upstreams(&client, &lb).await;
    let target = first.addr.to_string();
    let entry = listed
        .iter()
        .find(|u| u["address"] == target.as_str())
        .expect("the replica is listed");
    assert_eq!(entry["in_flight"], 1, "{listed:?}");
    assert_eq!(entry["healthy"], true);
    assert_eq!(entry["draining"], false);

    let started = Instant::now();
    let drained: Value = client
        .post(admin_url(
            &lb,
            &format!("/upstreams/{target}/drain?timeout_ms=10000"),
        ))
        .fetch_json()
        .await;
    let waited = started.elapsed();
    assert_eq!(drained["drained"], true, "{drained}");
    assert_eq!(drained["in_flight"], 0, "{drained}");
    assert!(
        waited >= Duration::from_millis(800),
        "the drain answered before the slow request ended: {waited:?}"
    );
    for request in slow_requests {
        assert_eq!(request.await.unwrap(), 200, "a request in flight failed");
    }

    let before = first.heads.lock().unwrap().len();
    for _ in 0..10 {
        assert_eq!(client.get(lb.url("/orders")).fetch().await.status(), 200);
    }
    assert_eq!(
        first.heads.lock().unwrap().len(),
        before,
        "a draining replica got new requests"
    );
    let listed = upstreams(&client, &lb).await;
    assert!(
        listed
            .iter()
            .any(|u| u["address"] == target.as_str() && u["draining"] == true),
        "{listed:?}"
    );

    let enabled: Value = client
        .post(admin_url(&lb, &format!("/upstreams/{target}/enable")))
        .fetch_json()
        .await;
    assert_eq!(enabled["draining"], false, "{enabled}");
    for _ in 0..10 {
        assert_eq!(client.get(lb.url("/orders")).fetch().await.status(), 200);
    }
    assert!(
        first.heads.lock().unwrap().len() > before,
        "the enabled replica got no requests"
    );
}

#[tokio::test]
async fn an_unknown_or_malformed_address_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let echo = Echo::start();
    let lb = Lb::start(dir.path(), &[echo.addr], &[]);
    let client = reqwest::Client::new();
    for (path, status) in [
        ("/upstreams/127.0.0.1:1/drain", 404),
        ("/upstreams/nonsense/drain", 400),
        ("/upstreams/127.0.0.1:1/enable", 404),
    ] {
        let response = client.post(admin_url(&lb, path)).fetch().await;
        assert_eq!(response.status(), status, "{path}");
        let body: Value = response.json().await.unwrap();
        assert!(body["message"].is_string(), "{body}");
    }
}

#[tokio::test]
async fn with_a_token_file_the_admin_api_asks_for_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("admin-token");
    std::fs::write(&token_file, "s3cret-admin-token\n").unwrap();
    let echo = Echo::start();
    let file = token_file.display().to_string();
    let lb = Lb::start(
        dir.path(),
        &[echo.addr],
        &[("APP__SERVER__ADMIN_TOKEN_FILE", file.as_str())],
    );
    let client = reqwest::Client::new();
    for path in ["/upstreams", "/metrics"] {
        let refused = client.get(admin_url(&lb, path)).fetch().await;
        assert_eq!(refused.status(), 401, "{path}");
        assert_eq!(refused.headers()["www-authenticate"], "Bearer");
        let wrong = client
            .get(admin_url(&lb, path))
            .bearer_auth("s3cret-admin-tokeN")
            .fetch()
            .await;
        assert_eq!(wrong.status(), 401, "{path}");
        let allowed = client
            .get(admin_url(&lb, path))
            .bearer_auth("s3cret-admin-token")
            .fetch()
            .await;
        assert_eq!(allowed.status(), 200, "{path}");
    }
    let health = client.get(admin_url(&lb, "/healthz")).fetch().await;
    assert_eq!(health.status(), 200);
}
