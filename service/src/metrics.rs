//! The Prometheus metrics every process exposes: each process declares its set with
//! [`metric_set!`]; every metric carries the process's `instance` label and is shown as
//! OpenMetrics text. Each owner keeps its own registry, so several apps in one test process stay
//! apart.

use std::borrow::Cow;

use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
pub use prometheus_client::registry::Registry;

/// The `Content-Type` of [`encode`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// An empty registry whose metrics all carry `instance="{instance}"`.
pub fn registry(instance: &str) -> Registry {
    Registry::with_labels(
        [(Cow::Borrowed("instance"), Cow::Owned(instance.to_owned()))].into_iter(),
    )
}

/// A latency histogram from 100 µs to about 15 seconds, in seconds.
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

/// Declares a process's set of metrics: a struct holding each metric, whose `new(instance)`
/// registers them all on a [`registry`] labelled with the instance (each metric's doc comment is
/// its help text), and whose `encode()` shows them as OpenMetrics text.
///
/// ```ignore
/// service::metric_set! {
///     pub struct Metrics {
///         /// Requests answered, by status.
///         requests: Family<Labels, Counter> = ("requests", Family::default()),
///     }
/// }
/// ```
#[macro_export]
macro_rules! metric_set {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $($(#[doc = $help:literal])+ $field:ident: $type:ty = ($metric:literal, $init:expr)),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        $vis struct $name {
            registry: $crate::metrics::Registry,
            $($field: $type),+
        }

        impl $name {
            $vis fn new(instance: &str) -> Self {
                let mut registry = $crate::metrics::registry(instance);
                $(
                    let $field: $type = $init;
                    registry.register($metric, concat!($($help),+).trim(), $field.clone());
                )+
                Self { registry, $($field),+ }
            }

            /// Every metric of the set, as OpenMetrics text.
            $vis fn encode(&self) -> String {
                $crate::metrics::encode(&self.registry)
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use prometheus_client::metrics::counter::Counter;

    crate::metric_set! {
        struct Sample {
            /// Things seen
            things: Counter = ("things", Counter::default()),
        }
    }

    #[test]
    fn every_metric_of_a_set_carries_the_instance() {
        let sample = Sample::new("api-7");
        sample.things.inc();
        let text = sample.encode();
        assert!(text.contains("# HELP things Things seen."), "{text}");
        assert!(
            text.contains("things_total{instance=\"api-7\"} 1"),
            "{text}"
        );
    }
}
