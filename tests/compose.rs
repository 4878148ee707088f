//! The container image and the compose stack (`infra/docker/`, `infra/compose.yaml`): the files
//! pass their linters, and the stack runs for real on a Docker engine: healthy, orders and
//! images through lb, scaled by one value, a worker and an api container killed under work,
//! and its data kept across `down` and `up`.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use harness::compose::Compose;
use harness::pictures::{self, decode, form};
use harness::{Fetch, available, root};
use image::GenericImageView;
use serde_json::{Value, json};

/// A tool of `infra/setup test`'s, run from the repository; its output when it fails.
fn lint(program: &std::path::Path, args: &[&str]) -> Result<(), String> {
    let output = Command::new(program)
        .current_dir(root())
        .args(args)
        .output()
        .map_err(|e| format!("{}: {e}", program.display()))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{} {args:?}:\n{}{}",
            program.display(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

#[test]
fn the_container_files_pass_their_linters() {
    let venv = root().join("target/venv/docker/bin");
    let (hadolint, schema, promtool) = (
        venv.join("hadolint"),
        venv.join("check-jsonschema"),
        harness::tool("promtool"),
    );
    if !(available(hadolint.is_file(), "hadolint (target/venv/docker)")
        && available(schema.is_file(), "check-jsonschema (target/venv/docker)")
        && available(promtool.is_file(), "promtool (infra/setup test)"))
    {
        return;
    }
    let results = [
        lint(
            &hadolint,
            &[
                "infra/docker/Dockerfile",
                "infra/docker/local/mongodb.Dockerfile",
                "infra/docker/local/redis.Dockerfile",
                "infra/docker/local/prometheus.Dockerfile",
            ],
        ),
        lint(
            &schema,
            &[
                "--builtin-schema",
                "vendor.compose-spec",
                "infra/compose.yaml",
            ],
        ),
        lint(
            &promtool,
            &["check", "config", "infra/monitoring/prometheus.yml"],
        ),
        lint(
            &promtool,
            &["check", "rules", "infra/monitoring/alerts.yml"],
        ),
    ];
    let failures: Vec<_> = results.into_iter().filter_map(Result::err).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // The dashboard is JSON Grafana can load, and asks only for metrics the processes export.
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("infra/monitoring/grafana/dashboards/shop.json"))
            .unwrap(),
    )
    .unwrap();
    let known = [
        "lb_requests_total",
        "lb_retries_total",
        "lb_upstream_healthy",
        "lb_request_duration_seconds_bucket",
        "http_requests_total",
        "http_request_duration_seconds_bucket",
        "worker_jobs_total",
        "worker_job_duration_seconds_bucket",
        "worker_jobs_running",
    ];
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            assert!(
                known.iter().any(|metric| expr.contains(metric)),
                "{expr} names no metric of ours"
            );
        }
    }
}

const ORDER: &str = r#"{"product":"Laptop","quantity":1,"customer_name":"John Doe","customer_address":"123 Main St"}"#;

