//! Logs are set up here, once per process: structured `tracing` events as text or JSON lines on
//! stdout, filtered by the configured level unless `RUST_LOG` says otherwise. Libraries' `log`
//! records (pingora's) reach `tracing` through the subscriber's log bridge.

use serde::{Deserialize, Serialize};
use tracing_subscriber::EnvFilter;

use crate::settings::ConfigError;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `api=debug,tower_http=info`; `RUST_LOG` overrides it.
    pub level: String,
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

pub fn init(settings: &LogSettings) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&settings.level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(false);
    match settings.format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .init(),
    }
}
