//! Prometheus metrics of one worker process: jobs by how they ended, how long finished ones
//! took, and how many run now; served with `/healthz` on `worker.listen` (`status`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use service::metrics::latency_histogram;

/// How one attempt at a job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobEnd {
    Done,
    Skipped,
    Failed,
    Retried,
    HandedBack,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct EndLabels {
    outcome: &'static str,
}

service::metric_set! {
    pub struct Metrics {
        /// Job attempts ended, by outcome (done, skipped, failed for good, retried later, handed back)
        jobs: Family<EndLabels, Counter> = ("worker_jobs", Family::default()),
        /// Time from claiming a job to its thumbnail stored, for jobs done
        durations: Histogram = ("worker_job_duration_seconds", latency_histogram()),
        /// Jobs this process works on now
        running: Gauge = ("worker_jobs_running", Gauge::default()),
    }
}

impl Metrics {
    pub fn started(&self) {
        self.running.inc();
    }

    pub fn ended(&self, end: JobEnd, seconds: f64) {
        self.running.dec();
        let outcome = match end {
            JobEnd::Done => "done",
            JobEnd::Skipped => "skipped",
            JobEnd::Failed => "failed",
            JobEnd::Retried => "retried",
            JobEnd::HandedBack => "handed_back",
        };
        self.jobs.get_or_create(&EndLabels { outcome }).inc();
        if end == JobEnd::Done {
            self.durations.observe(seconds);
        }
    }
}
