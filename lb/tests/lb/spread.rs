//! Round-robin over three real api replicas sharing one SQLite file.

use harness::Api;

use crate::balancer::{Lb, replica, requests};

#[tokio::test]
async fn three_hundred_requests_spread_evenly_over_three_replicas() {
    let dir = tempfile::tempdir().unwrap();
    let apis: Vec<Api> = (1..=3)
        .map(|i| replica(dir.path(), &format!("api-{i}")))
        .collect();
    let addrs: Vec<_> = apis.iter().map(|api| api.addr).collect();
    let lb = Lb::start(dir.path(), &addrs, &[]);
    lb.wait_for_health(&addrs.iter().map(|a| (*a, true)).collect::<Vec<_>>());

    let client = reqwest::Client::new();
    for _ in 0..300 {
        let response = client.get(lb.url("/orders?limit=1")).send().await.unwrap();
        assert_eq!(response.status(), 200);
    }
    for api in &apis {
        let served = requests(api, "/orders");
        assert!((95..=105).contains(&served), "{} served {served}", api.addr);
    }
}
