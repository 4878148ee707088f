//! The access log: one line per request, as a production web tier writes it. A request costs one
//! line formatted into a reused buffer and a channel send; a background thread
//! (tracing-appender's non-blocking writer) writes the lines through a 64 KiB buffer, flushed
//! whenever it has caught up, so the proxy's threads never wait on `write(2)`.
//!
//! Fields, space-separated (`-` when absent): time (UTC, milliseconds), client address, method,
//! path (bytes outside printable ASCII, `"` and `\` as `\xHH`), status (0: the client left before
//! an answer), upstream, response body bytes, duration in microseconds, tries, request id.

use std::cell::{Cell, RefCell};
use std::fs::OpenOptions;
use std::io::{BufWriter, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tracing_appender::non_blocking::{NonBlocking, NonBlockingBuilder, WorkerGuard};

/// Where the lines go, from `access_log.path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    Off,
    Stdout,
    File(std::path::PathBuf),
}

impl Destination {
    pub fn parse(path: &str) -> Self {
        match path {
            "" => Self::Off,
            "-" => Self::Stdout,
            file => Self::File(file.into()),
        }
    }
}

pub struct AccessLog {
    writer: NonBlocking,
    /// Flushes what is queued when the log is dropped.
    _flush: WorkerGuard,
}

/// One request, as the log line shows it.
pub struct Entry<'a> {
    pub client: Option<IpAddr>,
    pub method: &'a str,
    pub path: &'a str,
    pub status: u16,
    pub upstream: Option<SocketAddr>,
    pub bytes: usize,
    pub duration: Duration,
    pub tries: usize,
    pub request_id: &'a str,
}

const BUFFER_BYTES: usize = 64 * 1024;
/// Lines queued for the writer thread before a request waits for it (backpressure, no loss).
const QUEUED_LINES: usize = 64 * 1024;

impl AccessLog {
    pub fn open(destination: &Destination) -> std::io::Result<Option<Self>> {
        let builder = NonBlockingBuilder::default()
            .lossy(false)
            .buffered_lines_limit(QUEUED_LINES)
            .thread_name("access-log");
        let (writer, flush) = match destination {
            Destination::Off => return Ok(None),
            Destination::Stdout => {
                builder.finish(BufWriter::with_capacity(BUFFER_BYTES, std::io::stdout()))
            }
            Destination::File(path) => builder.finish(BufWriter::with_capacity(
                BUFFER_BYTES,
                OpenOptions::new().create(true).append(true).open(path)?,
            )),
        };
        Ok(Some(Self {
            writer,
            _flush: flush,
        }))
    }

    pub fn write(&self, entry: &Entry) {
        LINE.with_borrow_mut(|line| {
            line.clear();
            format_line(line, entry, SystemTime::now());
            // Only fails when the writer thread is gone (the process is exiting).
            let _ = self.writer.clone().write_all(line);
        });
    }
}

thread_local! {
    static LINE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    /// The last second formatted on this thread, and its text: the date is formatted once a
    /// second, not once a request.
    static SECOND: Cell<(u64, [u8; 19])> = const { Cell::new((u64::MAX, [0; 19])) };
}

fn format_line(line: &mut Vec<u8>, entry: &Entry, now: SystemTime) {
    let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let second = since_epoch.as_secs();
    let (cached, mut text) = SECOND.get();
    if cached != second {
        let date = chrono::DateTime::from_timestamp(second as i64, 0).unwrap_or_default();
        let formatted = date.format("%Y-%m-%dT%H:%M:%S").to_string();
        text.copy_from_slice(&formatted.as_bytes()[..19]);
        SECOND.set((second, text));
    }
    line.extend_from_slice(&text);
    let _ = write!(line, ".{:03}Z ", since_epoch.subsec_millis());
    match entry.client {
        Some(client) => {
            let _ = write!(line, "{client} ");
        }
        None => line.extend_from_slice(b"- "),
    }
    line.extend_from_slice(entry.method.as_bytes());
    line.push(b' ');
    escape_into(line, entry.path.as_bytes());
    let _ = write!(line, " {} ", entry.status);
    match entry.upstream {
        Some(upstream) => {
            let _ = write!(line, "{upstream} ");
        }
        None => line.extend_from_slice(b"- "),
    }
    let _ = write!(
        line,
        "{} {} {} ",
        entry.bytes,
        entry.duration.as_micros(),
        entry.tries
    );
    if entry.request_id.is_empty() {
        line.push(b'-');
    } else {
        escape_into(line, entry.request_id.as_bytes());
    }
    line.push(b'\n');
}

/// A client's bytes never break the line's shape: a space, a quote, a newline or anything
/// outside printable ASCII is written as `\xHH` (nginx's escaping).
fn escape_into(line: &mut Vec<u8>, bytes: &[u8]) {
    for &byte in bytes {
        if (0x21..=0x7e).contains(&byte) && byte != b'"' && byte != b'\\' {
            line.push(byte);
        } else {
            let _ = write!(line, "\\x{byte:02X}");
        }
    }
}

/// Checks that the file can be opened for appending, so a bad path stops start-up.
pub fn check(path: &str) -> Result<(), String> {
    if let Destination::File(file) = Destination::parse(path) {
        let folder = file.parent().filter(|p| !p.as_os_str().is_empty());
        if folder.is_some_and(|folder| !Path::new(folder).is_dir()) {
            return Err("its folder does not exist".into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry<'a>(path: &'a str, request_id: &'a str) -> Entry<'a> {
        Entry {
            client: Some("127.0.0.2".parse().unwrap()),
            method: "GET",
            path,
            status: 200,
            upstream: Some("127.0.0.1:8081".parse().unwrap()),
            bytes: 532,
            duration: Duration::from_micros(1234),
            tries: 1,
            request_id,
        }
    }

    fn line(entry: &Entry, at: SystemTime) -> String {
        let mut line = Vec::new();
        format_line(&mut line, entry, at);
        String::from_utf8(line).unwrap()
    }

    #[test]
    fn a_line_has_every_field_in_order() {
        let at = UNIX_EPOCH + Duration::from_millis(1_795_000_000_123);
        assert_eq!(
            line(&entry("/orders/abc", "r-1"), at),
            "2026-11-18T11:06:40.123Z 127.0.0.2 GET /orders/abc 200 127.0.0.1:8081 532 1234 1 r-1\n"
        );
        // The cached second is not reused for another one.
        let later = at + Duration::from_millis(1_001);
        assert!(line(&entry("/", "r"), later).starts_with("2026-11-18T11:06:41.124Z "));
        let none = Entry {
            client: None,
            upstream: None,
            status: 0,
            ..entry("/", "")
        };
        assert!(line(&none, at).ends_with(" - GET / 0 - 532 1234 1 -\n"));
    }

    #[test]
    fn hostile_bytes_cannot_forge_a_line() {
        let at = UNIX_EPOCH;
        let written = line(&entry("/a b\"\\\n\u{e9}", "x\ny"), at);
        assert_eq!(written.lines().count(), 1);
        assert!(
            written.contains(" /a\\x20b\\x22\\x5C\\x0A\\xC3\\xA9 "),
            "{written}"
        );
        assert!(written.ends_with(" x\\x0Ay\n"), "{written}");
    }

    #[test]
    fn a_file_in_a_missing_folder_is_refused() {
        assert!(check("/no/such/folder/access.log").is_err());
        assert!(check("access.log").is_ok());
        assert!(check("-").is_ok());
        assert!(check("").is_ok());
    }
}
