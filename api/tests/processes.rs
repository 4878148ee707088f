//! The real `api` binary: configuration layers and errors, settings meant for other binaries,
//! replicas sharing one SQLite file, structured logs, graceful shutdown, and MongoDB without a
//! job queue.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::{Value, json};

use harness::{Api, Fetch, pictures};

use crate::common::{client, error_body, reference_order};

fn sqlite_uri(dir: &std::path::Path) -> String {
    format!("sqlite://{}", dir.join("shared/orders.db").display())
}

/// The api refusing to start (listening on port 0 should it start after all).
fn refused_start(args: &[&str], env: &[(&str, &str)]) -> String {
    let mut all = vec![("APP__SERVER__LISTEN", "127.0.0.1:0")];
    all.extend_from_slice(env);
    harness::refused_start("api", args, &all)
}

#[test]
fn a_bad_value_stops_start_up_with_one_line_naming_the_key() {
    let stderr = refused_start(&[], &[("APP__SERVER__BODY_LIMIT", "lots")]);
    assert!(stderr.contains("server.body_limit"), "{stderr}");
    let stderr = refused_start(&[], &[("APP__STORE__URI", "postgres://u:hunter2@db/x")]);
    assert!(stderr.contains("store.uri"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
    let stderr = refused_start(&[], &[("APP__LOG__FORMAT", "xml")]);
    assert!(
        stderr.contains("log.format") || stderr.contains("xml"),
        "{stderr}"
    );
    let stderr = refused_start(&[], &[("APP__SERVER__LISTEN", "localhost")]);
    assert!(stderr.contains("server.listen"), "{stderr}");
}

#[test]
fn a_typo_in_the_config_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("api.toml");
    std::fs::write(
        &file,
        "[server]\nlisten = \"127.0.0.1:0\"\nbody_limt = 10\n",
    )
    .unwrap();
    let stderr = refused_start(&["--config", file.to_str().unwrap()], &[]);
    assert!(stderr.contains("body_limt"), "{stderr}");
    let stderr = refused_start(&["--config", "/nonexistent/api.toml"], &[]);
    assert!(stderr.contains("api.toml"), "{stderr}");
}

#[tokio::test]
async fn the_file_overrides_defaults_and_the_environment_overrides_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("api.toml");
    std::fs::write(
        &file,
        "[server]\ninstance = \"from-file\"\nbody_limit = 100\n[log]\nformat = \"json\"\n",
    )
    .unwrap();
    let process = Api::start_with_args(
        dir.path(),
        "from-file",
        &["--config", file.to_str().unwrap()],
        &[
            ("APP__SERVER__INSTANCE", "from-env".into()),
            ("APP__STORE__URI", sqlite_uri(dir.path())),
        ],
    );
    let body: Value = client().get(process.url("/healthz")).fetch_json().await;
    assert_eq!(body["instance"], "from-env");
    let mut big = reference_order();
    big["customer_address"] = json!("x".repeat(200));
    let response = client()
        .post(process.url("/orders"))
        .json(&big)
        .fetch()
        .await;
    assert_eq!(response.status(), 413, "body_limit from the file");
}

#[tokio::test]
async fn two_replicas_on_one_sqlite_file_see_each_others_writes() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("APP__STORE__URI", sqlite_uri(dir.path()))];
    let one = Api::start(dir.path(), "api-1", &env);
    let two = Api::start(dir.path(), "api-2", &env);
    let http = client();
    let created: Value = http
        .post(one.url("/orders"))
        .json(&reference_order())
        .fetch_json()
        .await;
    let id = created["order"]["_id"].as_str().unwrap();
    let read: Value = http
        .get(two.url(&format!("/orders/{id}")))
        .fetch_json()
        .await;
    assert_eq!(read["order"], created["order"]);
    let updated = http
        .put(two.url(&format!("/orders/{id}")))
        .json(&json!({"quantity": 9}))
        .fetch()
        .await;
    assert_eq!(updated.status(), 200);
    let read: Value = http
        .get(one.url(&format!("/orders/{id}")))
        .fetch_json()
        .await;
    assert_eq!(read["order"]["quantity"], 9);
}

/// The lines of the process's JSON output that belong to request `id`.
fn request_lines(process: &Api, id: &str) -> Vec<Value> {
    process
        .process
        .output()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("every line is JSON"))
        .filter(|l| l["span"]["request_id"] == id)
        .collect()
}

