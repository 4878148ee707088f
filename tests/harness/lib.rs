//! The process harness every crate's tests use: free ports, the workspace's binaries started
//! with a log file and waited for (bounded), signals, a real `redis-server`, the MongoDB test
//! server's address, the whole stack from the main command, and test pictures. Dev-only.
//!
//! Tools a test needs beyond the Rust toolchain (Redis, MongoDB, Chromium, Locust) are installed
//! by `infra/setup test`; where one is missing a test skips with a message, except under CI
//! (`CI=true`), where it fails: see [`available`].

pub mod compose;
pub mod droplets;
mod fetch;
pub mod mongo;
pub mod pictures;
mod ports;
mod process;
mod redis;
pub mod s3;
mod stack;
pub mod tls;

pub use fetch::Fetch;
pub use ports::{free_port, get_text, wait_for_port};
pub use process::{Api, Process, Worker, binary, create_key, refused_start};
pub use redis::RedisServer;
pub use stack::Stack;

use std::path::{Path, PathBuf};

/// A client that sends `Authorization: Bearer KEY` with every request (10 s per request).
pub fn keyed_client(key: &str) -> reqwest::Client {
    let mut value: reqwest::header::HeaderValue = format!("Bearer {key}").parse().unwrap();
    value.set_sensitive(true);
    let headers = reqwest::header::HeaderMap::from_iter([(reqwest::header::AUTHORIZATION, value)]);
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .default_headers(headers)
        .build()
        .unwrap()
}

/// A tool `infra/setup` keeps in its cache outside the repository (`ORDERS_TOOLS`, default
/// `~/.cache/orders-tools`): `tool("promtool")` is `…/bin/promtool`.
pub fn tool(name: &str) -> PathBuf {
    std::env::var_os("ORDERS_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/orders-tools")
        })
        .join("bin")
        .join(name)
}

/// The workspace's root folder.
pub fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// `true` when `found`; otherwise `false` (the caller skips) with a message naming `what`, or a
/// failure under CI, which must run every test.
pub fn available(found: bool, what: &str) -> bool {
    if !found {
        assert!(
            !std::env::var("CI").is_ok_and(|ci| ci == "true"),
            "{what} is missing: CI must run this test (infra/setup test installs it)"
        );
        eprintln!("skipping: {what} is missing (run infra/setup test)");
    }
    found
}

/// `name` on the PATH, if installed.
pub fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    })
}

/// Checks that a 2 MB JSON body and a 30 MB upload sent to `addr` (with `key`, if any) by a
/// client that writes its whole request before reading both get their 413 JSON answer, not a
/// connection reset.
pub async fn assert_early_answers_are_readable(addr: std::net::SocketAddr, key: Option<String>) {
    let (json, upload) = tokio::task::spawn_blocking(move || {
        (
            send_then_read(addr, "json", 2_000_000, key.as_deref()),
            send_then_read(addr, "upload", 30_000_000, key.as_deref()),
        )
    })
    .await
    .unwrap();
    for answer in [json, upload] {
        let (status, body) = answer.expect("the client read the answer");
        assert_eq!(status, 413, "{body}");
        assert!(
            body["message"].as_str().unwrap().contains("limit"),
            "{body}"
        );
    }
}

/// Sends a `json` body (`POST /orders`) or an `upload` (`POST /images`) of about `bytes` bytes
/// to `addr` with Python's `http.client`, which writes the whole request before it reads the
/// answer (with `key`, if any); returns the status and the body, or the client's error.
pub fn send_then_read(
    addr: std::net::SocketAddr,
    kind: &str,
    bytes: usize,
    key: Option<&str>,
) -> Result<(u16, serde_json::Value), String> {
    let output = std::process::Command::new("python3")
        .arg(root().join("tests/clients/send_then_read.py"))
        .args([addr.to_string(), kind.to_owned(), bytes.to_string()])
        .env("ORDERS_API_KEY", key.unwrap_or_default())
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        return Err(format!(
            "{stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let (status, body) = stdout.split_once('\n').ok_or(stdout.clone())?;
    let status = status.trim().parse().map_err(|_| stdout.clone())?;
    let body = serde_json::from_str(body.trim()).map_err(|e| format!("{e}: {stdout}"))?;
    Ok((status, body))
}
