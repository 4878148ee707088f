//! Per-client rate limits, from two loopback source addresses: the client that floods gets 429s,
//! the other none; behind a trusted proxy, `X-Forwarded-For` names the client.

use std::net::IpAddr;

use harness::Fetch;
use serde_json::Value;

use crate::balancer::echoed;

fn client_from(address: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(address.parse::<IpAddr>().unwrap())
        .build()
        .unwrap()
}

/// Sends `count` GETs one after another; the statuses seen, with the last 429's answer.
async fn burst(
    client: &reqwest::Client,
    url: &str,
    count: usize,
    forwarded_for: Option<&str>,
) -> (usize, usize, Option<(String, Value)>) {
    let (mut ok, mut limited, mut refusal) = (0, 0, None);
    for _ in 0..count {
        let mut request = client.get(url);
        if let Some(hop) = forwarded_for {
            request = request.header("x-forwarded-for", hop);
        }
        let response = request.fetch().await;
        match response.status().as_u16() {
            200 => ok += 1,
            429 => {
                limited += 1;
                let retry_after = response.headers()["retry-after"]
                    .to_str()
                    .unwrap()
                    .to_owned();
                refusal = Some((retry_after, response.json().await.unwrap()));
            }
            other => panic!("unexpected status {other}"),
        }
    }
    (ok, limited, refusal)
}

#[tokio::test]
async fn a_flooding_client_gets_429_and_another_client_none() {
    let dir = tempfile::tempdir().unwrap();
    let limits = [
        ("APP__LIMITS__CLIENT_RATE_PER_SECOND", "2"),
        ("APP__LIMITS__CLIENT_BURST", "10"),
    ];
    let (_echo, lb) = echoed(dir.path(), &limits);
    let url = lb.url("/orders");
    let (ok, limited, refusal) = burst(&client_from("127.0.0.2"), &url, 40, None).await;
    // The burst of 10, and 2 more a second while the 40 go out.
    assert!(ok >= 10 && limited >= 20, "{ok} passed, {limited} limited");
    let (retry_after, body) = refusal.unwrap();
    assert_eq!(retry_after, "1");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("too many requests"),
        "{body}"
    );
    let (ok, limited, _) = burst(&client_from("127.0.0.3"), &url, 8, None).await;
    assert_eq!((ok, limited), (8, 0), "the other client was limited");
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_client_is_limited() {
    let dir = tempfile::tempdir().unwrap();
    let limits = [
        ("APP__LIMITS__CLIENT_RATE_PER_SECOND", "2"),
        ("APP__LIMITS__CLIENT_BURST", "5"),
        ("APP__LIMITS__TRUSTED_PROXIES", "127.0.0.4/32"),
    ];
    let (_echo, lb) = echoed(dir.path(), &limits);
    let url = lb.url("/orders");
    let proxy = client_from("127.0.0.4");
    let (_, limited, _) = burst(&proxy, &url, 20, Some("198.51.100.1")).await;
    assert!(limited >= 10, "{limited} limited");
    let (ok, limited, _) = burst(&proxy, &url, 5, Some("198.51.100.2")).await;
    assert_eq!((ok, limited), (5, 0), "another client behind the proxy");
    // A client that is not a trusted proxy cannot pose as another with the header.
    let direct = client_from("127.0.0.5");
    let (_, limited, _) = burst(&direct, &url, 20, Some("198.51.100.3")).await;
    assert!(limited >= 10, "{limited} limited");
    let (_, limited, _) = burst(&direct, &url, 3, Some("198.51.100.9")).await;
    assert!(limited >= 2, "a new header made a new client");
}
