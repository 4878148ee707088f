//! The access log: one line per request, as a production web tier writes it, and as nginx's
//! `access_log … buffer=64k flush=1s` does: a request appends its line to a shared 64 KiB
//! buffer; a full buffer is handed to a writer thread, which also writes whatever is buffered
//! once a second. A request never waits on `write(2)`, and the disk sees one write per 64 KiB.
//! (tracing-appender's non-blocking writer, tried first, sends every line to its thread: under
//! load that was a wake-up, a `write` and a `sched_yield` per request.)
//!
//! Fields, space-separated (`-` when absent): time (UTC, milliseconds), client address, method,
//! path (bytes outside printable ASCII, `"` and `\` as `\xHH`), status (0: the client left before
//! an answer), upstream, response body bytes, duration in microseconds, tries, request id.

use std::cell::Cell;
use std::fs::OpenOptions;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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
    shared: &'static Shared,
    /// Full buffers, to the writer thread.
    full: SyncSender<Vec<u8>>,
}

/// What the requests, the writer thread and the exit hook share.
struct Shared {
    /// Lines not yet handed over.
    pending: Mutex<Vec<u8>>,
    out: Mutex<Box<dyn Write + Send>>,
    full: Mutex<Receiver<Vec<u8>>>,
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
/// Full buffers waiting for the writer before a request waits for it (backpressure, no loss).
const QUEUED_BUFFERS: usize = 64;
const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// The one log of the process, for the exit hook: pingora ends the process with `exit(0)`, which
/// runs no destructors but does run `atexit` handlers.
static LOG: OnceLock<Shared> = OnceLock::new();

impl AccessLog {
    pub fn open(destination: &Destination) -> std::io::Result<Option<Self>> {
        let out: Box<dyn Write + Send> = match destination {
            Destination::Off => return Ok(None),
            Destination::Stdout => Box::new(std::io::stdout()),
            Destination::File(path) => {
                Box::new(OpenOptions::new().create(true).append(true).open(path)?)
            }
        };
        let (full, buffers) = mpsc::sync_channel(QUEUED_BUFFERS);
        let shared = Shared {
            pending: Mutex::new(Vec::with_capacity(BUFFER_BYTES)),
            out: Mutex::new(out),
            full: Mutex::new(buffers),
        };
        if LOG.set(shared).is_err() {
            return Err(std::io::Error::other("the access log is already open"));
        }
        let shared = LOG.get().expect("just set");
        std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || shared.write_out())?;
        // SAFETY: `flush_at_exit` is an `extern "C" fn()` that only takes std locks and writes.
        unsafe { libc::atexit(flush_at_exit) };
        Ok(Some(Self { shared, full }))
    }

    pub fn write(&self, entry: &Entry) {
        let mut buffer = lock(&self.shared.pending);
        format_line(&mut buffer, entry, SystemTime::now());
        if buffer.len() >= BUFFER_BYTES {
            let full = std::mem::replace(&mut *buffer, Vec::with_capacity(BUFFER_BYTES));
            drop(buffer);
            // Only fails when the writer thread is gone (the process is exiting).
            let _ = self.full.send(full);
        }
    }
}

impl Shared {
    /// The writer thread: full buffers as they come, and what is pending once a second.
    fn write_out(&self) {
        let mut flushed = Instant::now();
        loop {
            let next = lock(&self.full).recv_timeout(FLUSH_EVERY / 10);
            match next {
                Ok(lines) => self.emit(&lines),
                Err(RecvTimeoutError::Timeout) if flushed.elapsed() >= FLUSH_EVERY => {
                    self.drain();
                    flushed = Instant::now();
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    /// Everything still queued or pending, in order.
    fn drain(&self) {
        let queued: Vec<Vec<u8>> = lock(&self.full).try_iter().collect();
        for lines in queued {
            self.emit(&lines);
        }
        let lines = std::mem::take(&mut *lock(&self.pending));
        self.emit(&lines);
    }

    fn emit(&self, lines: &[u8]) {
        if lines.is_empty() {
            return;
        }
        let mut out = lock(&self.out);
        if let Err(error) = out.write_all(lines).and_then(|()| out.flush()) {
            tracing::error!(%error, "writing the access log failed");
        }
    }
}

extern "C" fn flush_at_exit() {
    if let Some(shared) = LOG.get() {
        shared.drain();
    }
}

/// A panic while holding one of these locks cannot leave the data half-changed (a `Vec` of
/// whole lines), so a poisoned lock is used as it is.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

thread_local! {
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
        if folder.is_some_and(|folder| !folder.is_dir()) {
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
