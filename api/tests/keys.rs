//! API keys through the real binaries: `api keys create/list/revoke` on the store the settings
//! name (and their refusals), a running replica that never writes a key in its log, and 10,000
//! wrong keys that leave its memory where it was.

mod common;

use std::process::{Command, Output};
use std::time::Duration;

use futures_util::StreamExt;
use harness::{Api, Fetch, binary};

use crate::common::{client, client_with_key, error_body};

fn store_env(dir: &std::path::Path) -> Vec<(&'static str, String)> {
    vec![(
        "APP__STORE__URI",
        format!("sqlite://{}", dir.join("orders.db").display()),
    )]
}

fn keys(dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new(binary("api"))
        .env_clear()
        .envs(store_env(dir))
        .arg("keys")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn keys_are_created_listed_and_revoked_and_shown_only_once() {
    let dir = tempfile::tempdir().unwrap();
    let made = keys(
        dir.path(),
        &[
            "create",
            "--name",
            "shop front",
            "--scope",
            "orders:read,images:read",
            "--expires",
            "30d",
        ],
    );
    assert!(made.status.success(), "{made:?}");
    let key = text(&made.stdout).trim().to_owned();
    assert!(key.starts_with("shop_") && key.len() == 65, "{key}");
    let id = &key[5..21];
    assert!(text(&made.stderr).contains(id), "{made:?}");
    let second = keys(dir.path(), &["create", "--name", "ops", "--scope", "admin"]);
    assert!(second.status.success());
    let second_key = text(&second.stdout).trim().to_owned();

    let listed = text(&keys(dir.path(), &["list"]).stdout);
    let rows: Vec<&str> = listed.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{listed}");
    assert!(rows[0].starts_with(id), "{listed}");
    assert!(rows[0].contains("active") && rows[0].contains("orders:read,images:read"));
    assert!(
        rows[0].contains("shop front") && !rows[0].contains("never"),
        "{listed}"
    );
    assert!(
        rows[1].contains("admin") && rows[1].contains("never"),
        "{listed}"
    );
    // Neither key, nor any part of its secret, is ever listed.
    for shown in [&key, &second_key] {
        assert!(!listed.contains(&shown[22..40]), "{listed}");
    }

    let revoked = keys(dir.path(), &["revoke", id]);
    assert!(revoked.status.success(), "{revoked:?}");
    assert!(text(&revoked.stderr).contains("revoked"), "{revoked:?}");
    let again = keys(dir.path(), &["revoke", id]);
    assert!(again.status.success());
    assert!(text(&again.stderr).contains("already revoked"), "{again:?}");
    let listed = text(&keys(dir.path(), &["list"]).stdout);
    assert!(
        listed.lines().nth(1).unwrap().contains("revoked"),
        "{listed}"
    );
}

#[test]
fn a_key_saved_to_a_file_is_readable_by_its_owner_only_and_never_overwritten() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("key");
    let path_text = path.display().to_string();
    let made = keys(
        dir.path(),
        &[
            "create", "--name", "dev", "--scope", "admin", "--out", &path_text,
        ],
    );
    assert!(made.status.success(), "{made:?}");
    assert!(
        made.stdout.is_empty(),
        "the key is not also printed: {made:?}"
    );
    let saved = std::fs::read_to_string(&path).unwrap();
    assert!(saved.trim().starts_with("shop_"));
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let again = keys(
        dir.path(),
        &[
            "create", "--name", "dev", "--scope", "admin", "--out", &path_text,
        ],
    );
    assert_eq!(again.status.code(), Some(1), "{again:?}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), saved);
    // No second key was made.
    assert_eq!(text(&keys(dir.path(), &["list"]).stdout).lines().count(), 2);
}

#[test]
fn bad_arguments_are_refused_with_the_reason_and_make_nothing() {
    let dir = tempfile::tempdir().unwrap();
    for (args, code, says) in [
        (
            vec!["create", "--name", "x", "--scope", "orders:delete"],
            2,
            "unknown scope",
        ),
        (
            vec!["create", "--name", "x", "--scope", "ADMIN"],
            2,
            "unknown scope",
        ),
        (vec!["create", "--name", "x"], 2, "--scope"),
        (vec!["create", "--scope", "admin"], 2, "--name"),
        (
            vec!["create", "--name", "  ", "--scope", "admin"],
            2,
            "blank",
        ),
        (
            vec!["create", "--name", "a\u{1b}[2Jb", "--scope", "admin"],
            2,
            "control",
        ),
        (
            vec!["create", "--name", &"n".repeat(101), "--scope", "admin"],
            2,
            "100",
        ),
        (
            vec![
                "create",
                "--name",
                "x",
                "--scope",
                "admin",
                "--expires",
                "0s",
            ],
            1,
            "future",
        ),
        (
            vec![
                "create",
                "--name",
                "x",
                "--scope",
                "admin",
                "--expires",
                "2001-01-01T00:00:00Z",
            ],
            1,
            "future",
        ),
        (
            vec![
                "create",
                "--name",
                "x",
                "--scope",
                "admin",
                "--expires",
                "soon",
            ],
            1,
            "duration",
        ),
        (vec!["revoke", "not-an-id"], 2, "hex"),
        (vec!["revoke", "0123456789abcdef"], 1, "no API key"),
        (vec!["revoke"], 2, "ID"),
    ] {
        let output = keys(dir.path(), &args);
        assert_eq!(output.status.code(), Some(code), "{args:?}: {output:?}");
        assert!(text(&output.stderr).contains(says), "{args:?}: {output:?}");
    }
    assert_eq!(text(&keys(dir.path(), &["list"]).stdout).lines().count(), 1);
}

#[tokio::test]
async fn a_replica_logs_the_key_id_never_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = store_env(dir.path());
    let key = harness::create_key(dir.path(), &env, "orders:read");
    env.push(("APP__AUTH__REQUIRED", "true".into()));
    env.push(("APP__LOG__LEVEL", "debug".into()));
    env.push(("APP__LOG__FORMAT", "json".into()));
    let api = Api::start(dir.path(), "api-keys", &env);
    let reader = client_with_key(&key);
    assert_eq!(reader.get(api.url("/orders")).fetch().await.status(), 200);
    let response = reader
        .post(api.url("/orders"))
        .json(&common::reference_order())
        .fetch()
        .await;
    error_body(response, 403).await;
    let wrong = format!("{}x", &key[..64]);
    error_body(
        client_with_key(&wrong)
            .get(api.url("/orders"))
            .fetch()
            .await,
        401,
    )
    .await;
    let log = api.process.output();
    let id = &key[5..21];
    assert!(log.contains(&format!("\"key_id\":\"{id}\"")), "{log}");
    for secret in [&key[22..], &wrong[22..]] {
        assert!(!log.contains(secret), "a key reached the log:\n{log}");
    }
}

