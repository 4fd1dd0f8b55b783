//! The Prometheus recorder behind `GET /metrics`. The `metrics` facade is process-global,
//! so the recorder is installed once per process and every `Application` shares it.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The process's Prometheus handle, installing the recorder on first use. `None` when
/// another recorder was installed first (then `/metrics` says so).
pub fn handle() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            match metrics::set_global_recorder(recorder) {
                Ok(()) => Some(handle),
                Err(e) => {
                    tracing::warn!(error = %e, "a metrics recorder is already installed; /metrics is off");
                    None
                }
            }
        })
        .clone()
}

/// Publishes the gauges derived from a status report (subscription expiry, gaps, last
/// event age) so `/metrics` shows them.
pub fn publish_status(report: &super::model::StatusReport) {
    let now = report.generated_at;
    for a in &report.accounts {
        let labels = [("account", a.id.clone())];
        let expiry = a
            .subscription
            .as_ref()
            .and_then(|s| s.expires_at)
            .map_or(0.0, |at| (at - now).num_seconds().max(0) as f64);
        metrics::gauge!("ringrelay_subscription_expiry_seconds", &labels).set(expiry);
        metrics::gauge!("ringrelay_subscription_active", &labels).set(if a.covered() {
            1.0
        } else {
            0.0
        });
        metrics::gauge!("ringrelay_open_gaps", &labels).set(a.open_gaps() as f64);
        metrics::gauge!("ringrelay_gaps_pending_backfill", &labels)
            .set(a.pending_backfills() as f64);
        if let Some(last) = a.last_event_at {
            metrics::gauge!("ringrelay_last_event_age_seconds", &labels)
                .set((now - last).num_seconds().max(0) as f64);
        }
    }
    for s in &report.sinks {
        let labels = [("sink", s.name.clone())];
        metrics::gauge!("ringrelay_deliveries_pending", &labels).set(s.pending as f64);
        metrics::gauge!("ringrelay_deliveries_dead", &labels).set(s.dead as f64);
        metrics::gauge!("ringrelay_sink_disabled", &labels).set(if s.disabled.is_some() {
            1.0
        } else {
            0.0
        });
    }
}
