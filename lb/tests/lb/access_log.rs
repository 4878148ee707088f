//! The access log: one line per request, with the fields an operator greps for.

use std::time::{Duration, Instant};

use harness::Fetch;

use crate::balancer::echoed;

/// The access log's lines once it has `count` of them (bounded wait: the writer is a thread).
fn lines(path: &std::path::Path, count: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        if lines.len() >= count || Instant::now() > deadline {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn every_request_gets_one_line_in_the_access_log_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    let (echo, lb) = echoed(
        dir.path(),
        &[
            ("APP__ACCESS_LOG__PATH", path.to_str().unwrap()),
            ("APP__LIMITS__MAX_BODY_BYTES", "10"),
        ],
    );
    let client = reqwest::Client::new();
    let ok = client
        .get(lb.url("/orders?secret=1"))
        .header("x-request-id", "acc-1")
        .fetch()
        .await;
    assert_eq!(ok.status(), 200);
    let refused = client
        .post(lb.url("/orders"))
        .header("x-request-id", "acc-2")
        .body("x".repeat(100))
        .fetch()
        .await;
    assert_eq!(refused.status(), 413);

    let lines = lines(&path, 2);
    assert_eq!(lines.len(), 2, "{lines:?}");
    let fields: Vec<&str> = lines[0].split(' ').collect();
    assert_eq!(fields.len(), 10, "{}", lines[0]);
    let time = chrono::DateTime::parse_from_rfc3339(fields[0]).unwrap();
    assert!(
        fields[0].ends_with('Z') && fields[0].len() == 24,
        "{}",
        fields[0]
    );
    assert!((chrono::Utc::now() - time.to_utc()).num_seconds().abs() < 60);
    assert_eq!(
        fields[1..6],
        ["127.0.0.1", "GET", "/orders", "200", &echo.addr.to_string()]
    );
    assert_eq!(fields[6], "11", "the body's bytes: {{\"ok\":true}}");
    assert!(fields[7].parse::<u64>().unwrap() > 0, "microseconds");
    assert_eq!(fields[8..], ["1", "acc-1"]);
    assert!(!lines[0].contains("secret"), "the query stays out");

    let fields: Vec<&str> = lines[1].split(' ').collect();
    assert_eq!(
        fields[2..6],
        ["POST", "/orders", "413", "-"],
        "{}",
        lines[1]
    );
    assert_eq!(fields[8..], ["0", "acc-2"]);
    // Requests are in the file, not in the process's own output.
    assert!(!lb.process.output().contains("acc-1"));
}

/// Lines still in the buffer when lb is told to stop are written before it exits.
#[tokio::test]
async fn buffered_lines_are_written_when_lb_stops() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    let (_echo, mut lb) = echoed(
        dir.path(),
        &[("APP__ACCESS_LOG__PATH", path.to_str().unwrap())],
    );
    // Health checks are not requests through the proxy: the file holds only these.
    let client = reqwest::Client::new();
    for i in 0..20 {
        let response = client
            .get(lb.url("/orders"))
            .header("x-request-id", format!("stop-{i}"))
            .fetch()
            .await;
        assert_eq!(response.status(), 200);
    }
    lb.process.signal("TERM");
    assert!(lb.process.wait_for_exit(Duration::from_secs(15)).success());
    let text = std::fs::read_to_string(&path).unwrap();
    for i in 0..20 {
        assert!(text.contains(&format!(" stop-{i}\n")), "stop-{i}: {text}");
    }
}
