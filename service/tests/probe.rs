//! `probe URL`, the container image's health check, against small servers on loopback: 0 for a
//! 2xx answer; 1 with the reason for another status, nothing listening, an answer that is not
//! HTTP, or no answer within its 3 s; 2 for a bad command line.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::Command;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

fn probe(args: &[&str]) -> (Option<i32>, String) {
    probe_with(args, None)
}

fn probe_with(args: &[&str], url_variable: Option<&str>) -> (Option<i32>, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_probe"));
    command.env_remove("PROBE_URL");
    if let Some(url) = url_variable {
        command.env("PROBE_URL", url);
    }
    let output = command.args(args).output().unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A server that answers one connection with `answer` (after reading the request), or holds it
/// open without a word for `silence`.
fn serve_once(answer: &'static [u8], silence: Duration) -> (SocketAddr, JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (mut connection, _) = listener.accept().unwrap();
        let mut request = Vec::new();
        let mut chunk = [0u8; 1024];
        while !request.ends_with(b"\r\n\r\n") {
            match connection.read(&mut chunk).unwrap() {
                0 => break,
                n => request.extend_from_slice(&chunk[..n]),
            }
        }
        std::thread::sleep(silence);
        let _ = connection.write_all(answer);
        String::from_utf8_lossy(&request).into_owned()
    });
    (addr, server)
}

#[test]
fn a_2xx_answer_passes_and_the_request_names_the_path() {
    let (addr, server) = serve_once(
        b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
        Duration::ZERO,
    );
    assert_eq!(
        probe(&[&format!("http://{addr}/readyz")]),
        (Some(0), String::new())
    );
    let request = server.join().unwrap();
    assert!(request.starts_with("GET /readyz HTTP/1.1\r\n"), "{request}");
    assert!(request.contains(&format!("Host: {addr}\r\n")), "{request}");
}

#[test]
fn without_an_argument_the_url_comes_from_probe_url() {
    let (addr, server) = serve_once(b"HTTP/1.1 204 No Content\r\n\r\n", Duration::ZERO);
    let url = format!("http://{addr}/healthz");
    assert_eq!(probe_with(&[], Some(&url)), (Some(0), String::new()));
    assert!(server.join().unwrap().starts_with("GET /healthz "));
    assert_eq!(probe_with(&[], Some("")).0, Some(2));
}

#[test]
fn another_status_fails_naming_it() {
    let (addr, server) = serve_once(b"HTTP/1.1 503 Service Unavailable\r\n\r\n", Duration::ZERO);
    let (code, why) = probe(&[&format!("http://{addr}/readyz")]);
    assert_eq!(code, Some(1));
    assert!(why.contains("status 503"), "{why}");
    server.join().unwrap();
}

#[test]
fn nothing_listening_fails() {
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let (code, why) = probe(&[&format!("http://{addr}/healthz")]);
    assert_eq!(code, Some(1));
    assert!(why.contains(&addr.to_string()), "{why}");
}

#[test]
fn an_answer_that_is_not_http_fails() {
    let (addr, server) = serve_once(&[0xff; 40], Duration::ZERO);
    let (code, why) = probe(&[&format!("http://{addr}/healthz")]);
    assert_eq!(code, Some(1));
    assert!(why.contains("not an HTTP answer"), "{why}");
    server.join().unwrap();
    let (addr, server) = serve_once(b"", Duration::ZERO);
    assert_eq!(probe(&[&format!("http://{addr}/healthz")]).0, Some(1));
    server.join().unwrap();
}

#[test]
fn a_server_that_never_answers_fails_within_its_limit() {
    let (addr, server) = serve_once(b"HTTP/1.1 200 OK\r\n\r\n", Duration::from_secs(4));
    let started = Instant::now();
    let (code, _) = probe(&[&format!("http://{addr}/healthz")]);
    assert_eq!(code, Some(1));
    assert!(started.elapsed() < Duration::from_millis(3900));
    server.join().unwrap();
}

#[test]
fn a_bad_command_line_is_refused() {
    assert_eq!(probe(&[]).0, Some(2));
    assert_eq!(probe(&["http://127.0.0.1:1/", "extra"]).0, Some(2));
    let (code, why) = probe(&["https://127.0.0.1/"]);
    assert_eq!(code, Some(1));
    assert!(why.contains("only http://"), "{why}");
    assert_eq!(probe(&["http://no-such-host.invalid/"]).0, Some(1));
}
