//! The worker's loop: claims image jobs, runs up to `worker.concurrency` at once (one attempt
//! each, see `job`), renews their leases while they run, and settles each with the queue. A job
//! is acknowledged only after its thumbnail and record are stored, so only a dead worker's jobs
//! are taken over. Failures are retried with exponential backoff until `queue.max_attempts`.

mod job;
mod metrics;
mod reconcile;
mod retention;
pub mod status;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBuilder};
use chrono::Utc;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use self::job::{Outcome, Thumbnailer};
use self::metrics::JobEnd;
pub use self::metrics::Metrics;
use self::reconcile::Reconciler;
use self::retention::Retention;
use crate::blobs::BlobStore;
use crate::config::Settings;
use crate::images::{AttemptEnd, DecodeLimits};
use crate::queue::{Delivery, JobQueue, QueueError};
use crate::store::ImageStore;

/// What every job of this worker shares.
#[derive(Clone)]
pub struct Worker {
    thumbnailer: Thumbnailer,
    queue: Arc<dyn JobQueue>,
    /// This process's name in the queue.
    pub consumer: Arc<str>,
    pub concurrency: usize,
    pub lease: Duration,
    pub retry_base: Duration,
    pub retry_max: Duration,
    pub shutdown_timeout: Duration,
    /// `queue.reconcile_after_ms`.
    pub reconcile_after: Duration,
    /// `images.delete_originals_after`; zero keeps originals.
    pub delete_originals_after: Duration,
    pub metrics: Arc<Metrics>,
}

impl Worker {
    pub fn new(
        settings: &Settings,
        images: Arc<dyn ImageStore>,
        blobs: Arc<BlobStore>,
        queue: Arc<dyn JobQueue>,
    ) -> Self {
        Self {
            thumbnailer: Thumbnailer {
                images,
                blobs,
                spec: settings.worker.thumbnail,
                limits: DecodeLimits {
                    max_bytes: settings.worker.decode_max_bytes,
                },
                max_attempts: settings.queue.max_attempts,
                timeout: Duration::from_millis(settings.worker.job_timeout_ms),
            },
            queue,
            consumer: consumer_name(&settings.server.instance).into(),
            concurrency: settings.worker.concurrency,
            lease: Duration::from_millis(settings.queue.lease_ms),
            retry_base: Duration::from_millis(settings.queue.retry_base_ms),
            retry_max: Duration::from_millis(settings.queue.retry_max_ms),
            shutdown_timeout: Duration::from_millis(settings.worker.shutdown_timeout_ms),
            reconcile_after: Duration::from_millis(settings.queue.reconcile_after_ms),
            delete_originals_after: settings.images.delete_originals_after,
            metrics: Arc::new(Metrics::new(&settings.server.instance)),
        }
    }

