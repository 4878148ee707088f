//! The upload page in a real browser: Debian's Chromium, headless, driven by playwright-core
//! (installed by `infra/setup test` under target/node). The screenshot is kept in
//! target/test-artifacts/upload-page.png.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use harness::{Api, Process, Worker, pictures};

/// `node`, Chromium and playwright-core, or `None` (skip) outside CI when one is missing.
fn browser_tools() -> Option<PathBuf> {
    let modules = harness::root().join("target/node/node_modules");
    let present = modules.join("playwright-core").is_dir()
        && std::path::Path::new("/usr/bin/chromium").is_file()
        && harness::on_path("node").is_some();
    harness::available(present, "node, chromium or playwright-core").then_some(modules)
}

#[test]
fn the_upload_page_uploads_follows_the_job_and_shows_the_thumbnail() {
    let Some(modules) = browser_tools() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut env = vec![
        (
            "APP__STORE__URI",
            format!("sqlite://{}", dir.path().join("orders.db").display()),
        ),
        (
            "APP__IMAGES__BLOB_URL",
            dir.path().join("blobs").display().to_string(),
        ),
    ];
    let key = harness::create_key(dir.path(), &env, "images:read,images:write");
    env.push(("APP__AUTH__REQUIRED", "true".into()));
    let api = Api::start(dir.path(), "api-1", &env);
    let _worker = Worker::start(dir.path(), "worker-1", &env);
    let picture = dir.path().join("photo.jpg");
    std::fs::write(&picture, pictures::jpeg(1200, 900)).unwrap();
    let text = dir.path().join("notes.jpg");
    std::fs::write(&text, "these are my notes, not a photo").unwrap();
    let artifacts = harness::root().join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let screenshot = artifacts.join("upload-page.png");
    let _ = std::fs::remove_file(&screenshot);

    let mut command = Command::new("node");
    command
        .arg(harness::root().join("api/tests/browser/upload_page.cjs"))
        .arg(format!("http://{}", api.addr))
        .arg(&picture)
        .arg(&text)
        .arg(&screenshot)
        .arg(&key)
        .env("NODE_PATH", &modules);
    let mut browser = Process::spawn(command, dir.path().join("browser.log"));
    let status = browser.wait_for_exit(Duration::from_secs(90));
    let output = browser.output();
    assert!(status.success(), "{output}");
    // The page's findings are the script's last JSON line.
    let shown: Value = output
        .lines()
        .rev()
        .find_map(|line| serde_json::from_str(line).ok())
        .unwrap_or_else(|| panic!("no findings in:\n{output}"));
    assert!(
        shown["keyless"]
            .as_str()
            .unwrap()
            .contains("API key is required"),
        "{shown}"
    );
    assert_eq!(shown["remembered"], true, "{shown}");
    assert!(
        shown["refused"]
            .as_str()
            .unwrap()
            .contains("not a JPEG, PNG or WebP"),
        "{shown}"
    );
    assert_eq!(shown["status"], "done", "{shown}");
    assert_eq!(shown["job"].as_str().unwrap().len(), 32, "{shown}");
    assert_eq!(shown["error_hidden"], true, "{shown}");
    assert_eq!(
        (shown["width"].as_u64(), shown["height"].as_u64()),
        (Some(300), Some(225))
    );
    let png = std::fs::read(&screenshot).unwrap();
    assert!(png.starts_with(b"\x89PNG"), "no screenshot kept");
}
