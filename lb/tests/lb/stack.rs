//! The README's main command (`infra/run`) on test ports: the stack comes up behind `lb`,
//! serves orders, and SIGTERM stops every process.

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::free_port;

#[tokio::test]
async fn the_main_command_starts_the_balanced_stack_and_stops_it_cleanly() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let bin = Path::new(env!("CARGO_BIN_EXE_lb")).parent().unwrap();
    let data = tempfile::tempdir().unwrap();
    let (base, lb_port, admin) = (two_free_ports(), free_port(), free_port());
    let replicas = [base, base + 1];
    let stack = Command::new("bash")
        .arg(root.join("infra/run"))
        .current_dir(root)
        .env("STACK_BIN_DIR", bin)
        .env("STACK_DATA_DIR", data.path())
        .env("API_REPLICAS", "2")
        .env("WORKERS", "2")
        .env("API_BASE_PORT", base.to_string())
        .env("LB_LISTEN", format!("127.0.0.1:{lb_port}"))
        .env("LB_ADMIN_LISTEN", format!("127.0.0.1:{admin}"))
        // Settings only one binary knows must reach that one alone.
        .env(
            "APP__STORE__URI",
            format!("sqlite://{}", data.path().join("chosen.db").display()),
        )
        .env("APP__HEALTH__INTERVAL_MS", "300")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(data.path().join("stack.log")).unwrap())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut stack = Stack(Some(stack));
    for port in [lb_port, admin, replicas[0], replicas[1]] {
        stack.wait_for_port(port, &data.path().join("stack.log"));
    }
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

    assert!(stack.stop(), "the stack did not stop within 20 s");
    for port in [lb_port, admin, replicas[0], replicas[1]] {
        assert!(
            TcpStream::connect(("127.0.0.1", port)).is_err(),
            "something still listens on {port}"
        );
    }
    let log = std::fs::read_to_string(data.path().join("stack.log")).unwrap();
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
        .write_to(&mut std::io::Cursor::new(&mut jpeg), image::ImageFormat::Jpeg)
        .unwrap();
    let form = reqwest::multipart::Form::new()
        .part("file", reqwest::multipart::Part::bytes(jpeg).file_name("a.jpg"));
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
        assert!(Instant::now() < deadline, "no worker made the thumbnail: {status}");
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

/// The running stack; stopped with SIGTERM (as Ctrl-C would) when dropped.
struct Stack(Option<Child>);

impl Stack {
    /// Waits (bounded) for `port`; fails at once, with the stack's log, if the stack exits.
    fn wait_for_port(&mut self, port: u16, log: &Path) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            let exited = self.0.as_mut().map(|c| c.try_wait().unwrap().is_some());
            let log = || std::fs::read_to_string(log).unwrap_or_default();
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
        let Some(mut child) = self.0.take() else {
            return true;
        };
        let pid = child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        true
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.stop();
    }
}
