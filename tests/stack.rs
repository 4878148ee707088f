//! The README's main command (`infra/run`) on test ports: the stack comes up behind `lb`, serves
//! orders and images, and SIGTERM stops every process. On SQLite by default; on MongoDB when
//! `ORDERS_TEST_BACKEND=mongodb` (the second pass of `infra/test`), as the README's
//! `APP__STORE__URI=mongodb://… infra/run`, which gives the stack no queue URL.

use std::time::{Duration, Instant};

use harness::s3::S3Bucket;
use harness::tls::TestCa;
use harness::{Fetch, RedisServer, Stack, mongo, pictures};
use serde_json::{Value, json};

/// Where the stack keeps its orders, and how the test reads them back without it.
enum Store {
    Sqlite(std::path::PathBuf),
    Mongo { uri: String, database: String },
}

#[tokio::test]
async fn the_main_command_starts_the_balanced_stack_and_stops_it_cleanly() {
    let data = tempfile::tempdir().unwrap();
    let store = if mongo::selected() {
        let Some(uri) = mongo::uri() else { return };
        Store::Mongo {
            uri,
            database: mongo::unique_database(),
        }
    } else {
        Store::Sqlite(data.path().join("chosen.db"))
    };
    let mut env = vec![
        // Settings only one binary knows reach every process; the others skip them.
        ("APP__HEALTH__INTERVAL_MS", "300".to_owned()),
    ];
    match &store {
        Store::Sqlite(path) => {
            env.push(("APP__STORE__URI", format!("sqlite://{}", path.display())))
        }
        Store::Mongo { uri, database } => {
            env.push(("APP__STORE__URI", uri.clone()));
            env.push(("APP__STORE__DATABASE", database.clone()));
        }
    }
    let mut stack = Stack::start(data.path(), &env);
    stack.wait_until_serving();
    // The first start made a development key and printed it with the address.
    let key = stack.key();
    assert!(
        stack.output().contains(&key),
        "the key is not in the banner"
    );
    let anonymous = reqwest::Client::new();
    let refused = anonymous.get(stack.url("/orders")).fetch().await;
    assert_eq!(refused.status(), 401);
    assert!(refused.headers().contains_key("www-authenticate"));
    // The replicas' metrics are not served through the lb's public port.
    let metrics = anonymous.get(stack.url("/metrics")).fetch().await;
    assert_eq!(metrics.status(), 404);
    let client = stack.client();
    let created = client
        .post(stack.url("/orders"))
        .json(&json!({
            "product": "Laptop", "quantity": 1,
            "customer_name": "John Doe", "customer_address": "123 Main St"
        }))
        .fetch()
        .await;
    assert_eq!(created.status(), 201);
    let id = created.json::<Value>().await.unwrap()["order"]["_id"]
        .as_str()
        .unwrap()
        .to_owned();
    for _ in 0..10 {
        let read = client
            .get(stack.url(&format!("/orders/{id}")))
            .fetch()
            .await;
        assert_eq!(read.status(), 200);
    }
    match &store {
        Store::Sqlite(path) => assert!(path.exists(), "the replicas use the store URI given"),
        Store::Mongo { uri, database } => {
            let found = mongodb::Client::with_uri_str(uri)
                .await
                .unwrap()
                .database(database)
                .collection::<bson::Document>("orders")
                .count_documents(bson::doc! {})
                .await
                .unwrap();
            assert_eq!(found, 1, "the order is in the MongoDB database given");
        }
    }
    upload_is_resized_by_the_workers(&client, &stack).await;

    stack.stop_cleanly();
    let log = std::fs::read_to_string(&stack.log).unwrap();
    for name in ["api-1", "api-2", "worker-1", "worker-2", "lb"] {
        assert!(
            log.contains(&format!("stopped: {name} (exit status 0)")),
            "{name} did not stop cleanly:\n{log}"
        );
    }
    assert!(
        log.lines().any(|l| l.starts_with("lb | ")
            && l.contains("ignored")
            && l.contains("APP__STORE__URI")),
        "lb names the api setting it skips:\n{log}"
    );
    // Requests are in the access log file, not in the output supervisord forwards.
    let access = std::fs::read_to_string(data.path().join("access.log")).unwrap();
    let reads = format!(" GET /orders/{id} 200 ");
    assert_eq!(access.matches(&reads).count(), 10, "{access}");
    assert!(!log.contains(&format!("/orders/{id}")), "{log}");
    // A second start on the same data keeps the key, which still works.
    let again = Stack::start(data.path(), &env);
    again.wait_until_serving();
    assert_eq!(again.key(), key);
    let read = again
        .client()
        .get(again.url(&format!("/orders/{id}")))
        .fetch()
        .await;
    assert_eq!(read.status(), 200);
    drop(again);
    if let Store::Mongo { uri, database } = &store {
        mongo::drop_database(uri, database).await;
    }
}

