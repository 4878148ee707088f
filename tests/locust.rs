//! The load-test smoke run: Locust's scenarios against the stack from the main command.

use std::process::Command;
use std::time::Duration;

use harness::{Fetch, Process, Stack};

/// The load-test smoke run: the stack from the main command (2 replicas, 2 workers), the seed
/// loaded, a short headless Locust run of each user class with 0 failures, then a clean stop
/// that leaves no process behind.
#[tokio::test]
async fn a_short_locust_run_of_each_user_class_has_no_failures() {
    let root = harness::root();
    let locust = root.join("target/venv/locust/bin/locust");
    if !harness::available(locust.is_file(), "Locust (target/venv/locust)") {
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let mut stack = Stack::start(data.path(), &[("APP__LOG__LEVEL", "warn".into())]);
    stack.wait_until_serving();
    let host = stack.url("");
    let client = stack.client();

    let seeded = Command::new(harness::binary("seed"))
        .current_dir(root)
        .env(
            "APP__STORE__URI",
            format!("sqlite://{}", data.path().join("orders.db").display()),
        )
        .args(["reset", "--count", "1000", "--quiet"])
        .status()
        .unwrap();
    assert!(seeded.success(), "seed reset failed");
    let page: serde_json::Value = client
        .get(format!("{host}/orders?limit=1000"))
        .fetch_json()
        .await;
    assert_eq!(page["orders"].as_array().unwrap().len(), 1000);

    for class in ["ReferenceUser", "CrudUser", "ImageUser"] {
        let prefix = data.path().join(class);
        let mut command = Command::new(&locust);
        command
            .current_dir(root)
            .env("SEED_COUNT", "1000")
            .env("ORDERS_API_KEY", stack.key())
            .args(["-f", "locustfile.py", "--headless", "--only-summary"])
            .args(["-u", "20", "-r", "10", "-t", "12s", "--stop-timeout", "5"])
            .args(["-H", &host, "--csv"])
            .arg(&prefix)
            .arg(class);
        let mut run = Process::spawn(command, data.path().join(format!("{class}.log")));
        let Some(status) = run.wait_bounded(Duration::from_secs(60)) else {
            panic!("Locust {class} did not finish in 60 s:\n{}", run.output());
        };
        let stats = std::fs::read_to_string(format!("{}_stats.csv", prefix.display())).unwrap();
        let failures = std::fs::read_to_string(format!("{}_failures.csv", prefix.display()))
            .unwrap_or_default();
        let aggregated = stats
            .lines()
            .find(|l| l.contains(",Aggregated,"))
            .unwrap_or_else(|| panic!("no Aggregated row for {class}:\n{stats}"));
        let columns: Vec<&str> = aggregated.split(',').collect();
        let (requests, failed): (u64, u64) =
            (columns[2].parse().unwrap(), columns[3].parse().unwrap());
        assert!(
            status.success() && failed == 0,
            "{class}: Locust exited {status} with {failed} failures:\n{failures}"
        );
        assert!(
            requests >= 20,
            "{class} made only {requests} requests:\n{stats}"
        );
    }

    stack.stop_cleanly();
    let marker = format!("STACK_DATA_DIR={}", data.path().display());
    let left: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .chars()
                .all(|c| c.is_ascii_digit())
        })
        .filter(|e| {
            std::fs::read(e.path().join("environ"))
                .is_ok_and(|env| env.split(|b| *b == 0).any(|var| var == marker.as_bytes()))
        })
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(left.is_empty(), "processes left behind: {left:?}");
}
