//! Round-robin over three real api replicas sharing one SQLite file.

use harness::Fetch;

use crate::balancer::{balanced, requests};

#[tokio::test]
async fn three_hundred_requests_spread_evenly_over_three_replicas() {
    let dir = tempfile::tempdir().unwrap();
    let (apis, lb) = balanced(dir.path(), 3, &[]);

    let client = reqwest::Client::new();
    for _ in 0..300 {
        let response = client.get(lb.url("/orders?limit=1")).fetch().await;
        assert_eq!(response.status(), 200);
    }
    for api in &apis {
        let served = requests(api, "/orders");
        assert!((95..=105).contains(&served), "{} served {served}", api.addr);
    }
}