/// A slow request gets one warning carrying its id, instance, path, status and an integer
/// duration; the query string stays out.
#[tokio::test]
async fn a_slow_request_is_logged_with_its_id_and_duration() {
    let dir = tempfile::tempdir().unwrap();
    let process = Api::start(
        dir.path(),
        "api-json",
        &[
            ("APP__LOG__FORMAT", "json".into()),
            ("APP__LOG__SLOW_REQUEST_MS", "0".into()),
            ("APP__STORE__URI", sqlite_uri(dir.path())),
        ],
    );
    let response = client()
        .get(process.url("/orders?customer_name=Secret%20Person"))
        .header("x-request-id", "req-42")
        .fetch()
        .await;
    assert_eq!(response.status(), 200);
    let lines = request_lines(&process, "req-42");
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line = &lines[0];
    assert_eq!(line["level"], "WARN");
    assert_eq!(line["message"], "slow request");
    assert_eq!(line["status"], 200);
    assert!(line["duration_us"].is_u64(), "{line}");
    assert_eq!(line["span"]["instance"], "api-json");
    assert_eq!(line["span"]["path"], "/orders");
    assert!(
        !line.to_string().contains("Secret"),
        "query strings stay out of logs"
    );
}

/// At the default level a quick request, a health check and a readiness probe write nothing
/// (lb's access log has every request); at debug each gets its line.
#[tokio::test]
async fn quick_requests_and_probes_are_logged_only_at_debug() {
    let dir = tempfile::tempdir().unwrap();
    let quiet = Api::start(
        dir.path(),
        "api-quiet",
        &[
            ("APP__LOG__FORMAT", "json".into()),
            ("APP__STORE__URI", sqlite_uri(dir.path())),
        ],
    );
    let debug = Api::start(
        dir.path(),
        "api-debug",
        &[
            ("APP__LOG__FORMAT", "json".into()),
            ("APP__LOG__LEVEL", "debug".into()),
            ("APP__STORE__URI", sqlite_uri(dir.path())),
        ],
    );
    for (process, path) in [(&quiet, "/orders"), (&debug, "/orders")]
        .into_iter()
        .chain([
            (&quiet, "/healthz"),
            (&quiet, "/readyz"),
            (&debug, "/readyz"),
        ])
    {
        let response = client()
            .get(process.url(path))
            .header("x-request-id", format!("id{}", path.replace('/', "-")))
            .fetch()
            .await;
        assert_eq!(response.status(), 200, "{path}");
    }
    for id in ["id-orders", "id-healthz", "id-readyz"] {
        assert_eq!(request_lines(&quiet, id), Vec::<Value>::new(), "{id}");
    }
    for id in ["id-orders", "id-readyz"] {
        let lines = request_lines(&debug, id);
        assert!(
            lines
                .iter()
                .any(|l| l["level"] == "DEBUG" && l["message"] == "request"),
            "{id}: {lines:?}"
        );
    }
}

/// SIGTERM while a request's body is still arriving: the request completes with 201, then the
/// process exits 0.
#[test]
fn sigterm_finishes_the_request_in_flight_then_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut process = Api::start(
        dir.path(),
        "api-term",
        &[("APP__STORE__URI", sqlite_uri(dir.path()))],
    );
    let body = reference_order().to_string();
    let (head, tail) = body.split_at(body.len() / 2);
    let mut stream = TcpStream::connect(process.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "POST /orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{head}",
        body.len()
    )
    .unwrap();
    stream.flush().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    process.process.signal("TERM");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        process.process.exited().is_none(),
        "exited with a request in flight"
    );
    stream.write_all(tail.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    let status = process.process.wait_for_exit(Duration::from_secs(15));
    assert!(status.success(), "{status}");
    let log = process.process.output();
    assert!(log.contains("shutting down"), "{log}");
    assert!(log.contains("stopped"), "{log}");
}

