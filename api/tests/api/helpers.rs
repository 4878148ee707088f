use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use api::config::Settings;
use api::startup::Application;
use reqwest::{Client, Response};
use serde_json::{Value, json};
use tempfile::TempDir;

/// The body the reference clients send.
pub fn reference_order() -> Value {
    json!({
        "product": "Laptop",
        "quantity": 1,
        "customer_name": "John Doe",
        "customer_address": "123 Main St"
    })
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub client: Client,
    pub dir: TempDir,
}

/// Starts the app in this test's runtime on port 0 with a fresh SQLite file.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(customise: impl FnOnce(&mut Settings)) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::default();
    settings.server.listen = "127.0.0.1:0".parse().unwrap();
    settings.store.uri = format!("sqlite://{}", dir.path().join("orders.db").display());
    settings.images.blob_dir = dir.path().join("blobs");
    if std::env::var("ORDERS_TEST_BACKEND").is_ok_and(|b| b == "mongodb") {
        let uri = crate::mongo_support::uri().expect("ORDERS_TEST_BACKEND=mongodb needs a URI");
        settings.store = crate::mongo_support::settings(&uri);
    }
    customise(&mut settings);
    // A store other than SQLite has no queue table: the app gets a SQLite queue file of its own.
    if settings.queue.url.is_empty() && !settings.store.uri.starts_with("sqlite://") {
        settings.queue.url = format!("sqlite://{}", dir.path().join("queue.db").display());
    }
    let app = Application::build(&settings).await.unwrap();
    let addr = app.local_addr();
    tokio::spawn(app.run_until(std::future::pending()));
    let app = TestApp {
        addr,
        client: client(),
        dir,
    };
    app.wait_until_ready(Duration::from_secs(20)).await;
    app
}

pub fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Polls `/readyz` until it answers 200 (MongoDB: once the indexes exist).
    pub async fn wait_until_ready(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(response) = self.client.get(self.url("/readyz")).send().await
                && response.status() == 200
            {
                return;
            }
            assert!(Instant::now() < deadline, "the app did not become ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn put_json(&self, path: &str, body: &Value) -> Response {
        self.client
            .put(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    pub async fn delete(&self, path: &str) -> Response {
        self.client.delete(self.url(path)).send().await.unwrap()
    }

    /// Creates an order and returns its stored form.
    pub async fn create(&self, body: &Value) -> Value {
        let response = self.post_json("/orders", body).await;
        assert_eq!(response.status(), 201);
        response.json::<Value>().await.unwrap()["order"].clone()
    }
}

/// Reads a response that must be a JSON error with the given status; returns its body.
pub async fn error_body(response: Response, status: u16) -> Value {
    assert_eq!(response.status(), status, "unexpected status");
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let body: Value = response.json().await.unwrap();
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "no message in {body}"
    );
    body
}

/// A real `api` process, killed when dropped. Its log goes to a file in its folder.
pub struct ApiProcess {
    pub child: Child,
    pub addr: SocketAddr,
    pub log: PathBuf,
}

impl ApiProcess {
    /// Starts the binary with `APP__…` variables, waiting (bounded) for its "listening" line.
    pub fn start(dir: &Path, name: &str, env: &[(&str, String)]) -> Self {
        let mut env = env.to_vec();
        env.insert(0, ("APP__SERVER__INSTANCE", name.to_owned()));
        Self::start_with_args(dir, &[], &env)
    }

    pub fn start_with_args(dir: &Path, args: &[&str], env: &[(&str, String)]) -> Self {
        let name = env
            .iter()
            .find(|(k, _)| *k == "APP__SERVER__INSTANCE")
            .map_or("api", |(_, v)| v.as_str());
        let log = dir.join(format!("{name}.log"));
        let mut command = Command::new(env!("CARGO_BIN_EXE_api"));
        command
            .env_clear()
            .env("APP__SERVER__LISTEN", "127.0.0.1:0")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .args(args)
            .current_dir(dir);
        let (child, addr) = start_logged(command, name, &log, listening_addr);
        Self { child, addr, log }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Waits (bounded) for the process to exit.
    pub fn wait_for_exit(&mut self) -> std::process::ExitStatus {
        crate::servers::wait_for_exit(&mut self.child, Duration::from_secs(15))
    }
}

impl Drop for ApiProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `command` with its stdout in `log` and waits (bounded) until `ready` finds what it
/// looks for in the log; fails with the log if the process exits first.
pub fn start_logged<T>(
    mut command: Command,
    name: &str,
    log: &Path,
    ready: impl Fn(&str) -> Option<T>,
) -> (Child, T) {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(log).unwrap())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(found) = ready(&text) {
            return (child, found);
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("{name} exited with {status} before starting:\n{text}");
        }
        assert!(Instant::now() < deadline, "{name} did not start:\n{text}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The address in the "listening" log line, text (`addr=…`) or JSON (`"addr":"…"`).
fn listening_addr(log: &str) -> Option<SocketAddr> {
    let line = log.lines().find(|l| l.contains("listening on http://"))?;
    let start = line.find("http://")? + "http://".len();
    let rest = &line[start..];
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '[' | ']')))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// Sends `request` as raw bytes on a new connection and reads the whole answer (bounded).
pub async fn raw_http(app: &TestApp, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    // The server may answer and close before reading everything: that is its right.
    let _ = stream.write_all(request).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .expect("the server answered in time");
    String::from_utf8_lossy(&answer).into_owned()
}
