//! TLS termination with a CA and certificates the test makes (rcgen): HTTPS round trips,
//! redirects and ACME challenges on plain HTTP, a renewed certificate picked up without
//! dropping a kept-alive connection, and garbage instead of a handshake.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use harness::tls::TestCa;
use harness::{Fetch, free_port};

use crate::balancer::{Echo, Lb};

struct Https {
    lb: Lb,
    port: u16,
    echo: Echo,
}

fn start(dir: &Path, ca: &TestCa, extra: &[(&str, &str)]) -> Https {
    let files = ca.server_files(&dir.join("tls"));
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let (cert, key) = (
        files.cert.display().to_string(),
        files.key.display().to_string(),
    );
    let mut env = vec![
        ("APP__TLS__LISTEN", listen.as_str()),
        ("APP__TLS__CERT_FILE", cert.as_str()),
        ("APP__TLS__KEY_FILE", key.as_str()),
    ];
    env.extend_from_slice(extra);
    let echo = Echo::start();
    let lb = Lb::start(dir, &[echo.addr], &env);
    harness::wait_for_port(port);
    lb.wait_for_health(&[(echo.addr, true)]);
    Https { lb, port, echo }
}

fn trusting(ca: &TestCa) -> reqwest::Client {
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem().as_bytes()).unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

#[tokio::test]
async fn an_https_request_round_trips_with_hsts_and_the_forwarded_scheme() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("edge CA");
    let https = start(
        dir.path(),
        &ca,
        &[("APP__TLS__HSTS_MAX_AGE_SECONDS", "31536000")],
    );
    let url = format!("https://127.0.0.1:{}/orders", https.port);
    let response = trusting(&ca).get(&url).fetch().await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["strict-transport-security"],
        "max-age=31536000"
    );
    let head = https
        .echo
        .heads
        .lock()
        .unwrap()
        .last()
        .unwrap()
        .to_ascii_lowercase();
    assert!(head.contains("x-forwarded-proto: https"), "{head}");
    // Plain HTTP still serves (no redirect asked for), without HSTS.
    let plain = reqwest::Client::new()
        .get(https.lb.url("/orders"))
        .fetch()
        .await;
    assert_eq!(plain.status(), 200);
    assert!(!plain.headers().contains_key("strict-transport-security"));
    // A client that does not trust the CA is refused by its own check.
    let untrusting = reqwest::Client::new().get(&url).send().await;
    assert!(untrusting.is_err(), "an unknown CA was accepted");
}

#[tokio::test]
async fn plain_http_is_redirected_except_acme_challenges_from_the_folder() {
    let dir = tempfile::tempdir().unwrap();
    let challenges = dir.path().join("acme");
    std::fs::create_dir_all(&challenges).unwrap();
    std::fs::write(challenges.join("tok-EN_1"), "tok-EN_1.thumbprint").unwrap();
    std::fs::write(dir.path().join("secret"), "not for you").unwrap();
    let ca = TestCa::new("edge CA");
    let folder = challenges.display().to_string();
    let https = start(
        dir.path(),
        &ca,
        &[
            ("APP__TLS__REDIRECT_HTTP", "true"),
            ("APP__TLS__ACME_CHALLENGE_DIR", folder.as_str()),
        ],
    );
    let plain = trusting(&ca);
    let response = plain.get(https.lb.url("/orders?page=2")).fetch().await;
    assert_eq!(response.status(), 308);
    assert_eq!(
        response.headers()["location"],
        format!("https://127.0.0.1:{}/orders?page=2", https.port).as_str()
    );
    let challenge = plain
        .get(https.lb.url("/.well-known/acme-challenge/tok-EN_1"))
        .fetch()
        .await;
    assert_eq!(challenge.status(), 200);
    assert_eq!(challenge.text().await.unwrap(), "tok-EN_1.thumbprint");
    for hostile in [
        "/.well-known/acme-challenge/unknown",
        "/.well-known/acme-challenge/..%2Fsecret",
        "/.well-known/acme-challenge/../secret",
    ] {
        let response = plain.get(https.lb.url(hostile)).fetch().await;
        assert_ne!(response.status(), 200, "{hostile}");
        assert!(
            response.status().is_client_error() || response.status() == 308,
            "{hostile}"
        );
    }
    // The redirect's target answers.
    let followed = plain
        .get(format!("https://127.0.0.1:{}/orders?page=2", https.port))
        .fetch()
        .await;
    assert_eq!(followed.status(), 200);
}

