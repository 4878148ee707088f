//! `probe [URL]`: exits 0 when `GET URL` answers 2xx within 3 seconds, else 1 with the reason on
//! stderr; without an argument the URL is `$PROBE_URL`, so one image-wide `HEALTHCHECK` serves
//! each process (the compose file sets it per service). The container image's health check,
//! which has no curl: plain HTTP/1.1, std only, so the binary stays a few hundred kilobytes.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(3);

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let url = match (args.next(), args.next()) {
        (Some(url), None) => url,
        (None, _) => match std::env::var("PROBE_URL") {
            Ok(url) if !url.is_empty() => url,
            _ => return usage(),
        },
        _ => return usage(),
    };
    match probe(&url) {
        Ok(()) => ExitCode::SUCCESS,
        Err(why) => {
            eprintln!("probe {url}: {why}");
            ExitCode::FAILURE
        }
    }
}

fn usage() -> ExitCode {
    eprintln!("usage: probe http://HOST:PORT/PATH (or PROBE_URL set)");
    ExitCode::from(2)
}

fn probe(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or("only http:// URLs are probed")?;
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let addr = host
        .to_socket_addrs()
        .map_err(|e| format!("{host}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host}: no address"))?;
    let mut stream = TcpStream::connect_timeout(&addr, LIMIT).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(LIMIT))
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(LIMIT))
        .map_err(|e| e.to_string())?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nUser-Agent: probe\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| e.to_string())?;
    // Only the status line's first 12 bytes ("HTTP/1.1 200") are needed.
    let mut head = [0u8; 12];
    let mut read = 0;
    while read < head.len() {
        match stream.read(&mut head[read..]).map_err(|e| e.to_string())? {
            0 => break,
            n => read += n,
        }
    }
    let line = String::from_utf8_lossy(&head[..read]);
    let status = line
        .strip_prefix("HTTP/1.")
        .and_then(|s| s.get(2..5))
        .ok_or_else(|| format!("not an HTTP answer: {line:?}"))?;
    if status.starts_with('2') {
        Ok(())
    } else {
        Err(format!("status {status}"))
    }
}