    /// Works until `shutdown` completes; then claims nothing more, lets the jobs in flight
    /// finish for up to `shutdown_timeout`, and hands back the ones still running.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) {
        let slots = Arc::new(Semaphore::new(self.concurrency));
        let (hand_back, handing_back) = watch::channel(false);
        let mut jobs = JoinSet::new();
        let claims = async {
            let mut warned = false;
            loop {
                let slot = slots
                    .clone()
                    .acquire_owned()
                    .await
                    .expect("the semaphore is never closed");
                match self.queue.claim(&self.consumer).await {
                    Ok(Some(delivery)) => {
                        warned = false;
                        let worker = self.clone();
                        let handing_back = handing_back.clone();
                        jobs.spawn(async move {
                            worker.process(delivery, handing_back).await;
                            drop(slot);
                        });
                    }
                    Ok(None) => warned = false,
                    Err(error) => {
                        if !warned {
                            tracing::warn!(%error, "cannot claim jobs; retrying every second");
                            warned = true;
                        }
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
                while jobs.try_join_next().is_some() {}
            }
        };
        // Dropping the claim loop mid-claim is safe: a job it had just taken stays leased to
        // this consumer and is taken over when the lease expires.
        let reconciling = Reconciler {
            images: self.thumbnailer.images.clone(),
            queue: self.queue.clone(),
            holder: self.consumer.clone(),
            after: self.reconcile_after,
        }
        .run();
        let retention = Retention {
            images: self.thumbnailer.images.clone(),
            blobs: self.thumbnailer.blobs.clone(),
            queue: self.queue.clone(),
            holder: self.consumer.clone(),
            after: self.delete_originals_after,
        };
        let removing = async {
            if retention.after.is_zero() {
                std::future::pending().await
            } else {
                retention.run().await
            }
        };
        tokio::select! {
            _ = claims => {}
            () = reconciling => {}
            () = removing => {}
            () = shutdown => {}
        }
        let running = jobs.len();
        tracing::info!(running, "stopping: finishing the jobs in flight");
        let finish = async { while jobs.join_next().await.is_some() {} };
        if tokio::time::timeout(self.shutdown_timeout, finish)
            .await
            .is_err()
        {
            tracing::warn!("jobs still running at the shutdown timeout: handing them back");
            let _ = hand_back.send(true);
            while jobs.join_next().await.is_some() {}
        }
    }

    async fn process(&self, delivery: Delivery, mut handing_back: watch::Receiver<bool>) {
        let started = Instant::now();
        self.metrics.started();
        let renewals = self.keep_lease(&delivery);
        let attempt = async {
            tokio::select! {
                outcome = self.thumbnailer.attempt(delivery.image) => Some(outcome),
                _ = handing_back.wait_for(|back| *back) => None,
            }
        };
        let outcome = tokio::select! {
            outcome = attempt => outcome,
            () = renewals => unreachable!("renewing never ends"),
        };
        let image = delivery.image;
        let duration_us = started.elapsed().as_micros() as u64;
        let end = match &outcome {
            None => JobEnd::HandedBack,
            Some((_, Outcome::Done)) => JobEnd::Done,
            Some((_, Outcome::Skipped(_))) => JobEnd::Skipped,
            Some((_, Outcome::Failed { last: true, .. })) => JobEnd::Failed,
            Some((_, Outcome::Failed { last: false, .. })) => JobEnd::Retried,
        };
        self.metrics.ended(end, started.elapsed().as_secs_f64());
        let settled = match outcome {
            None => {
                tracing::info!(%image, "handing the job back");
                let back = AttemptEnd::HandedBack { at: Utc::now() };
                if let Err(error) = self.thumbnailer.images.end_attempt(image, &back).await {
                    tracing::warn!(%image, %error, "could not uncount the handed-back attempt");
                }
                self.queue.retry_after(&delivery, Duration::ZERO).await
            }
            Some((attempts, Outcome::Done)) => {
                tracing::info!(%image, attempts, duration_us, "thumbnail done");
                self.queue.ack(&delivery).await
            }
            Some((_, Outcome::Skipped(why))) => {
                tracing::info!(%image, why, "job skipped");
                self.queue.ack(&delivery).await
            }
            Some((attempts, Outcome::Failed { reason, last: true })) => {
                tracing::warn!(%image, attempts, %reason, "thumbnail failed for good");
                self.queue.ack(&delivery).await
            }
            Some((
                attempts,
                Outcome::Failed {
                    reason,
                    last: false,
                },
            )) => {
                let delay = self.backoff(attempts);
                tracing::warn!(%image, attempts, %reason, retry_in_ms = delay.as_millis() as u64,
                    "thumbnail failed; will retry");
                self.queue.retry_after(&delivery, delay).await
            }
        };
        match settled {
            Ok(()) => {}
            Err(QueueError::LeaseLost) => {
                tracing::info!(%image, "the job was taken over by another worker meanwhile");
            }
            // The lease will expire and the job come back: it is done again, idempotently.
            Err(error) => tracing::warn!(%image, %error, "could not settle the job with the queue"),
        }
    }

    /// Renews the lease every third of its length, for as long as it is polled.
    async fn keep_lease(&self, delivery: &Delivery) {
        let mut every = tokio::time::interval(self.lease / 3);
        every.tick().await;
        loop {
            every.tick().await;
            if let Err(error) = self.queue.renew(delivery).await {
                tracing::warn!(image = %delivery.image, %error, "could not renew the lease");
            }
        }
    }

    fn backoff(&self, attempts: u32) -> Duration {
        ExponentialBuilder::default()
            .with_min_delay(self.retry_base)
            .with_max_delay(self.retry_max)
            .with_jitter()
            .without_max_times()
            .build()
            .nth(attempts.saturating_sub(1) as usize)
            .unwrap_or(self.retry_max)
    }
}

/// This process's name in the queue: the instance, the host and the pid. The host matters in
/// containers, where every worker has the same instance name and often the same pid.
fn consumer_name(instance: &str) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    match host.trim() {
        "" => format!("{instance}-{}", std::process::id()),
        host => format!("{instance}-{host}-{}", std::process::id()),
    }
}