#[tokio::test]
async fn a_renewed_certificate_is_served_without_dropping_a_kept_alive_connection() {
    let dir = tempfile::tempdir().unwrap();
    let (old_ca, new_ca) = (TestCa::new("old CA"), TestCa::new("new CA"));
    let https = start(dir.path(), &old_ca, &[]);
    let url = format!("https://127.0.0.1:{}/orders", https.port);
    let kept = trusting(&old_ca);
    assert_eq!(kept.get(&url).fetch().await.status(), 200);

    // Renewal: the new pair written aside and renamed over the old one, as certbot does.
    let renewed = new_ca.server_files(&dir.path().join("renewed"));
    let tls = dir.path().join("tls");
    std::fs::rename(&renewed.key, tls.join("server.key")).unwrap();
    std::fs::rename(&renewed.cert, tls.join("server.crt")).unwrap();
    let fresh = trusting(&new_ca);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(response) = fresh.get(&url).send().await
            && response.status() == 200
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the renewed certificate was not served:\n{}",
            https.lb.process.output()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The kept-alive connection made with the old certificate still carries requests (a new
    // connection would now fail: this client trusts only the old CA).
    for _ in 0..3 {
        assert_eq!(kept.get(&url).fetch().await.status(), 200);
    }
    assert!(
        trusting(&old_ca).get(&url).send().await.is_err(),
        "a new connection still got the old certificate"
    );
}

#[tokio::test]
async fn garbage_instead_of_a_handshake_is_closed_and_others_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("edge CA");
    let https = start(dir.path(), &ca, &[]);
    let mut garbage = TcpStream::connect(("127.0.0.1", https.port)).unwrap();
    garbage
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    garbage
        .write_all(b"GET /orders HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let url = format!("https://127.0.0.1:{}/orders", https.port);
    assert_eq!(trusting(&ca).get(&url).fetch().await.status(), 200);
    let mut answer = Vec::new();
    let closed = garbage.read_to_end(&mut answer);
    assert!(
        closed.is_ok() && !String::from_utf8_lossy(&answer).contains("200"),
        "{closed:?} {answer:?}"
    );
    assert_eq!(trusting(&ca).get(&url).fetch().await.status(), 200);
}

#[tokio::test]
async fn acme_challenges_can_be_proxied_to_their_own_address() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("edge CA");
    let certbot = Echo::start();
    let address = certbot.addr.to_string();
    let https = start(
        dir.path(),
        &ca,
        &[
            ("APP__TLS__REDIRECT_HTTP", "true"),
            ("APP__TLS__ACME_CHALLENGE_UPSTREAM", address.as_str()),
        ],
    );
    let plain = trusting(&ca);
    let challenge = plain
        .get(https.lb.url("/.well-known/acme-challenge/abc"))
        .fetch()
        .await;
    assert_eq!(challenge.status(), 200);
    let heads = certbot.heads.lock().unwrap().clone();
    assert!(
        heads
            .iter()
            .any(|h| h.starts_with("GET /.well-known/acme-challenge/abc ")),
        "{heads:?}"
    );
    assert!(
        https
            .echo
            .heads
            .lock()
            .unwrap()
            .iter()
            .all(|h| !h.contains("acme")),
        "the challenge reached a replica"
    );
    let other = plain.get(https.lb.url("/orders")).fetch().await;
    assert_eq!(other.status(), 308);
}
