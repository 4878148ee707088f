//! `api`: serves the orders REST API and the image uploads.

use std::process::ExitCode;

use api::config::Settings;
use api::startup::Application;
use clap::Parser;
use service::ConfigError;

/// Orders REST API. Settings: built-in defaults < the TOML file < APP__SECTION__KEY variables.
#[derive(Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    config: service::ConfigFile,
}

/// What the api uses: no worker settings, and a queue only if one is configured (without one,
/// uploads answer 503).
fn check(settings: &Settings) -> Result<(), ConfigError> {
    settings.server.check()?;
    settings.store.check()?;
    settings.images.check()?;
    settings.queue.check()?;
    settings.queue_backend().map(drop)
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let app = Application::build(&settings).await?;
    tracing::info!(
        addr = %app.local_addr(),
        instance = %settings.server.instance,
        store = %settings.store.redacted_uri(),
        queue = %settings.redacted_queue(),
        "listening on http://{}",
        app.local_addr()
    );
    app.run_until(service::shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    service::run_async("api", &args.config, check, serve)
}