/// The storage of a deployment on several machines, as `docs/deployment.md` sets it: orders on
/// MongoDB, jobs on Redis over TLS (a CA of the test's own), files in an S3 bucket (Garage).
/// Nothing is kept in the stack's data folder.
#[tokio::test]
async fn the_main_command_runs_on_storage_for_several_machines() {
    let (Some(uri), Some(bucket)) = (mongo::uri(), S3Bucket::from_env()) else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let ca = TestCa::new("managed Redis CA");
    let Some(redis) = RedisServer::start_tls(&data.path().join("redis"), &ca) else {
        return;
    };
    let database = mongo::unique_database();
    let env = vec![
        ("APP__HEALTH__INTERVAL_MS", "300".to_owned()),
        ("APP__STORE__URI", uri.clone()),
        ("APP__STORE__DATABASE", database.clone()),
        ("APP__QUEUE__URL", redis.url()),
        (
            "APP__QUEUE__TLS_CA_FILE",
            ca.write(&data.path().join("redis-ca.crt"))
                .display()
                .to_string(),
        ),
        ("APP__IMAGES__BLOB_URL", bucket.unique_url()),
        ("AWS_ACCESS_KEY_ID", bucket.key_id.clone()),
        ("AWS_SECRET_ACCESS_KEY", bucket.secret.clone()),
    ];
    let mut stack = Stack::start(data.path(), &env);
    stack.wait_until_serving();
    let client = stack.client();
    upload_is_resized_by_the_workers(&client, &stack).await;
    stack.stop_cleanly();
    let log = std::fs::read_to_string(&stack.log).unwrap();
    assert!(!log.contains(&bucket.secret), "the secret is in the log");
    assert!(
        !data.path().join("blobs").exists() && !data.path().join("queue.db").exists(),
        "files or jobs were kept locally"
    );
    mongo::drop_database(&uri, &database).await;
}

