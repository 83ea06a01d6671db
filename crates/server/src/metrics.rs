//! Prometheus metrics: one process-wide recorder (the `metrics` facade), rendered by
//! `GET /metrics`. The directory and feishu crates record through the same facade, so their
//! series appear here too:
//!
//! | series | kind | recorded by |
//! |---|---|---|
//! | `orgsync_events_received_total` | counter | event endpoint: every request |
//! | `orgsync_events_accepted_total` | counter | event endpoint: committed to the inbox |
//! | `orgsync_events_duplicate_total` | counter | event endpoint: already in the inbox |
//! | `orgsync_events_rejected_total{reason}` | counter | event endpoint: refused, nothing stored |
//! | `orgsync_events_applied_total` | counter | event worker |
//! | `orgsync_inbox_depth` | gauge | refreshed from the store on every scrape |
//! | `orgsync_apply_lag_seconds` | histogram | event worker: now − Feishu `create_time` |
//! | `orgsync_job_duration_seconds{kind,verdict}` | histogram | import / reconciliation end |
//! | `orgsync_feishu_requests_total{endpoint}` | counter | Feishu client: every attempt |
//! | `orgsync_feishu_errors_total{endpoint,code}` | counter | Feishu client: failed attempts |
//! | `orgsync_feishu_rate_limited_total{endpoint}` | counter | Feishu client: throttled attempts |

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const EVENTS_RECEIVED: &str = "orgsync_events_received_total";
pub const EVENTS_ACCEPTED: &str = "orgsync_events_accepted_total";
pub const EVENTS_DUPLICATE: &str = "orgsync_events_duplicate_total";
pub const EVENTS_REJECTED: &str = "orgsync_events_rejected_total";
pub const INBOX_DEPTH: &str = "orgsync_inbox_depth";
pub const APPLY_LAG: &str = "orgsync_apply_lag_seconds";
pub const JOB_DURATION: &str = "orgsync_job_duration_seconds";

/// Apply lag: events normally land within a second; Feishu re-pushes after 15 s, 5 min, 1 h.
const LAG_BUCKETS: &[f64] = &[
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0,
];
/// Job durations: seconds for a small tenant, minutes for a large one.
const JOB_BUCKETS: &[f64] = &[
    0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];

/// Handle to the process-wide metrics recorder. Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    /// `None` when another recorder was installed first (then `/metrics` renders nothing).
    handle: Option<PrometheusHandle>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::global()
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("installed", &self.handle.is_some())
            .finish()
    }
}

static GLOBAL: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

impl Metrics {
    /// Installs the Prometheus recorder on first use, then hands out its handle.
    pub fn global() -> Self {
        let handle = GLOBAL.get_or_init(|| {
            let recorder = build().build_recorder();
            let handle = recorder.handle();
            match metrics::set_global_recorder(recorder) {
                Ok(()) => {
                    describe();
                    Some(handle)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "another metrics recorder is installed; /metrics stays empty");
                    None
                }
            }
        });
        Self {
            handle: handle.clone(),
        }
    }

    /// The Prometheus text exposition of every series.
    pub fn render(&self) -> String {
        match &self.handle {
            Some(h) => {
                h.run_upkeep();
                h.render()
            }
            None => String::new(),
        }
    }

    pub fn event_received(&self) {
        metrics::counter!(EVENTS_RECEIVED).increment(1);
    }

    pub fn event_accepted(&self) {
        metrics::counter!(EVENTS_ACCEPTED).increment(1);
    }

    pub fn event_duplicate(&self) {
        metrics::counter!(EVENTS_DUPLICATE).increment(1);
    }

    pub fn event_rejected(&self, reason: &'static str) {
        metrics::counter!(EVENTS_REJECTED, "reason" => reason).increment(1);
    }

    pub fn set_inbox_depth(&self, pending: u64) {
        metrics::gauge!(INBOX_DEPTH).set(pending as f64);
    }
}

fn build() -> PrometheusBuilder {
    // The bucket lists are constant and non-empty, so this cannot fail; without them the
    // histograms would render as summaries.
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(APPLY_LAG.into()), LAG_BUCKETS)
        .and_then(|b| b.set_buckets_for_metric(Matcher::Full(JOB_DURATION.into()), JOB_BUCKETS))
        .unwrap_or_else(|_| PrometheusBuilder::new())
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(EVENTS_RECEIVED, "Event requests received from Feishu");
    describe_counter!(EVENTS_ACCEPTED, "Events committed to the inbox");
    describe_counter!(
        EVENTS_DUPLICATE,
        "Events acknowledged again (already in the inbox)"
    );
    describe_counter!(
        EVENTS_REJECTED,
        "Event requests refused (nothing stored), by reason"
    );
    describe_counter!("orgsync_events_applied_total", "Inbox events applied");
    describe_gauge!(INBOX_DEPTH, "Inbox events waiting to be applied");
    describe_histogram!(
        APPLY_LAG,
        Unit::Seconds,
        "Time from Feishu's create_time to the event being applied"
    );
    describe_histogram!(
        JOB_DURATION,
        Unit::Seconds,
        "Duration of import and reconciliation jobs"
    );
    describe_counter!(
        "orgsync_feishu_requests_total",
        "Open API request attempts, by endpoint"
    );
    describe_counter!(
        "orgsync_feishu_errors_total",
        "Failed Open API attempts, by endpoint and Feishu code"
    );
    describe_counter!(
        "orgsync_feishu_rate_limited_total",
        "Throttled Open API attempts, by endpoint"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histograms() {
        let m = Metrics::global();
        m.event_received();
        m.event_rejected("bad_token");
        metrics::histogram!(APPLY_LAG).record(0.3);
        let text = m.render();
        assert!(text.contains("orgsync_events_received_total"), "{text}");
        assert!(
            text.contains("orgsync_events_rejected_total{reason=\"bad_token\"}"),
            "{text}"
        );
        assert!(text.contains("orgsync_apply_lag_seconds_bucket"), "{text}");
        assert!(
            text.contains("# TYPE orgsync_apply_lag_seconds histogram"),
            "{text}"
        );
    }
}