/// SIGTERM with a connection that never finishes its request and one idle after a request: the
/// idle one is closed at once, the other is cut at `server.shutdown_timeout_ms`, and the process
/// exits cleanly soon after, not when the client pleases.
#[test]
fn sigterm_exits_within_the_shutdown_timeout_whatever_clients_do() {
    let dir = tempfile::tempdir().unwrap();
    let mut process = Api::start(
        dir.path(),
        "api-bounded",
        &[
            ("APP__STORE__URI", sqlite_uri(dir.path())),
            ("APP__SERVER__SHUTDOWN_TIMEOUT_MS", "1500".into()),
        ],
    );
    let mut idle = TcpStream::connect(process.addr).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(idle, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut first = [0_u8; 12];
    idle.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    let mut stuck = TcpStream::connect(process.addr).unwrap();
    write!(
        stuck,
        "POST /orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{{"
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(200));

    let started = std::time::Instant::now();
    process.process.signal("TERM");
    let mut rest = Vec::new();
    let _ = idle.read_to_end(&mut rest);
    assert!(
        started.elapsed() < Duration::from_millis(1000),
        "the idle connection stayed open {:?}",
        started.elapsed()
    );
    let status = process.process.wait_for_exit(Duration::from_secs(10));
    let took = started.elapsed();
    assert!(status.success(), "{status}");
    assert!(
        took >= Duration::from_millis(1400) && took < Duration::from_secs(5),
        "exited after {took:?}"
    );
    let log = process.process.output();
    assert!(log.contains("cut"), "{log}");
}

/// An unreachable MongoDB with a password in its URI: the api starts, is not ready, and the
/// password shows up neither in the answers nor in the log.
#[tokio::test]
async fn a_mongodb_password_never_reaches_answers_or_logs() {
    let dir = tempfile::tempdir().unwrap();
    let process = Api::start(
        dir.path(),
        "api-secret",
        &[
            (
                "APP__STORE__URI",
                "mongodb://shop:Sup3rSecretPw@127.0.0.1:9/orders_db".into(),
            ),
            ("APP__STORE__SERVER_SELECTION_TIMEOUT_MS", "300".into()),
            // The Redis password is the same secret: the checks below cover both.
            (
                "APP__QUEUE__URL",
                "redis://:Sup3rSecretPw@127.0.0.1:9/0".into(),
            ),
            ("APP__LOG__LEVEL", "debug".into()),
        ],
    );
    let http = client();
    let ready = http.get(process.url("/readyz")).fetch().await;
    assert_eq!(ready.status(), 503);
    let body = ready.text().await.unwrap();
    let get = http
        .get(process.url("/orders/65a1b2c3d4e5f60718293a4b"))
        .fetch()
        .await;
    assert_eq!(get.status(), 503);
    let body = body + &get.text().await.unwrap();
    let jpeg = pictures::jpeg(8, 8);
    let upload = http
        .post(process.url("/images"))
        .multipart(pictures::form(&jpeg, "a.jpg"))
        .fetch()
        .await;
    assert_eq!(upload.status(), 503);
    let body = body + &upload.text().await.unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let log = process.process.output();
    assert!(
        log.contains("shop:***@"),
        "the redacted URI is logged: {log}"
    );
    assert!(!body.contains("Sup3rSecretPw"), "{body}");
    assert!(!log.contains("Sup3rSecretPw"), "{log}");
}

/// The local stack hands every process the same environment: a setting of `lb` is skipped by
/// the api with one warning naming it, while a key no binary knows still stops start-up.
#[tokio::test]
async fn another_binarys_setting_is_skipped_with_a_warning_and_an_unknown_one_refused() {
    let dir = tempfile::tempdir().unwrap();
    let process = Api::start(
        dir.path(),
        "api-mixed",
        &[
            ("APP__STORE__URI", sqlite_uri(dir.path())),
            ("APP__RETRIES__MAX", "1".into()),
            (
                "APP__UPSTREAMS__ADDRESSES",
                "127.0.0.1:1,127.0.0.1:2".into(),
            ),
        ],
    );
    let ready = client().get(process.url("/readyz")).fetch().await;
    assert_eq!(ready.status(), 200);
    let log = process.process.output();
    let warnings = process.process.warnings();
    assert_eq!(warnings.len(), 2, "{log}");
    assert!(
        warnings.iter().any(|l| l.contains("APP__RETRIES__MAX")),
        "{log}"
    );
    assert!(
        warnings
            .iter()
            .any(|l| l.contains("APP__UPSTREAMS__ADDRESSES")),
        "{log}"
    );

    let stderr = refused_start(&[], &[("APP__RETRIES__MAXX", "1")]);
    assert!(stderr.contains("APP__RETRIES__MAXX"), "{stderr}");
}

/// On MongoDB with no queue URL the api starts and serves orders; uploads answer 503 JSON
/// saying that no queue is configured.
#[tokio::test]
async fn on_mongodb_without_a_queue_orders_work_and_uploads_say_no_queue() {
    let Some(uri) = harness::mongo::uri() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let database = harness::mongo::unique_database();
    let process = Api::start(
        dir.path(),
        "api-no-queue",
        &[
            ("APP__STORE__URI", uri.clone()),
            ("APP__STORE__DATABASE", database.clone()),
        ],
    );
    let http = client();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while http.get(process.url("/readyz")).fetch().await.status() != 200 {
        assert!(std::time::Instant::now() < deadline, "never ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let created = http
        .post(process.url("/orders"))
        .json(&reference_order())
        .fetch()
        .await;
    assert_eq!(created.status(), 201);
    let upload = http
        .post(process.url("/images"))
        .multipart(pictures::form(&pictures::jpeg(8, 8), "a.jpg"))
        .fetch()
        .await;
    let body = error_body(upload, 503).await;
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("no job queue is configured"),
        "{body}"
    );
    assert!(process.process.output().contains("queue=none"));
    harness::mongo::drop_database(&uri, &database).await;
}

/// The VmRSS or VmHWM (peak) of process `pid`, in bytes.
fn memory(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// Downloads are streamed from the blob store: 20 at once of a 20 MB original raise the
/// replica's peak memory by less than 32 MB (read whole, they would need 20 x 20 MB).
#[tokio::test]
async fn twenty_concurrent_downloads_of_a_20_mb_original_are_streamed() {
    let dir = tempfile::tempdir().unwrap();
    let process = Api::start(
        dir.path(),
        "api-big",
        &[
            ("APP__STORE__URI", sqlite_uri(dir.path())),
            ("APP__IMAGES__MAX_UPLOAD_BYTES", "30000000".into()),
            (
                "APP__IMAGES__BLOB_URL",
                dir.path().join("blobs").display().to_string(),
            ),
        ],
    );
    let png = pictures::noise_png(2600);
    assert!(png.len() > 20_000_000, "{} bytes", png.len());
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap();
    let accepted = http
        .post(process.url("/images"))
        .multipart(pictures::form(&png, "big.png"))
        .fetch_json()
        .await;
    let url = process.url(&format!(
        "/images/{}/original",
        accepted["job_id"].as_str().unwrap()
    ));
    let first = http.get(&url).fetch().await.bytes().await.unwrap();
    assert_eq!(first.len(), png.len());

    let pid = process.process.pid();
    // Writing 5 resets the process's peak resident size (VmHWM) to its current one.
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").unwrap();
    let before = memory(pid, "VmRSS:");
    let downloads = (0..20).map(|_| async {
        let response = http.get(&url).fetch().await;
        assert_eq!(response.status(), 200);
        response.bytes().await.unwrap().len()
    });
    for length in futures_util::future::join_all(downloads).await {
        assert_eq!(length, png.len());
    }
    let growth = memory(pid, "VmHWM:").saturating_sub(before);
    assert!(
        growth < 32 * 1024 * 1024,
        "20 downloads grew the replica by {} MiB",
        growth / 1024 / 1024
    );
}

/// Uploads stream on to the blob store as they arrive: a 200 MB upload (a PNG header, then
/// padding) raises the replica's peak memory by less than 48 MB, and is stored whole.
#[tokio::test]
async fn a_200_mb_upload_streams_to_the_blob_store_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let process = Api::start(
        dir.path(),
        "api-upload",
        &[
            ("APP__STORE__URI", sqlite_uri(dir.path())),
            ("APP__IMAGES__MAX_UPLOAD_BYTES", "250000000".into()),
            (
                "APP__IMAGES__BLOB_URL",
                dir.path().join("blobs").display().to_string(),
            ),
        ],
    );
    let mut file = pictures::png_declaring(64, 64);
    file.resize(200_000_000, 0x5a);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap();
    let pid = process.process.pid();
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").unwrap();
    let before = memory(pid, "VmRSS:");
    let accepted = http
        .post(process.url("/images"))
        .multipart(pictures::form(&file, "big.png"))
        .fetch_json()
        .await;
    let growth = memory(pid, "VmHWM:").saturating_sub(before);
    assert!(
        growth < 48 * 1024 * 1024,
        "one 200 MB upload grew the replica by {} MiB",
        growth / 1024 / 1024
    );
    let id = accepted["job_id"].as_str().expect("accepted");
    let stored = http
        .get(process.url(&format!("/images/{id}/original")))
        .fetch()
        .await
        .bytes()
        .await
        .unwrap();
    assert!(stored == file, "the stored file differs");
}

/// A tmpfs of a few MB mounted for one test, unmounted when dropped. `None` (and a loud line)
/// where this process may not mount.
struct TinyDisk {
    path: std::path::PathBuf,
}

impl TinyDisk {
    fn mount(dir: &std::path::Path, size: &str) -> Option<Self> {
        let path = dir.join("disk");
        std::fs::create_dir_all(&path).unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .output()
            .unwrap();
        if !mounted.status.success() {
            eprintln!(
                "SKIPPED: cannot mount a tmpfs here ({}); the full-disk test needs root",
                String::from_utf8_lossy(&mounted.stderr).trim()
            );
            return None;
        }
        Some(Self { path })
    }

    /// Writes a file until the disk refuses more.
    fn fill(&self) -> std::path::PathBuf {
        let filler = self.path.join("filler");
        let mut file = std::fs::File::create(&filler).unwrap();
        let chunk = vec![7_u8; 4096];
        let mut written = 0_u64;
        loop {
            match file.write_all(&chunk) {
                Ok(()) => written += 4096,
                Err(error) => {
                    assert_eq!(error.kind(), std::io::ErrorKind::StorageFull, "{error}");
                    break;
                }
            }
            assert!(written < 64 << 20, "the tiny disk never filled");
        }
        filler
    }
}

impl Drop for TinyDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.path)
            .status();
    }
}

