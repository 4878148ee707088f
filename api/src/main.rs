//! `api`: serves the orders REST API and the image uploads.

use std::process::ExitCode;

use api::config::Section::{Images, Queue, Server, Store};
use api::config::Settings;
use api::startup::Application;

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
    app.run_until(service::shutdown_signal()).await;
    tracing::info!("stopped");
    Ok(())
}

fn main() -> ExitCode {
    let binary = service::binary!("Orders REST API and image uploads");
    // No worker settings; a queue only if one is configured (without one, uploads answer 503).
    let uses = [Server, Store, Images, Queue];
    let config = binary.config_file();
    service::run_async(binary.name, &config, |s: &Settings| s.check(&uses), serve)
}
