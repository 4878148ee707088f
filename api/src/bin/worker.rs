//! `worker`: makes the thumbnails of uploaded images. Run as many as you like; they share the
//! queue, the store and the blob folder named in the settings.

use std::process::ExitCode;

use anyhow::Context;
use api::config::Settings;
use api::startup::Backends;
use api::worker::Worker;
use clap::Parser;
use service::ConfigError;

/// Image worker. Settings: built-in defaults < the TOML file < APP__SECTION__KEY variables
/// (the same file as the api's).
#[derive(Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    config: service::ConfigFile,
}

/// What the worker uses: it cannot work without a queue.
fn check(settings: &Settings) -> Result<(), ConfigError> {
    settings.store.check()?;
    settings.images.check()?;
    settings.queue.check()?;
    settings.required_queue()?;
    settings.worker.check()
}

async fn work(settings: Settings) -> anyhow::Result<()> {
    let backends = Backends::open(&settings).await?;
    let queue = backends.queue.context("no job queue is configured")?;
    let worker = Worker::new(&settings, backends.stores.images, backends.blobs, queue);
    tracing::info!(
        instance = %settings.server.instance,
        consumer = %worker.consumer,
        concurrency = worker.concurrency,
        queue = %settings.redacted_queue(),
        store = %settings.store.redacted_uri(),
        blobs = %settings.images.blob_dir.display(),
        "worker started"
    );
    worker.run(service::shutdown_signal()).await;
    tracing::info!("stopped");
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    service::run_async("worker", &args.config, check, work)
}
