//! `worker`: makes the thumbnails of uploaded images. Run as many as you like; they share the
//! queue, the store and the blob folder named in the settings.

use std::path::PathBuf;
use std::process::ExitCode;

use api::config::Settings;
use api::startup::{Backends, shutdown_signal};
use api::worker::Worker;
use clap::Parser;

/// Image worker. Settings: built-in defaults < the TOML file < APP__SECTION__KEY variables
/// (the same file as the api's).
#[derive(Parser)]
#[command(version)]
struct Args {
    /// TOML configuration file.
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
}

async fn build(settings: &Settings) -> anyhow::Result<Worker> {
    let backends = Backends::open(settings).await?;
    Ok(Worker::new(
        settings,
        backends.stores.images,
        backends.blobs,
        backends.queue,
    ))
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let settings = match Settings::load(args.config.as_deref(), "APP") {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("worker: {error}");
            return ExitCode::from(2);
        }
    };
    api::telemetry::init(&settings.log);
    let worker = match build(&settings).await {
        Ok(worker) => worker,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "start-up failed");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(
        instance = %settings.server.instance,
        consumer = %worker.consumer,
        concurrency = worker.concurrency,
        queue = %settings.redacted_queue(),
        store = %settings.store.redacted_uri(),
        blobs = %settings.images.blob_dir.display(),
        "worker started"
    );
    worker.run(shutdown_signal()).await;
    tracing::info!("stopped");
    ExitCode::SUCCESS
}
