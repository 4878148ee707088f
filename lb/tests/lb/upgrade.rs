//! An lb restarted without refusing a connection: pingora's graceful upgrade. The successor
//! (`lb --upgrade`) takes the listening sockets over from the running lb, which is sent SIGQUIT
//! and finishes its requests, while a client opens a new connection for every request.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::balancer::{Echo, Lb};

/// One request on a new connection: its status, or why there was none.
fn one_request(port: u16) -> Result<u16, String> {
    let mut stream =
        TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(b"GET /orders HTTP/1.1\r\nHost: lb\r\nConnection: close\r\n\r\n")
        .map_err(|e| format!("write: {e}"))?;
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .map_err(|e| format!("read: {e}"))?;
    answer
        .get(9..12)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("no status line: {answer:?}"))
}

#[test]
fn a_graceful_upgrade_refuses_no_connection() {
    let dir = tempfile::tempdir().unwrap();
    let echo = Echo::start();
    let mut old = Lb::start(dir.path(), &[echo.addr], &[]);
    old.wait_for_health(&[(echo.addr, true)]);
    let port = old.port;
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..2)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let (mut ok, mut failed) = (0u32, Vec::new());
                // Bounded: until told, and at most 20,000 requests.
                while !stop.load(Ordering::Relaxed) && ok < 20_000 {
                    match one_request(port) {
                        Ok(200) => ok += 1,
                        other => failed.push(format!("{other:?}")),
                    }
                }
                (ok, failed)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut new = old.successor();
    // The successor waits on the upgrade socket; then the old one hands its sockets over.
    std::thread::sleep(Duration::from_millis(500));
    old.process.signal("QUIT");
    let exited = old.process.wait_bounded(Duration::from_secs(30));
    assert!(exited.is_some(), "the old lb did not exit");
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    let (mut ok, mut failed) = (0, Vec::new());
    for client in clients {
        let (count, failures) = client.join().unwrap();
        ok += count;
        failed.extend(failures);
    }
    eprintln!(
        "graceful upgrade: {ok} requests answered 200, {} failed",
        failed.len()
    );
    assert!(ok > 100, "only {ok} requests were made");
    assert!(
        failed.is_empty(),
        "{} failed: {:?}\nold:\n{}\nnew:\n{}",
        failed.len(),
        &failed[..failed.len().min(5)],
        old.process.output(),
        new.output()
    );
    // The successor serves on its own now.
    assert_eq!(one_request(port), Ok(200));
    new.signal("TERM");
    new.wait_bounded(Duration::from_secs(15));
}
