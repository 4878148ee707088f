//! `worker`: makes the thumbnails of uploaded images. Run as many as you like; they share the
//! queue, the store and the blob folder named in the settings.

use std::process::ExitCode;

use anyhow::Context;
use api::config::Section::{Images, Queue, Store, Worker};
use api::config::Settings;
use api::startup::Backends;
use api::worker::{Worker as JobWorker, status};

fn main() -> ExitCode {
    let binary = service::binary!("Image worker: thumbnails from the job queue (api settings)");
    // The worker section needs a queue: a worker refuses to start without one.
    let uses = [Store, Images, Queue, Worker];
    let config = binary.config_file();
    service::run_async(binary.name, &config, |s: &Settings| s.check(&uses), work)
}

async fn work(settings: Settings) -> anyhow::Result<()> {
    let backends = Backends::open(&settings).await?;
    let queue = backends.queue.context("no job queue is configured")?;
    let blobs = backends.blobs.description().to_owned();
    let worker = JobWorker::new(&settings, backends.stores.images, backends.blobs, queue);
    if let Some(listen) = settings.worker.listen {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding worker.listen {listen}"))?;
        let addr = listener.local_addr()?;
        tracing::info!(%addr, "health and metrics on http://{addr}");
        tokio::spawn(status::serve(
            listener,
            settings.server.instance.as_str().into(),
            worker.metrics.clone(),
        ));
    }
    tracing::info!(
        instance = %settings.server.instance,
        consumer = %worker.consumer,
        concurrency = worker.concurrency,
        queue = %settings.redacted_queue(),
        store = %settings.store.redacted_uri(),
        %blobs,
        "worker started"
    );
    worker.run(service::shutdown_signal()).await;
    tracing::info!("stopped");
    Ok(())
}
