//! Upstreams that change without a restart: a file read again every interval, and DNS names.

use std::time::{Duration, Instant};

use harness::Fetch;
use serde_json::Value;

use crate::balancer::{Echo, Lb};

const INTERVALS: [(&str, &str); 2] = [
    ("APP__UPSTREAMS__RESOLVE_INTERVAL_MS", "200"),
    ("APP__HEALTH__INTERVAL_MS", "200"),
];

async fn listed(client: &reqwest::Client, lb: &Lb) -> Vec<Value> {
    let url = format!("http://127.0.0.1:{}/upstreams", lb.admin);
    let list: Value = client.get(url).fetch_json().await;
    list.as_array().unwrap().clone()
}

/// Waits (bounded) until `check` holds for the admin API's list.
async fn until(client: &reqwest::Client, lb: &Lb, what: &str, check: impl Fn(&[Value]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let upstreams = listed(client, lb).await;
        if check(&upstreams) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: {upstreams:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn entry<'a>(upstreams: &'a [Value], addr: &str) -> Option<&'a Value> {
    upstreams.iter().find(|u| u["address"] == addr)
}

#[tokio::test]
async fn replicas_added_to_the_file_get_traffic_and_removed_ones_finish_their_requests() {
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = (Echo::start(), Echo::start());
    // Nothing listens there: listed, never healthy, never sent a request.
    let nowhere = format!("127.0.0.1:{}", harness::free_port());
    let file = dir.path().join("upstreams");
    std::fs::write(&file, "").unwrap();
    let path = file.display().to_string();
    let mut env = INTERVALS.to_vec();
    env.push(("APP__UPSTREAMS__FILE", path.as_str()));
    let lb = Lb::start(dir.path(), &[first.addr], &env);
    lb.wait_for_health(&[(first.addr, true)]);
    let client = reqwest::Client::new();
    let (one, two) = (first.addr.to_string(), second.addr.to_string());

    std::fs::write(&file, format!("# added\n{two}\n{nowhere}\n")).unwrap();
    until(&client, &lb, "the added replica is healthy", |u| {
        entry(u, &two).is_some_and(|e| e["healthy"] == true) && entry(u, &nowhere).is_some()
    })
    .await;
    for _ in 0..20 {
        assert_eq!(client.get(lb.url("/orders")).fetch().await.status(), 200);
    }
    assert!(
        !second.heads.lock().unwrap().is_empty(),
        "the added replica got no traffic"
    );
    let upstreams = listed(&client, &lb).await;
    let dead = entry(&upstreams, &nowhere).unwrap();
    assert_eq!(dead["healthy"], false, "{dead}");
    assert_eq!(
        dead["requests"], 0,
        "a replica that never passed its check got requests"
    );

    // One slow request on each replica, then the second leaves the file.
    let slow = |url: String| {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .get(url)
                .header("x-echo-delay-ms", "1500")
                .fetch()
                .await
                .status()
        })
    };
    let requests = [slow(lb.url("/slow")), slow(lb.url("/slow"))];
    tokio::time::sleep(Duration::from_millis(300)).await;
    let on_second = second.heads.lock().unwrap().len();
    std::fs::write(&file, "").unwrap();
    until(&client, &lb, "the removed replica is gone", |u| {
        entry(u, &two).is_none() && entry(u, &one).is_some()
    })
    .await;
    for _ in 0..10 {
        assert_eq!(client.get(lb.url("/orders")).fetch().await.status(), 200);
    }
    assert_eq!(
        second.heads.lock().unwrap().len(),
        on_second,
        "a removed replica got new requests"
    );
    for request in requests {
        assert_eq!(request.await.unwrap(), 200, "a request in flight failed");
    }
}

#[tokio::test]
async fn a_name_gives_an_upstream_per_address() {
    let dir = tempfile::tempdir().unwrap();
    let echo = Echo::start();
    let name = format!("localhost:{}", echo.addr.port());
    let mut env = INTERVALS.to_vec();
    env.push(("APP__UPSTREAMS__ADDRESSES", name.as_str()));
    let lb = Lb::start(dir.path(), &[], &env);
    lb.wait_for_health(&[(echo.addr, true)]);
    let client = reqwest::Client::new();
    assert_eq!(client.get(lb.url("/orders")).fetch().await.status(), 200);
    let upstreams = listed(&client, &lb).await;
    assert!(
        entry(&upstreams, &echo.addr.to_string()).is_some(),
        "{upstreams:?}"
    );
}
