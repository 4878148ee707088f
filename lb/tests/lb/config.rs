//! Start-up configuration of the real binary.

use std::process::Command;

use harness::{free_port, wait_for_port};

use crate::balancer::Echo;

fn refused(env: &[(&str, &str)]) -> String {
    harness::refused_start("lb", &[], env)
}

#[test]
fn a_bad_value_stops_start_up_with_one_line_naming_the_key() {
    let stderr = refused(&[("APP__UPSTREAMS__ADDRESSES", "not-an-address")]);
    assert!(stderr.contains("upstreams.addresses"), "{stderr}");
    let stderr = refused(&[("APP__HEALTH__PATH", "readyz")]);
    assert!(stderr.contains("health.path"), "{stderr}");
    let stderr = refused(&[("APP__RETRIES__MAX", "-1")]);
    assert!(stderr.contains("retries.max"), "{stderr}");
    let stderr = refused(&[("APP__LIMITS__TRUSTED_PROXIES", "10.0.0.0/8,proxy.example")]);
    assert!(stderr.contains("limits.trusted_proxies"), "{stderr}");
    let stderr = refused(&[("APP__LIMITS__CLIENT_RATE_PER_SECOND", "fast")]);
    assert!(stderr.contains("limits.client_rate_per_second"), "{stderr}");
    let stderr = refused(&[("APP__TLS__LISTEN", "127.0.0.1:8443")]);
    assert!(stderr.contains("tls.cert_file"), "{stderr}");
    let stderr = refused(&[("APP__TLS__REDIRECT_HTTP", "true")]);
    assert!(stderr.contains("tls.redirect_http"), "{stderr}");
    let stderr = refused(&[("APP__UPSTREAMS__ADDRESSES", "api:http")]);
    assert!(stderr.contains("upstreams.addresses"), "{stderr}");
    for paths in ["metrics", "/metrics/", "/"] {
        let stderr = refused(&[("APP__SERVER__INTERNAL_PATHS", paths)]);
        assert!(
            stderr.contains("server.internal_paths"),
            "{paths}: {stderr}"
        );
    }
}

/// The shipped local configuration loads; environment variables override its addresses, and an
/// api setting among them does not stop the balancer.
#[test]
fn the_local_configuration_file_starts_the_balancer() {
    let dir = tempfile::tempdir().unwrap();
    let echo = Echo::start();
    let (port, admin) = (free_port(), free_port());
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/local/lb.toml");
    let mut child = Command::new(env!("CARGO_BIN_EXE_lb"))
        .args(["--config", file])
        .env_clear()
        .env("APP__SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .env("APP__SERVER__ADMIN_LISTEN", format!("127.0.0.1:{admin}"))
        .env("APP__SERVER__RUN_DIR", dir.path())
        .env("APP__UPSTREAMS__ADDRESSES", echo.addr.to_string())
        // A setting of the api's, as a shared environment would hand it over: skipped.
        .env("APP__STORE__URI", "sqlite://elsewhere.db")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for_port(port);
    wait_for_port(admin);
    let answer = harness::get_text(([127, 0, 0, 1], port).into(), "/orders");
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(answer, "{\"ok\":true}");
}
