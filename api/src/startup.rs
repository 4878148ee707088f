//! Opens what the api and the worker use, builds the application and serves it until told to
//! stop.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::auth::Authenticator;
use crate::blobs::BlobStore;
use crate::config::Settings;
use crate::http::linger::Linger;
use crate::http::serve::{self, ConnectionLimits};
use crate::http::{self, AppState, Metrics};
use crate::queue::{self, JobQueue};
use crate::store::{self, KeyStore, Stores};

/// What the api and the worker both open: the store, the job queue (if one is configured) and
/// the blob store.
pub struct Backends {
    pub stores: Stores,
    pub queue: Option<Arc<dyn JobQueue>>,
    pub blobs: Arc<BlobStore>,
}

impl Backends {
    pub async fn open(settings: &Settings) -> anyhow::Result<Self> {
        let stores = store::open(&settings.store)
            .await
            .with_context(|| format!("opening the store {}", settings.store.redacted_uri()))?;
        let queue = match settings.queue_backend()? {
            Some(backend) => Some(
                queue::open(backend, settings)
                    .await
                    .with_context(|| format!("opening the queue {}", settings.redacted_queue()))?,
            ),
            None => None,
        };
        let blobs = Arc::new(
            BlobStore::open(&settings.images)
                .await
                .context("opening the blob store (images.blob_url)")?,
        );
        Ok(Self {
            stores,
            queue,
            blobs,
        })
    }
}

pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    limits: ConnectionLimits,
    /// `server.metrics_listen`, with its router.
    internal: Option<(TcpListener, axum::Router)>,
}

/// How many keys a replica keeps in memory (only keys that exist are kept).
const KEY_CACHE_CAPACITY: u64 = 10_000;

impl Application {
    /// Opens the backends and binds the listener; port 0 picks a free port, see
    /// [`Self::local_addr`].
    pub async fn build(settings: &Settings) -> anyhow::Result<Self> {
        let Backends {
            stores,
            queue,
            blobs,
        } = Backends::open(settings).await?;
        spawn_key_clean_up(stores.keys.clone(), settings.idempotency.retention);
        let auth = if settings.auth.required {
            Some(Arc::new(Authenticator::new(
                stores.api_keys,
                settings.auth.cache_ttl,
                KEY_CACHE_CAPACITY,
            )))
        } else {
            tracing::warn!("auth.required is off: every request is let through without an API key");
            None
        };
        let state = AppState {
            orders: stores.orders,
            images: stores.images,
            keys: stores.keys,
            run_to_end: stores.run_to_end,
            auth,
            cors: http::cors_layer(&settings.cors).map(Arc::new),
            key_retention: settings.idempotency.retention,
            queue,
            blobs,
            uploads: Arc::new(settings.images.clone()),
            upload_slots: Arc::new(tokio::sync::Semaphore::new(
                settings.images.max_concurrent_uploads,
            )),
            metrics: Arc::new(Metrics::new(&settings.server.instance)),
            instance: settings.server.instance.as_str().into(),
            body_limit: settings.server.body_limit,
            slow_request: Duration::from_millis(settings.log.slow_request_ms),
            linger: Linger {
                bytes: settings.server.linger_bytes,
                time: Duration::from_millis(settings.server.linger_ms),
            },
        };
        let listener = TcpListener::bind(settings.server.listen)
            .await
            .with_context(|| format!("listening on {}", settings.server.listen))?;
        let internal = match settings.server.metrics_listen {
            Some(addr) => {
                let listener = TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("listening on {addr} (server.metrics_listen)"))?;
                Some((listener, http::internal_router(state.clone())))
            }
            None => None,
        };
        Ok(Self {
            listener,
            internal,
            router: http::router(state),
            limits: ConnectionLimits {
                header_read: Duration::from_millis(settings.server.header_read_timeout_ms),
                shutdown: Duration::from_millis(settings.server.shutdown_timeout_ms),
            },
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Where `server.metrics_listen` is bound, if it is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        let (listener, _) = self.internal.as_ref()?;
        listener.local_addr().ok()
    }

    /// Serves until `shutdown` completes, then stops accepting, closes idle connections and
    /// gives the requests in flight at most `server.shutdown_timeout_ms` before returning.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) {
        // Metrics and probes answer until the public listener has drained.
        let internal = self
            .internal
            .map(|(listener, router)| tokio::spawn(axum::serve(listener, router).into_future()));
        serve::serve(self.listener, self.router, self.limits, shutdown).await;
        if let Some(task) = internal {
            task.abort();
        }
    }
}

/// Removes expired idempotency keys now and then (every replica does; the work is idempotent).
/// Lookups already ignore expired keys: this only gives the space back.
fn spawn_key_clean_up(keys: Arc<dyn KeyStore>, retention: Duration) {
    let every = retention.clamp(Duration::from_secs(1), Duration::from_secs(600));
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            match keys.forget_expired_keys(chrono::Utc::now()).await {
                Ok(0) => {}
                Ok(forgotten) => tracing::info!(forgotten, "expired idempotency keys removed"),
                Err(error) => tracing::warn!(%error, "removing expired idempotency keys failed"),
            }
        }
    });
}
