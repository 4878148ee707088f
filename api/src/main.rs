//! `api`: serves the orders REST API.

use std::path::PathBuf;
use std::process::ExitCode;

use api::config::Settings;
use api::startup::{Application, shutdown_signal};
use clap::Parser;

/// Orders REST API. Settings: built-in defaults < the TOML file < APP__SECTION__KEY variables.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// TOML configuration file.
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let settings = match Settings::load(args.config.as_deref(), "APP") {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("api: {error}");
            return ExitCode::from(2);
        }
    };
    api::telemetry::init(&settings.log);
    let app = match Application::build(&settings).await {
        Ok(app) => app,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "start-up failed");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(
        addr = %app.local_addr(),
        instance = %settings.server.instance,
        store = %settings.store.redacted_uri(),
        "listening on http://{}",
        app.local_addr()
    );
    match app.run_until(shutdown_signal()).await {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(error) => {
            tracing::error!(%error, "server failed");
            ExitCode::FAILURE
        }
    }
}