/// The VmRSS of process `pid`, in bytes.
fn resident(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        * 1024
}

/// Unknown keys are not cached: after 1,000 to warm up, 10,000 more, each a different
/// well-formed key, raise the replica's resident memory by less than 4 MiB. (What they cost in
/// time is measured by `bench/orders.py`, not here.)
#[tokio::test]
async fn ten_thousand_wrong_keys_do_not_grow_the_replica() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = store_env(dir.path());
    env.push(("APP__AUTH__REQUIRED", "true".into()));
    let api = Api::start(dir.path(), "api-wrong-keys", &env);
    let url = api.url("/orders");
    let http = client();
    let send = |count: usize| {
        let (http, url) = (http.clone(), url.clone());
        async move {
            let statuses: Vec<u16> = futures_util::stream::iter(0..count)
                .map(|_| {
                    let key = api::auth::ApiKey::generate();
                    let request = http
                        .get(&url)
                        .header("authorization", format!("Bearer {}", key.reveal()));
                    async move { request.send().await.unwrap().status().as_u16() }
                })
                .buffer_unordered(16)
                .collect()
                .await;
            statuses.iter().filter(|s| **s == 401).count()
        }
    };
    assert_eq!(send(1_000).await, 1_000);
    let before = resident(api.process.pid());
    assert_eq!(send(10_000).await, 10_000);
    let growth = resident(api.process.pid()).saturating_sub(before);
    assert!(
        growth < 4 * 1024 * 1024,
        "10,000 wrong keys grew the replica by {} KiB",
        growth / 1024
    );
    // And the replica still answers a good key at once.
    let key = harness::create_key(dir.path(), &store_env(dir.path()), "orders:read");
    let good = client_with_key(&key)
        .get(&url)
        .timeout(Duration::from_secs(2))
        .fetch()
        .await;
    assert_eq!(good.status(), 200);
}
