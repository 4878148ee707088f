//! The README's main command (`infra/run`) on test ports: the stack comes up behind `lb`,
//! serves orders, and SIGTERM stops every process.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::free_port;

#[tokio::test]
async fn the_main_command_starts_the_balanced_stack_and_stops_it_cleanly() {
    let data = tempfile::tempdir().unwrap();
    let mut stack = Stack::start(
        data.path(),
        &[
            // Settings only one binary knows must reach that one alone.
            (
                "APP__STORE__URI",
                format!("sqlite://{}", data.path().join("chosen.db").display()),
            ),
            ("APP__HEALTH__INTERVAL_MS", "300".into()),
        ],
    );
    let (lb_port, admin, replicas) = (stack.lb, stack.admin, stack.replicas);
    let client = reqwest::Client::new();
    // The first health checks may run before the replicas listen: wait until both are ready.
    let deadline = Instant::now() + Duration::from_secs(15);
    let ready = format!("upstream=\"127.0.0.1:{}\"", replicas[1]);
    loop {
        let metrics = crate::harness::get_text(([127, 0, 0, 1], admin).into(), "/metrics");
        let healthy = metrics
            .lines()
            .filter(|l| l.starts_with("lb_upstream_healthy{") && l.ends_with(" 1"))
            .count();
        if healthy == 2 && metrics.contains(&ready) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the replicas never became ready:\n{metrics}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let created = client
        .post(format!("http://127.0.0.1:{lb_port}/orders"))
        .json(&serde_json::json!({
            "product": "Laptop", "quantity": 1,
            "customer_name": "John Doe", "customer_address": "123 Main St"
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    for _ in 0..10 {
        let listed = client
            .get(format!("http://127.0.0.1:{lb_port}/orders"))
            .send()
            .await
            .unwrap();
        assert_eq!(listed.status(), 200);
    }
    assert!(
        data.path().join("chosen.db").exists(),
        "the replicas use the store URI from the environment"
    );
    upload_is_resized_by_the_workers(&client, lb_port).await;

    stack.stop_cleanly();
    let log = std::fs::read_to_string(&stack.log).unwrap();
    for name in ["api-1", "api-2", "worker-1", "worker-2", "lb"] {
        assert!(
            log.contains(&format!("{name}.1 stopped")),
            "{name} did not stop:\n{log}"
        );
    }
}

/// An upload through `lb` is stored by a replica and resized by one of the stack's workers.
async fn upload_is_resized_by_the_workers(client: &reqwest::Client, lb_port: u16) {
    let mut jpeg = Vec::new();
    image::DynamicImage::ImageRgb8(image::RgbImage::new(640, 480))
        .write_to(
            &mut std::io::Cursor::new(&mut jpeg),
            image::ImageFormat::Jpeg,
        )
        .unwrap();
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(jpeg).file_name("a.jpg"),
    );
    let accepted = client
        .post(format!("http://127.0.0.1:{lb_port}/images"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), 202);
    let status_url: String = accepted.json::<serde_json::Value>().await.unwrap()["status_url"]
        .as_str()
        .unwrap()
        .to_owned();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status: serde_json::Value = client
            .get(format!("http://127.0.0.1:{lb_port}{status_url}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
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

/// A free port whose next port is free too: the stack numbers its replicas from a base port.
fn two_free_ports() -> u16 {
    loop {
        let base = free_port();
        if base < u16::MAX && std::net::TcpListener::bind(("127.0.0.1", base + 1)).is_ok() {
            return base;
        }
    }
}

/// `infra/run` with the test build on free ports (2 api replicas, 2 workers) in `data`;
/// stopped with SIGTERM (as Ctrl-C would) when dropped.
struct Stack {
    child: Option<Child>,
    log: PathBuf,
    lb: u16,
    admin: u16,
    replicas: [u16; 2],
}

impl Stack {
    /// Starts the stack with `env` added and waits (bounded) until all its ports listen.
    fn start(data: &Path, env: &[(&str, String)]) -> Self {
        let bin = Path::new(env!("CARGO_BIN_EXE_lb")).parent().unwrap();
        let (base, lb, admin) = (two_free_ports(), free_port(), free_port());
        let log = data.join("stack.log");
        let child = Command::new("bash")
            .arg(root().join("infra/run"))
            .current_dir(root())
            .env("STACK_BIN_DIR", bin)
            .env("STACK_DATA_DIR", data)
            .env("API_REPLICAS", "2")
            .env("WORKERS", "2")
            .env("API_BASE_PORT", base.to_string())
            .env("LB_LISTEN", format!("127.0.0.1:{lb}"))
            .env("LB_ADMIN_LISTEN", format!("127.0.0.1:{admin}"))
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut stack = Self {
            child: Some(child),
            log,
            lb,
            admin,
            replicas: [base, base + 1],
        };
        for port in stack.ports() {
            stack.wait_for_port(port);
        }
        stack
    }

    fn ports(&self) -> [u16; 4] {
        [self.lb, self.admin, self.replicas[0], self.replicas[1]]
    }

    /// Waits (bounded) for `port`; fails at once, with the stack's log, if the stack exits.
    fn wait_for_port(&mut self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            let exited = self.child.as_mut().map(|c| c.try_wait().unwrap().is_some());
            let log = || std::fs::read_to_string(&self.log).unwrap_or_default();
            assert!(exited != Some(true), "the stack exited early:\n{}", log());
            assert!(
                Instant::now() < deadline,
                "nothing listens on {port}:\n{}",
                log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, then waits (bounded); `false` if it had to be killed.
    fn stop(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        let pid = child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        if wait_bounded(&mut child, Duration::from_secs(20)).is_some() {
            return true;
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    /// Stops the stack and checks that none of its ports still listens.
    fn stop_cleanly(&mut self) {
        assert!(self.stop(), "the stack did not stop within 20 s");
        for port in self.ports() {
            assert!(
                TcpStream::connect(("127.0.0.1", port)).is_err(),
                "something still listens on {port}"
            );
        }
    }
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

/// Waits up to `limit` for `child` to exit.
fn wait_bounded(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The load-test smoke run: the stack from the main command (2 replicas, 2 workers), the seed
/// loaded, a short headless Locust run of each user class with 0 failures, then a clean stop
/// that leaves no process behind.
#[tokio::test]
async fn a_short_locust_run_of_each_user_class_has_no_failures() {
    let root = root();
    let locust = root.join("target/venv/locust/bin/locust");
    if !locust.is_file() {
        assert!(
            !std::env::var("CI").is_ok_and(|ci| ci == "true"),
            "Locust is not installed: CI must run the load-test smoke test (infra/setup test)"
        );
        eprintln!("skipping: run infra/setup test to install Locust");
        return;
    }
    let bin = Path::new(env!("CARGO_BIN_EXE_lb")).parent().unwrap();
    let data = tempfile::tempdir().unwrap();
    let mut stack = Stack::start(data.path(), &[("APP__LOG__LEVEL", "warn".into())]);
    let lb_port = stack.lb;
    let host = format!("http://127.0.0.1:{lb_port}");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    while client
        .get(format!("{host}/readyz"))
        .send()
        .await
        .map_or(true, |r| r.status() != 200)
    {
        assert!(Instant::now() < deadline, "the stack never became ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let seeded = Command::new(bin.join("seed"))
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
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["orders"].as_array().unwrap().len(), 1000);

    for class in ["ReferenceUser", "CrudUser", "ImageUser"] {
        let prefix = data.path().join(class);
        let mut run = Command::new(&locust)
            .current_dir(root)
            .env("SEED_COUNT", "1000")
            .args(["-f", "locustfile.py", "--headless", "--only-summary"])
            .args(["-u", "20", "-r", "10", "-t", "12s", "--stop-timeout", "5"])
            .args(["-H", &host, "--csv"])
            .arg(&prefix)
            .arg(class)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(data.path().join(format!("{class}.log"))).unwrap())
            .spawn()
            .unwrap();
        let Some(status) = wait_bounded(&mut run, Duration::from_secs(60)) else {
            let _ = run.kill();
            panic!("Locust {class} did not finish in 60 s");
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
