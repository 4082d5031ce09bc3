//! Prometheus metrics, served on `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResourceLabel {
    pub resource: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodLabel {
    pub method: String,
}

pub struct Metrics {
    registry: Registry,
    pub alerts_posted: Counter,
    pub alerts_pending: Gauge,
    pub watch_restarts: Family<ResourceLabel, Counter>,
    pub slack_api_errors: Family<MethodLabel, Counter>,
    pub teams_api_errors: Family<MethodLabel, Counter>,
    pub teams_auth_rejected: Counter,
    /// Looks of the schedule-health loop (missed and long runs) done.
    pub schedule_checks: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("rerun_bot");
        let alerts_posted = Counter::default();
        let alerts_pending = Gauge::default();
        let watch_restarts = Family::<ResourceLabel, Counter>::default();
        let slack_api_errors = Family::<MethodLabel, Counter>::default();
        let teams_api_errors = Family::<MethodLabel, Counter>::default();
        let teams_auth_rejected = Counter::default();
        let schedule_checks = Counter::default();
        registry.register(
            "alerts_posted",
            "Failure alerts posted to chat",
            alerts_posted.clone(),
        );
        registry.register(
            "alerts_pending",
            "Failure alerts stored but not yet posted (chat unreachable)",
            alerts_pending.clone(),
        );
        registry.register(
            "watch_restarts",
            "Kubernetes watch streams (re)started after an error or expiry",
            watch_restarts.clone(),
        );
        registry.register(
            "slack_api_errors",
            "Failed Slack Web API attempts (rate limits and retries included)",
            slack_api_errors.clone(),
        );
        registry.register(
            "teams_api_errors",
            "Failed Bot Connector attempts (rate limits and retries included)",
            teams_api_errors.clone(),
        );
        registry.register(
            "teams_auth_rejected",
            "Requests to /api/messages refused for their token",
            teams_auth_rejected.clone(),
        );
        registry.register(
            "schedule_checks",
            "Looks at every CronJob's schedule and running Jobs (missed and long runs)",
            schedule_checks.clone(),
        );
        Metrics {
            registry,
            schedule_checks,
            teams_api_errors,
            teams_auth_rejected,
            alerts_posted,
            alerts_pending,
            watch_restarts,
            slack_api_errors,
        }
    }
}

impl Metrics {
    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}