/// Polls an image until it is `done` or `failed` (bounded).
async fn settled(client: &reqwest::Client, stack: &Compose, id: &str, limit: Duration) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let status: Value = client
            .get(stack.url(&format!("/images/{id}")))
            .fetch_json()
            .await;
        if status["status"] == "done" || status["status"] == "failed" {
            return status;
        }
        assert!(Instant::now() < deadline, "image {id} still {status}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn upload(client: &reqwest::Client, stack: &Compose, bytes: &[u8]) -> String {
    let answer = client
        .post(stack.url("/images"))
        .multipart(form(bytes, "photo.jpg"))
        .fetch()
        .await;
    assert_eq!(answer.status(), 202);
    answer.json::<Value>().await.unwrap()["job_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The upstreams lb's access log names for requests to `path_prefix` (its text lines:
/// `time client method path status upstream …`).
fn upstreams_in_access_log(stack: &Compose, path_prefix: &str) -> BTreeSet<String> {
    let logs = stack.ok(&["logs", "--no-log-prefix", "lb"]);
    logs.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            (fields.len() > 5 && fields[3].starts_with(path_prefix) && fields[4] == "200")
                .then(|| fields[5].to_owned())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compose_stack_runs_scales_survives_kills_and_keeps_its_data() {
    let Some(mut stack) = Compose::new() else {
        return;
    };
    let built = Instant::now();
    stack.ok(&["build"]);
    let build_time = built.elapsed();
    let size = Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Size}}", &stack.image])
        .output()
        .unwrap();
    let size: u64 = String::from_utf8_lossy(&size.stdout)
        .trim()
        .parse()
        .unwrap();

    stack.ok(&["up", "--detach"]);
    let healthy_after = stack.wait_healthy(Duration::from_secs(180));
    eprintln!(
        "compose: image {:.1} MB built in {build_time:.1?}; up to all healthy in {healthy_after:.1?}",
        size as f64 / 1e6
    );
    assert_eq!(stack.count("api"), 3);
    assert_eq!(stack.count("worker"), 3);
    assert_eq!(stack.count("lb"), 1);
    assert_eq!(stack.count("mongodb"), 1);
    assert_eq!(stack.count("redis"), 1);
    // The processes run as the image's user, not root.
    let user = stack.ok(&["exec", "-T", "api", "id", "-u"]);
    assert_eq!(user.trim(), "10001");

    // A key, made as the README says (`docker compose exec api api keys create …`); without
    // one, lb passes on the api's 401, and /metrics stays inside.
    let made = stack.ok(&[
        "exec",
        "-T",
        "api",
        "api",
        "keys",
        "create",
        "--name",
        "compose-test",
        "--scope",
        "admin",
    ]);
    let key = made
        .lines()
        .map(str::trim)
        .find(|line| line.starts_with("shop_"))
        .unwrap_or_else(|| panic!("no key in:\n{made}"))
        .to_owned();
    let anonymous = reqwest::Client::new();
    assert_eq!(
        anonymous.get(stack.url("/orders")).fetch().await.status(),
        401
    );
    assert_eq!(
        anonymous.get(stack.url("/metrics")).fetch().await.status(),
        404
    );

    // Orders through lb: create, read, replace, delete.
    let client = harness::keyed_client(&key);
    let created = client
        .post(stack.url("/orders"))
        .header("content-type", "application/json")
        .body(ORDER)
        .fetch()
        .await;
    assert_eq!(created.status(), 201);
    let kept: Value = created.json().await.unwrap();
    let kept_id = kept["order"]["_id"].as_str().unwrap().to_owned();
    let other: Value = client
        .post(stack.url("/orders"))
        .json(&json!({"product": "Desk", "quantity": 2,
            "customer_name": "Ada", "customer_address": "1 Loop Rd"}))
        .fetch_json()
        .await;
    let other_url = stack.url(&format!(
        "/orders/{}",
        other["order"]["_id"].as_str().unwrap()
    ));
    let replaced = client
        .put(&other_url)
        .json(&json!({"product": "Desk", "quantity": 3,
            "customer_name": "Ada", "customer_address": "1 Loop Rd"}))
        .fetch()
        .await;
    assert_eq!(replaced.status(), 200);
    let read: Value = client.get(&other_url).fetch_json().await;
    assert_eq!(read["order"]["quantity"], 3, "{read}");
    assert_eq!(
        client.delete(&other_url).fetch().await.status().as_u16() / 100,
        2
    );
    assert_eq!(client.get(&other_url).fetch().await.status(), 404);

    // A picture through lb to a worker and back.
    let image_id = upload(&client, &stack, &pictures::jpeg(1200, 900)).await;
    let status = settled(&client, &stack, &image_id, Duration::from_secs(60)).await;
    assert_eq!(status["status"], "done", "{status}");
    let thumbnail = client
        .get(stack.url(&format!("/images/{image_id}/thumbnail")))
        .fetch()
        .await;
    assert_eq!(thumbnail.status(), 200);
    assert_eq!(
        decode(&thumbnail.bytes().await.unwrap()).dimensions(),
        (300, 225)
    );

    // Scaled by one value each: lb finds the new api replicas through the service's name.
    stack.vars = vec![
        ("API_REPLICAS".into(), "4".into()),
        ("WORKER_REPLICAS".into(), "5".into()),
    ];
    stack.ok(&["up", "--detach"]);
    stack.wait_healthy(Duration::from_secs(120));
    assert_eq!(stack.count("api"), 4);
    assert_eq!(stack.count("worker"), 5);
    let kept_url = stack.url(&format!("/orders/{kept_id}"));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        for _ in 0..40 {
            assert_eq!(client.get(&kept_url).fetch().await.status(), 200);
        }
        let upstreams = upstreams_in_access_log(&stack, "/orders/");
        if upstreams.len() >= 4 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "requests reached only {upstreams:?} of 4 replicas"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Prometheus (profile monitoring) finds lb and every api and worker replica by name, scrapes
    // them all, and has loaded the alert rules.
    stack.ok(&["--profile", "monitoring", "up", "--detach", "prometheus"]);
    let prometheus = format!("http://127.0.0.1:{}", stack.prometheus_port);
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let targets = match client
            .get(format!("{prometheus}/api/v1/targets"))
            .send()
            .await
        {
            Ok(answer) => answer.json::<Value>().await.unwrap_or_default(),
            Err(_) => Value::Null,
        };
        let up: Vec<(String, String)> = targets["data"]["activeTargets"]
            .as_array()
            .map(|targets| {
                targets
                    .iter()
                    .map(|t| {
                        let job = t["labels"]["job"].as_str().unwrap_or_default().to_owned();
                        (job, t["health"].as_str().unwrap_or_default().to_owned())
                    })
                    .collect()
            })
            .unwrap_or_default();
        let count = |job: &str| up.iter().filter(|(j, h)| j == job && h == "up").count();
        if (count("lb"), count("api"), count("worker")) == (1, 4, 5) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus's targets: {up:?}\n{}",
            stack.ok(&["logs", "--tail", "20", "prometheus"])
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let rules: Value = client
        .get(format!("{prometheus}/api/v1/rules"))
        .fetch_json()
        .await;
    let loaded = rules["data"]["groups"][0]["rules"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(loaded, 7, "{rules}");

    // A worker killed in the middle of 50 jobs: all 50 end done.
    let picture = pictures::jpeg(2400, 1800);
    let mut jobs = Vec::new();
    for _ in 0..50 {
        jobs.push(upload(&client, &stack, &picture).await);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stack.kill_one("worker");
    for id in &jobs {
        let status = settled(&client, &stack, id, Duration::from_secs(180)).await;
        assert_eq!(status["status"], "done", "{status}");
    }

    // An api container killed under load through lb: no request fails. POSTs carry an
    // Idempotency-Key, so lb may retry them on another replica.
    let load: Vec<_> = (0..4)
        .map(|n| {
            let (client, kept_url, orders) =
                (client.clone(), kept_url.clone(), stack.url("/orders"));
            tokio::spawn(async move {
                let (mut sent, mut failed) = (0u32, Vec::new());
                let started = Instant::now();
                // Bounded: 6 seconds, at most 3,000 requests each.
                while started.elapsed() < Duration::from_secs(6) && sent < 3000 {
                    let request = if n == 0 {
                        client
                            .post(&orders)
                            .header("content-type", "application/json")
                            .header("idempotency-key", uuid::Uuid::new_v4().to_string())
                            .body(ORDER)
                    } else {
                        client.get(&kept_url)
                    };
                    match request.send().await {
                        Ok(answer) if answer.status().is_success() => {}
                        Ok(answer) => failed.push(answer.status().to_string()),
                        Err(error) => failed.push(error.to_string()),
                    }
                    sent += 1;
                }
                (sent, failed)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    stack.kill_one("api");
    let (mut sent, mut failed) = (0, Vec::new());
    for client in load {
        let (count, failures) = client.await.unwrap();
        sent += count;
        failed.extend(failures);
    }
    eprintln!(
        "compose: api container killed under load: {sent} requests, {} failed",
        failed.len()
    );
    assert!(sent > 100, "only {sent} requests");
    assert!(
        failed.is_empty(),
        "{} failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );

    // Down and up again without -v: the orders and the pictures are still there.
    stack.ok(&["--profile", "monitoring", "down", "--timeout", "15"]);
    stack.ok(&["up", "--detach"]);
    stack.wait_healthy(Duration::from_secs(180));
    let read: Value = client.get(&kept_url).fetch_json().await;
    assert_eq!(read["order"]["_id"], kept_id.as_str(), "{read}");
    let status: Value = client
        .get(stack.url(&format!("/images/{image_id}")))
        .fetch_json()
        .await;
    assert_eq!(status["status"], "done", "{status}");
    let thumbnail = client
        .get(stack.url(&format!("/images/{image_id}/thumbnail")))
        .fetch()
        .await;
    assert_eq!(thumbnail.status(), 200);
}
