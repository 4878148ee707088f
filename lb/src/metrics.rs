//! Prometheus metrics of the balancer and the admin HTTP server that shows them.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use service::metrics::{CONTENT_TYPE, encode, latency_histogram, registry};

use crate::upstreams::Upstreams;

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    upstream: String,
    status: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct UpstreamLabels {
    upstream: String,
}

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    retries: Family<UpstreamLabels, Counter>,
    healthy: Family<UpstreamLabels, Gauge>,
    durations: Histogram,
}

impl Metrics {
    pub fn new(instance: &str) -> Self {
        let mut registry = registry(instance);
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "lb_requests",
            "Requests answered, by upstream (\"none\" when none was reached) and status",
            requests.clone(),
        );
        let retries = Family::<UpstreamLabels, Counter>::default();
        registry.register(
            "lb_retries",
            "Requests sent to another replica after this one failed",
            retries.clone(),
        );
        let healthy = Family::<UpstreamLabels, Gauge>::default();
        registry.register(
            "lb_upstream_healthy",
            "1 when the replica takes traffic (health check passed, no recent failure)",
            healthy.clone(),
        );
        let durations = latency_histogram();
        registry.register(
            "lb_request_duration_seconds",
            "Time from request to the end of the response",
            durations.clone(),
        );
        Self {
            registry,
            requests,
            retries,
            healthy,
            durations,
        }
    }

    pub fn record(&self, upstream: Option<SocketAddr>, status: u16, seconds: f64) {
        let upstream = upstream.map_or_else(|| "none".to_owned(), |a| a.to_string());
        self.requests
            .get_or_create(&RequestLabels { upstream, status })
            .inc();
        self.durations.observe(seconds);
    }

    pub fn retried(&self, upstream: SocketAddr) {
        self.retries
            .get_or_create(&UpstreamLabels {
                upstream: upstream.to_string(),
            })
            .inc();
    }

    fn encode(&self, upstreams: &Upstreams) -> String {
        for (addr, ready) in upstreams.health() {
            self.healthy
                .get_or_create(&UpstreamLabels {
                    upstream: addr.to_string(),
                })
                .set(i64::from(ready));
        }
        encode(&self.registry)
    }
}

type AdminState = (Arc<Metrics>, Arc<Upstreams>);

/// Serves `/metrics` and `/healthz` on `addr` from a thread of its own, apart from the proxy's
/// runtime.
pub fn serve_admin(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    upstreams: Arc<Upstreams>,
) -> std::io::Result<()> {
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    std::thread::Builder::new()
        .name("admin".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("building the admin runtime");
            runtime.block_on(async move {
                let listener =
                    tokio::net::TcpListener::from_std(listener).expect("using the admin listener");
                let router = Router::new()
                    .route("/metrics", get(show_metrics))
                    .route("/healthz", get(|| async { "ok\n" }))
                    .with_state((metrics, upstreams));
                if let Err(error) = axum::serve(listener, router).await {
                    tracing::error!(%error, "the admin server stopped");
                }
            });
        })?;
    Ok(())
}

async fn show_metrics(State((metrics, upstreams)): State<AdminState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        metrics.encode(&upstreams),
    )
}