/// A rolling restart of every api replica (`infra/rolling-restart`: drain through lb's admin
/// API, restart through the supervisor, wait for readiness, enable) under a steady load of GETs
/// and POSTs without `Idempotency-Key` (which lb may not retry): every request answered 2xx.
#[tokio::test]
async fn a_rolling_restart_under_load_fails_no_request() {
    let data = tempfile::tempdir().unwrap();
    let env = vec![
        ("APP__HEALTH__INTERVAL_MS", "300".to_owned()),
        (
            "APP__STORE__URI",
            format!("sqlite://{}", data.path().join("orders.db").display()),
        ),
    ];
    let stack = Stack::start(data.path(), &env);
    stack.wait_until_serving();
    let client = stack.client();
    let order = json!({
        "product": "Laptop", "quantity": 1,
        "customer_name": "John Doe", "customer_address": "123 Main St"
    });
    let created: Value = client
        .post(stack.url("/orders"))
        .json(&order)
        .fetch_json()
        .await;
    let read_url = stack.url(&format!(
        "/orders/{}",
        created["order"]["_id"].as_str().unwrap()
    ));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load: Vec<_> = (0..4)
        .map(|worker| {
            let (client, stop) = (client.clone(), stop.clone());
            let (read_url, write_url, order) =
                (read_url.clone(), stack.url("/orders"), order.clone());
            tokio::spawn(async move {
                let (mut answered, mut failed) = (0u32, Vec::new());
                // Bounded: stops when told, or after 2,000 requests each.
                while !stop.load(std::sync::atomic::Ordering::Relaxed) && answered < 2000 {
                    let request = if worker % 2 == 0 {
                        client.get(&read_url)
                    } else {
                        client.post(&write_url).json(&order)
                    };
                    match request.send().await {
                        Ok(response) if response.status().is_success() => {}
                        Ok(response) => failed.push(response.status().to_string()),
                        Err(error) => failed.push(error.to_string()),
                    }
                    answered += 1;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                (answered, failed)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = [stack.pid_of("api-1"), stack.pid_of("api-2")];
    let restart = tokio::task::spawn_blocking({
        let data = data.path().to_owned();
        let (base, admin) = (stack.replicas[0], stack.admin);
        move || rolling_restart(&data, base, admin)
    });
    let output = restart.await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut answered, mut failed) = (0, Vec::new());
    for task in load {
        let (count, failures) = task.await.unwrap();
        answered += count;
        failed.extend(failures);
    }
    let after = [stack.pid_of("api-1"), stack.pid_of("api-2")];
    assert!(
        before
            .iter()
            .zip(&after)
            .all(|(b, a)| b.is_some() && a.is_some() && b != a),
        "every replica was restarted: {before:?} then {after:?}\n{output}"
    );
    eprintln!(
        "rolling restart: {answered} requests during it, {} failed",
        failed.len()
    );
    assert!(answered > 100, "only {answered} requests were sent");
    assert!(
        failed.is_empty(),
        "{} of {answered} requests failed: {:?}\n{output}",
        failed.len(),
        &failed[..failed.len().min(10)]
    );
}

/// `infra/rolling-restart` against the stack with its data in `data` (2 replicas from port
/// `base`, lb's admin API on `admin`), bounded to 2 minutes; its output.
fn rolling_restart(data: &std::path::Path, base: u16, admin: u16) -> String {
    let output = std::process::Command::new("timeout")
        .args(["120", "bash"])
        .arg(harness::root().join("infra/rolling-restart"))
        .current_dir(harness::root())
        .env("STACK_DATA_DIR", data)
        .env("API_REPLICAS", "2")
        .env("API_BASE_PORT", base.to_string())
        .env("LB_ADMIN_LISTEN", format!("127.0.0.1:{admin}"))
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "the rolling restart failed:\n{text}"
    );
    text
}

/// An upload through `lb` is stored by a replica and resized by one of the stack's workers.
async fn upload_is_resized_by_the_workers(client: &reqwest::Client, stack: &Stack) {
    let accepted = client
        .post(stack.url("/images"))
        .multipart(pictures::form(&pictures::jpeg(640, 480), "a.jpg"))
        .fetch()
        .await;
    assert_eq!(accepted.status(), 202);
    let status_url: String = accepted.json::<Value>().await.unwrap()["status_url"]
        .as_str()
        .unwrap()
        .to_owned();
    // Bounded; generous for workers still starting on a loaded 2-core machine (debug builds).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status: Value = client.get(stack.url(&status_url)).fetch_json().await;
        if status["status"] == "done" {
            assert_eq!(status["thumbnail"]["width"], 300);
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no worker made the thumbnail: {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One process dying does not stop the stack: a worker and an api replica killed with SIGKILL
/// (as the OOM killer would) are started again by the supervisor, and the lb answers every
/// request meanwhile.
#[tokio::test]
async fn killed_processes_come_back_and_the_lb_answers_throughout() {
    let data = tempfile::tempdir().unwrap();
    let env = [("APP__HEALTH__INTERVAL_MS", "300".to_owned())];
    let mut stack = Stack::start(data.path(), &env);
    stack.wait_until_serving();
    let url = stack.url("/orders");
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let client = stack.client();
    let traffic = tokio::spawn(async move {
        let (mut sent, mut failed) = (0, Vec::new());
        while !*stopped.borrow() && sent < 5000 {
            match client.get(&url).send().await {
                Ok(response) if response.status() == 200 => {}
                Ok(response) => failed.push(response.status().to_string()),
                Err(error) => failed.push(error.to_string()),
            }
            sent += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        (sent, failed)
    });
    for name in ["worker-1", "api-1"] {
        let pid = stack.pid_of(name).expect("the process runs");
        let killed = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match stack.pid_of(name) {
                Some(new) if new != pid => break,
                _ => {
                    assert!(
                        Instant::now() < deadline,
                        "{name} was not started again:\n{}",
                        stack.output()
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
    stack.wait_until_serving();
    stop.send(true).unwrap();
    let (sent, failed) = traffic.await.unwrap();
    assert!(sent > 20, "only {sent} requests sent");
    assert!(
        failed.is_empty(),
        "{} of {sent} failed: {failed:?}",
        failed.len()
    );
    stack.stop_cleanly();
}
