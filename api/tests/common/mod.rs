#![allow(dead_code)] // each test binary uses part of it
//! What the api's test binaries share: the app started in-process on port 0 (on a fresh SQLite
//! file, or a fresh MongoDB database when `ORDERS_TEST_BACKEND=mongodb`) with keys required, a
//! client that sends an `admin` key made in its store, the reference clients' order, and checks
//! of error answers.

use harness::Fetch;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use api::auth::{KeyName, Scope, Scopes, manage};
use api::config::{Settings, StoreSettings};
use api::startup::Application;
use api::store::Stores;
use reqwest::{Client, Method, RequestBuilder, Response};
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
    /// Where `server.metrics_listen` is bound, when it is set.
    pub metrics_addr: Option<SocketAddr>,
    /// Sends `key` with every request.
    pub client: Client,
    /// An `admin` key (whatever `auth.required` says); empty for an app not waited for (its
    /// store may never answer).
    pub key: String,
    /// The app's store, opened again: for keys and for what a test checks behind the API.
    pub stores: Stores,
    pub dir: TempDir,
}

/// Store settings on `uri` and a fresh database, with short timeouts.
pub fn mongo_store(uri: &str) -> StoreSettings {
    let mut settings = Settings::default().store;
    settings.uri = uri.to_owned();
    settings.database = harness::mongo::unique_database();
    settings.server_selection_timeout_ms = 1500;
    settings.connect_timeout_ms = 1000;
    settings
}

/// Starts the app in this test's runtime on port 0, on the backend the test run selects.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(customise: impl FnOnce(&mut Settings)) -> TestApp {
    spawn(harness::mongo::selected(), customise).await
}

/// On a SQLite file whatever the run selects: for what only SQLite does.
pub async fn spawn_sqlite_app_with(customise: impl FnOnce(&mut Settings)) -> TestApp {
    spawn(false, customise).await
}

async fn spawn(on_mongo: bool, customise: impl FnOnce(&mut Settings)) -> TestApp {
    let mut app = spawn_unchecked(on_mongo, customise).await;
    app.wait_until_ready(Duration::from_secs(20)).await;
    app.key = make_key(&app.stores, &[Scope::Admin]).await;
    app.client = client_with_key(&app.key);
    app
}

/// On a SQLite file (unless `customise` says otherwise), without waiting until it is ready.
pub async fn spawn_app_unchecked(customise: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_unchecked(false, customise).await
}

async fn spawn_unchecked(on_mongo: bool, customise: impl FnOnce(&mut Settings)) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::default();
    settings.server.listen = "127.0.0.1:0".parse().unwrap();
    settings.store.uri = format!("sqlite://{}", dir.path().join("orders.db").display());
    settings.images.blob_url = dir.path().join("blobs").display().to_string();
    if on_mongo {
        let uri = harness::mongo::uri().expect("ORDERS_TEST_BACKEND=mongodb needs a URI");
        settings.store = mongo_store(&uri);
    }
    customise(&mut settings);
    // A store other than SQLite has no queue table: the app gets a SQLite queue file of its own.
    if settings.queue.url.is_empty() && !settings.store.uri.starts_with("sqlite://") {
        settings.queue.url = format!("sqlite://{}", dir.path().join("queue.db").display());
    }
    let app = Application::build(&settings).await.unwrap();
    let addr = app.local_addr();
    let metrics_addr = app.metrics_addr();
    tokio::spawn(app.run_until(std::future::pending()));
    let stores = api::store::open(&settings.store).await.unwrap();
    TestApp {
        addr,
        metrics_addr,
        client: client(),
        key: String::new(),
        stores,
        dir,
    }
}

/// A new key with `scopes` in `stores`.
pub async fn make_key(stores: &Stores, scopes: &[Scope]) -> String {
    let name = KeyName::parse("test").unwrap();
    let scopes = Scopes::of(scopes.iter().copied());
    let (key, _) = manage::create(&*stores.api_keys, name, scopes, None, chrono::Utc::now())
        .await
        .unwrap();
    key.reveal().to_owned()
}

/// A client that sends no key.
pub fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// A client that sends `key` with every request.
pub fn client_with_key(key: &str) -> Client {
    harness::keyed_client(key)
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

    /// A request to `path` on this app, to be completed and sent by the test.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, self.url(path))
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.request(Method::POST, path).json(body).fetch().await
    }

    pub async fn put_json(&self, path: &str, body: &Value) -> Response {
        self.request(Method::PUT, path).json(body).fetch().await
    }

    pub async fn get(&self, path: &str) -> Response {
        self.request(Method::GET, path).fetch().await
    }

    /// A GET whose answer is read as JSON, whatever its status.
    pub async fn get_json(&self, path: &str) -> Value {
        self.request(Method::GET, path).fetch_json().await
    }

    pub async fn delete(&self, path: &str) -> Response {
        self.request(Method::DELETE, path).fetch().await
    }

    /// Creates an order and returns its stored form.
    pub async fn create(&self, body: &Value) -> Value {
        let response = self.post_json("/orders", body).await;
        assert_eq!(response.status(), 201);
        response.json::<Value>().await.unwrap()["order"].clone()
    }
}

/// Sends `request`, whose answer must be a JSON error with the given status; returns its body.
pub async fn error_for(request: RequestBuilder, status: u16) -> Value {
    error_body(request.fetch().await, status).await
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

/// Sends `request` as raw bytes on a new connection, with the app's key added after the request
/// line, and reads the whole answer (bounded).
pub async fn raw_http(app: &TestApp, request: &[u8]) -> String {
    let line_end = request
        .windows(2)
        .position(|w| w == b"\r\n")
        .expect("a request line")
        + 2;
    let mut keyed = request[..line_end].to_vec();
    keyed.extend(format!("Authorization: Bearer {}\r\n", app.key).into_bytes());
    keyed.extend(&request[line_end..]);
    raw_http_unkeyed(app, &keyed).await
}

/// As [`raw_http`], with the request exactly as given.
pub async fn raw_http_unkeyed(app: &TestApp, request: &[u8]) -> String {
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
