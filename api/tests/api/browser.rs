//! The upload page in a real browser: Debian's Chromium, headless, driven by playwright-core
//! (installed by `infra/setup test` under target/node). The screenshot is kept in
//! target/test-artifacts/upload-page.png.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::pictures;
use crate::servers::WorkerProcess;

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `node`, Chromium and playwright-core, or `None` (skip) outside CI when one is missing.
fn browser_tools() -> Option<PathBuf> {
    let modules = workspace().join("target/node/node_modules");
    let present = modules.join("playwright-core").is_dir()
        && std::path::Path::new("/usr/bin/chromium").is_file()
        && Command::new("node")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
    if !present {
        assert!(
            !std::env::var("CI").is_ok_and(|ci| ci == "true"),
            "node, chromium or playwright-core is missing: CI must run the browser test"
        );
        eprintln!("skipping: run infra/setup test for node, chromium and playwright-core");
        return None;
    }
    Some(modules)
}

#[test]
fn the_upload_page_uploads_follows_the_job_and_shows_the_thumbnail() {
    let Some(modules) = browser_tools() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let env = vec![
        (
            "APP__STORE__URI",
            format!("sqlite://{}", dir.path().join("orders.db").display()),
        ),
        (
            "APP__IMAGES__BLOB_DIR",
            dir.path().join("blobs").display().to_string(),
        ),
    ];
    let api = crate::helpers::ApiProcess::start(dir.path(), "api-1", &env);
    let _worker = WorkerProcess::start(dir.path(), "worker-1", &env);
    let picture = dir.path().join("photo.jpg");
    std::fs::write(&picture, pictures::jpeg(1200, 900)).unwrap();
    let text = dir.path().join("notes.jpg");
    std::fs::write(&text, "these are my notes, not a photo").unwrap();
    let artifacts = workspace().join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let screenshot = artifacts.join("upload-page.png");
    let _ = std::fs::remove_file(&screenshot);

    let mut child = Command::new("node")
        .arg(workspace().join("api/tests/browser/upload_page.cjs"))
        .arg(format!("http://{}", api.addr))
        .arg(&picture)
        .arg(&text)
        .arg(&screenshot)
        .env("NODE_PATH", &modules)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let status = crate::servers::wait_for_exit(&mut child, Duration::from_secs(90));
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let shown: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
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
