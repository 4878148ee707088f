//! Logs are set up here, once per process: structured `tracing` events as text or JSON lines on
//! stdout (stderr for commands whose stdout is their answer), filtered by the configured level unless `RUST_LOG` says otherwise. Libraries' `log`
//! records (pingora's) reach `tracing` through the subscriber's log bridge.

use std::io::Write;

use serde::{Deserialize, Serialize};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::settings::ConfigError;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `api=debug,tower_http=info`; `RUST_LOG` overrides it.
    pub level: String,
    /// Text put before every text line (`infra/run` gives each process its name, so that the
    /// stack's mixed output says who wrote what); empty for none.
    pub prefix: String,
    /// A request that takes longer than this is logged at `warn` (with its id, method, path,
    /// status and duration); quicker ones only at `debug` (the lb's access log has them all).
    pub slow_request_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".into(),
            prefix: String::new(),
            slow_request_ms: 1000,
        }
    }
}

impl LogSettings {
    pub fn check(&self) -> Result<(), ConfigError> {
        match self.level.parse::<EnvFilter>() {
            Ok(_) => Ok(()),
            Err(_) => Err(ConfigError::key(
                "log.level",
                "is not a valid tracing filter",
            )),
        }
    }
}

/// Where a process writes its log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Services: the supervisor or the container runtime collects stdout.
    Stdout,
    /// Commands whose stdout is their answer (`api keys create` prints a key there).
    Stderr,
}

pub fn init(settings: &LogSettings, output: Output) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&settings.level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(false);
    let prefix: &'static str = Box::leak(settings.prefix.clone().into_boxed_str());
    let writer = Lines { prefix, output };
    match settings.format {
        LogFormat::Text => builder.with_writer(writer).init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_writer(writer)
            .init(),
    }
}

/// Whole lines to `output`, each behind a fixed prefix (`infra/run` gives each process its
/// name; empty for none).
struct Lines {
    prefix: &'static str,
    output: Output,
}

/// One event's text, written out whole (behind the prefix) when the subscriber is done with it,
/// so that lines of concurrent events never interleave.
struct Line {
    prefix: &'static str,
    output: Output,
    line: Vec<u8>,
}

impl<'a> MakeWriter<'a> for Lines {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        Line {
            prefix: self.prefix,
            output: self.output,
            line: Vec::with_capacity(256),
        }
    }
}

impl Write for Line {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.line.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        let mut whole = Vec::with_capacity(self.prefix.len() + self.line.len());
        whole.extend_from_slice(self.prefix.as_bytes());
        whole.extend_from_slice(&self.line);
        let _ = match self.output {
            Output::Stdout => std::io::stdout().lock().write_all(&whole),
            Output::Stderr => std::io::stderr().lock().write_all(&whole),
        };
    }
}
