//! What every binary of the project shares: layered settings (`settings`), logs (`logs`), the
//! Prometheus registry with its instance label (`metrics`), the rule for request ids
//! (`request_id`), and the start-up sequence (`startup`). Each binary keeps its own settings structs and checks.

pub mod logs;
pub mod metrics;
pub mod request_id;
pub mod settings;
mod startup;

pub use settings::{ConfigError, Family};
pub use startup::{Binary, ConfigFile, Settings, run, run_async, run_command, shutdown_signal};
