//! The Prometheus registry every process exposes: each metric carries the process's `instance`
//! label, and is shown as OpenMetrics text. Each owner keeps its own registry, so several apps in
//! one test process stay apart.

use std::borrow::Cow;

use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The `Content-Type` of [`encode`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// An empty registry whose metrics all carry `instance="{instance}"`.
pub fn registry(instance: &str) -> Registry {
    Registry::with_labels(
        [(Cow::Borrowed("instance"), Cow::Owned(instance.to_owned()))].into_iter(),
    )
}

/// A latency histogram from 100 µs to about 15 minutes, in seconds.
pub fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_1, 2.5, 14))
}

/// The registry as OpenMetrics text.
pub fn encode(registry: &Registry) -> String {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry)
        .expect("writing to a String cannot fail");
    text
}

#[cfg(test)]
mod tests {
    use prometheus_client::metrics::counter::Counter;

    use super::*;

    #[test]
    fn every_metric_carries_the_instance() {
        let mut registry = registry("api-7");
        let counter = Counter::<u64>::default();
        registry.register("things", "Things", counter.clone());
        counter.inc();
        let text = encode(&registry);
        assert!(
            text.contains("things_total{instance=\"api-7\"} 1"),
            "{text}"
        );
    }
}