/// The store and the files on a real tiny file system that the test fills: writes answer 503
/// "storage is full" (never 500), `/readyz` turns 503, reads still work; once space is freed,
/// `/readyz` is 200 again and writes succeed, with no restart.
#[tokio::test]
async fn a_full_disk_is_503_and_not_ready_until_space_returns() {
    let dir = tempfile::tempdir().unwrap();
    let Some(disk) = TinyDisk::mount(dir.path(), "3m") else {
        return;
    };
    let api = Api::start(
        dir.path(),
        "api-full",
        &[
            (
                "APP__STORE__URI",
                format!("sqlite://{}", disk.path.join("orders.db").display()),
            ),
            (
                "APP__IMAGES__BLOB_URL",
                disk.path.join("blobs").display().to_string(),
            ),
        ],
    );
    let client = client();
    let created: Value = client
        .post(api.url("/orders"))
        .json(&reference_order())
        .fetch_json()
        .await;
    let id = created["order"]["_id"].as_str().unwrap().to_owned();
    assert_eq!(client.get(api.url("/readyz")).fetch().await.status(), 200);

    let filler = disk.fill();
    let refused = client
        .post(api.url("/orders"))
        .json(&reference_order())
        .fetch()
        .await;
    let body = error_body(refused, 503).await;
    assert_eq!(body["message"], "storage is full, try again later");
    let upload = client
        .post(api.url("/images"))
        .multipart(pictures::form(&pictures::jpeg(64, 64), "a.jpg"))
        .fetch()
        .await;
    let body = error_body(upload, 503).await;
    assert_eq!(body["message"], "storage is full, try again later");
    let ready = client.get(api.url("/readyz")).fetch().await;
    error_body(ready, 503).await;
    let read = client.get(api.url(&format!("/orders/{id}"))).fetch().await;
    assert_eq!(read.status(), 200, "reads go on");

    std::fs::remove_file(filler).unwrap();
    assert_eq!(client.get(api.url("/readyz")).fetch().await.status(), 200);
    let again = client
        .post(api.url("/orders"))
        .json(&reference_order())
        .fetch()
        .await;
    assert_eq!(again.status(), 201);
    let log = api.process.output();
    assert!(!log.contains("status=500"), "{log}");
    drop(api);
}
