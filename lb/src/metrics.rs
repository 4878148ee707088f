//! Prometheus metrics of the balancer (shown by the admin server, `admin.rs`).

use std::fmt::Write;
use std::net::SocketAddr;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use service::metrics::latency_histogram;

use crate::upstreams::Upstreams;

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    upstream: Upstream,
    status: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct UpstreamLabels {
    upstream: Upstream,
}

/// An upstream's address as a label value ("none" when no replica was reached): hashed and
/// compared as an address, formatted only when the metrics are shown, so that counting a
/// request allocates nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Upstream(Option<SocketAddr>);

impl EncodeLabelValue for Upstream {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> std::fmt::Result {
        match self.0 {
            Some(addr) => write!(encoder, "{addr}"),
            None => encoder.write_str("none"),
        }
    }
}

service::metric_set! {
    pub struct Metrics {
        /// Requests answered, by upstream ("none" when none was reached) and status
        requests: Family<RequestLabels, Counter> = ("lb_requests", Family::default()),
        /// Requests sent to another replica after this one failed
        retries: Family<UpstreamLabels, Counter> = ("lb_retries", Family::default()),
        /// 1 when the replica takes traffic (health check passed, no recent failure)
        healthy: Family<UpstreamLabels, Gauge> = ("lb_upstream_healthy", Family::default()),
        /// Time from request to the end of the response
        durations: Histogram = ("lb_request_duration_seconds", latency_histogram()),
    }
}

impl Metrics {
    pub fn record(&self, upstream: Option<SocketAddr>, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels {
                upstream: Upstream(upstream),
                status,
            })
            .inc();
        self.durations.observe(seconds);
    }

    pub fn retried(&self, upstream: SocketAddr) {
        self.retries
            .get_or_create(&UpstreamLabels {
                upstream: Upstream(Some(upstream)),
            })
            .inc();
    }

    /// The metrics, with each upstream's health as the balancer sees it now.
    pub fn show(&self, upstreams: &Upstreams) -> String {
        for (addr, ready) in upstreams.health() {
            self.healthy
                .get_or_create(&UpstreamLabels {
                    upstream: Upstream(Some(addr)),
                })
                .set(i64::from(ready));
        }
        self.encode()
    }
}
