//! The OpenAPI document against the service it describes: schemathesis generates requests from
//! the document (its examples, boundary values, random data and create-read-update-delete
//! sequences along its links) and checks every answer against it.

use std::process::Command;
use std::time::Duration;

use harness::{Api, Process};

#[test]
fn schemathesis_finds_no_difference_between_the_document_and_the_service() {
    let root = harness::root();
    let schemathesis = root.join("target/venv/schemathesis/bin/schemathesis");
    let settings = root.join("tests/schemathesis");
    if !harness::available(
        schemathesis.is_file(),
        "schemathesis (target/venv/schemathesis)",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut env = vec![(
        "APP__STORE__URI",
        format!("sqlite://{}", dir.path().join("orders.db").display()),
    )];
    // Keys required, as deployed: schemathesis sends an admin key (and checks that the guarded
    // operations refuse a request without it).
    let key = harness::create_key(dir.path(), &env, "admin");
    env.push(("APP__AUTH__REQUIRED", "true".into()));
    let api = Api::start(dir.path(), "api-openapi", &env);
    let mut command = Command::new(&schemathesis);
    command
        .current_dir(dir.path())
        .env("NO_COLOR", "1")
        .env("ORDERS_API_KEY", &key)
        .env("PYTHONPATH", &settings)
        .env("SCHEMATHESIS_HOOKS", "hooks")
        .arg("--config-file")
        .arg(settings.join("schemathesis.toml"))
        // Every check runs by default; `--checks all` would also override the per-operation
        // exceptions of schemathesis.toml (command-line options win over the file).
        .args(["run", &api.url("/openapi.json")])
        .args(["--phases", "examples,coverage,fuzzing,stateful"])
        .args([
            "--max-examples",
            "100",
            "--workers",
            "1",
            "--request-timeout",
            "10",
        ]);
    let mut run = Process::spawn(command, dir.path().join("schemathesis.log"));
    let Some(status) = run.wait_bounded(Duration::from_secs(300)) else {
        panic!("schemathesis did not finish in 300 s:\n{}", run.output());
    };
    let output = run.output();
    let cases = output
        .lines()
        .skip_while(|line| !line.contains("Test cases:"))
        .nth(1)
        .unwrap_or_default();
    let summary = output
        .lines()
        .rev()
        .find(|line| line.starts_with('=') && line.contains(" in "))
        .unwrap_or_default();
    eprintln!("schemathesis: {} | {summary}", cases.trim());
    assert!(status.success(), "{output}");
    assert!(
        output.contains("Test Phases:") && !output.contains("🚫"),
        "a phase did not run:\n{output}"
    );
}
