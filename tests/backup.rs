//! `infra/backup` and `infra/restore` against the S3 test server: a backup taken while an api
//! serves its SQLite store is restored into a fresh store, and a fresh api serves every order.

use std::path::Path;
use std::process::Command;

use harness::s3::S3Bucket;
use harness::{Api, Fetch, available, root};

fn script(name: &str, bucket_url: &str, bucket: &S3Bucket, store: &str) -> Command {
    let mut command = Command::new(root().join("infra").join(name));
    command
        .env("SHOP_BACKUP_URL", bucket_url)
        .env("AWS_ACCESS_KEY_ID", &bucket.key_id)
        .env("AWS_SECRET_ACCESS_KEY", &bucket.secret)
        .env("APP__STORE__URI", store);
    command
}

fn succeed(mut command: Command) -> String {
    let output = command.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // The program and its arguments only: the environment holds the bucket's secret.
    assert!(
        output.status.success(),
        "{:?} {:?}: {text}",
        command.get_program(),
        command.get_args().collect::<Vec<_>>()
    );
    text
}

/// The S3 test server's bucket, once rclone and sqlite3 are there too; `None`: skip.
fn tools_and_bucket() -> Option<S3Bucket> {
    let found = ["rclone", "sqlite3"]
        .iter()
        .all(|tool| harness::on_path(tool).is_some());
    if !available(found, "rclone and sqlite3 (infra/setup test)") {
        return None;
    }
    S3Bucket::from_env()
}

fn sqlite(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

#[tokio::test]
async fn a_backup_restores_into_a_fresh_store_with_every_order() {
    let Some(bucket) = tools_and_bucket() else {
        return;
    };
    let url = bucket.unique_url();
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("live/orders.db");
    let api = Api::start(
        dir.path(),
        "api-live",
        &[("APP__STORE__URI", sqlite(&live))],
    );
    let client = reqwest::Client::new();
    let mut orders = Vec::new();
    for n in 0..150 {
        let created: serde_json::Value = client
            .post(api.url("/orders"))
            .json(
                &serde_json::json!({"product": format!("item {n}"), "quantity": n + 1,
                "customer_name": format!("Customer {n}"), "customer_address": "1 Backup Lane"}),
            )
            .fetch_json()
            .await;
        orders.push(created["order"].clone());
    }

    // Taken while the api is running, with its metric for the backup-age alert.
    let metrics = dir.path().join("textfile");
    std::fs::create_dir_all(&metrics).unwrap();
    let mut backup = script("backup", &url, &bucket, &sqlite(&live));
    backup.env("SHOP_BACKUP_METRICS_DIR", &metrics);
    let said = succeed(backup);
    assert!(said.contains("uploaded"), "{said}");
    let metric = std::fs::read_to_string(metrics.join("shop_backup.prom")).unwrap();
    let stamp: u64 = metric
        .lines()
        .find_map(|l| l.strip_prefix("shop_backup_last_success_timestamp_seconds "))
        .unwrap_or_else(|| panic!("{metric}"))
        .parse()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(now.abs_diff(stamp) < 60, "{metric}");

    // Restoring never overwrites a store.
    let refused = script("restore", &url, &bucket, &sqlite(&live))
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("exists"));

    let fresh = dir.path().join("fresh/orders.db");
    succeed(script("restore", &url, &bucket, &sqlite(&fresh)));
    let restored = Api::start(
        dir.path(),
        "api-restored",
        &[("APP__STORE__URI", sqlite(&fresh))],
    );
    for order in &orders {
        let id = order["_id"].as_str().unwrap();
        let served: serde_json::Value = client
            .get(restored.url(&format!("/orders/{id}")))
            .fetch_json()
            .await;
        assert_eq!(&served["order"], order);
    }
    let page: serde_json::Value = client
        .get(restored.url("/orders?limit=1000"))
        .fetch_json()
        .await;
    assert_eq!(page["orders"].as_array().unwrap().len(), orders.len());
}

/// A wrong bucket key or a store of the wrong kind fails loudly, naming no secret.
#[test]
fn bad_settings_fail_with_a_reason() {
    let Some(bucket) = tools_and_bucket() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let missing = sqlite(&dir.path().join("none.db"));
    for (url, store, said) in [
        ("https://bucket/x", missing.as_str(), "expected s3://"),
        (
            "s3://b/p?endpoint=http://127.0.0.1:1&secret=x",
            missing.as_str(),
            "only endpoint= and region=",
        ),
        (&bucket.unique_url(), missing.as_str(), "no SQLite file"),
        (
            &bucket.unique_url(),
            "postgres://user:hunter2@db/x",
            "unsupported store",
        ),
    ] {
        let output = script("backup", url, &bucket, store).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{url} {store}");
        assert!(stderr.contains(said), "{url} {store}: {stderr}");
        assert!(!stderr.contains("hunter2"), "{stderr}");
    }
    let mut wrong_key = script(
        "backup",
        &bucket.unique_url(),
        &bucket,
        &sqlite(&dir.path().join("x.db")),
    );
    std::fs::write(dir.path().join("x.db"), b"").unwrap();
    wrong_key.env("AWS_SECRET_ACCESS_KEY", "not-the-secret");
    let output = wrong_key.output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("403"), "{stderr}");
    assert!(!stderr.contains("not-the-secret"), "{stderr}");
}
