//! The health families: `mcp_server_health_status` and, beside it, the reasons behind it,
//! `mcp_server_health_reason` (the health model itself is in `src/health.rs`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::gauge::Gauge;

use crate::health::{Health, HealthReason, HealthStatus};
use crate::metric_registry::MetricsRegistry;
use crate::metric_registry::labels::{ServerLabels, impl_server_label_set};
use crate::metric_registry::server_family::ServerFamily;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    server: String,
    reason: &'static str,
}

impl_server_label_set!(ReasonLabels);

/// Handles to the health families.
pub struct HealthMetrics {
    status: ServerFamily<ServerLabels, Gauge>,
    reason: ServerFamily<ReasonLabels, Gauge>,
}

impl HealthMetrics {
    /// Registers the health families in `registry`.
    pub fn register(registry: &mut MetricsRegistry) -> Self {
        HealthMetrics {
            status: registry.server_family(
                "mcp_server_health_status",
                "Health of the server: 2 healthy, 1 degraded, 0 unhealthy, -1 unknown; from the probe result and latency threshold",
            ),
            reason: registry.server_family(
                "mcp_server_health_reason",
                "Why the server is not healthy, one series per current reason (probe_failed, critical_dependency_down, dependency_down, dependency_degraded, slow, warnings, no_observation, tools_unapproved); value is always 1",
            ),
        }
    }

    /// A server starts UNKNOWN, with no reason, until its first probe.
    pub fn add_server(&self, server: &str) {
        self.status
            .get_or_create(&ServerLabels::new(server))
            .set(HealthStatus::Unknown.code());
    }

    /// Publishes a server's health: its status and one series per current reason (the series
    /// of reasons that no longer apply are removed).
    pub fn record(&self, server: &str, health: &Health) {
        self.status
            .get_or_create(&ServerLabels::new(server))
            .set(health.status.code());
        for reason in HealthReason::ALL {
            let labels = ReasonLabels {
                server: server.to_string(),
                reason: reason.as_str(),
            };
            if health.codes.contains(&reason) {
                self.reason.get_or_create(&labels).set(1);
            } else {
                self.reason.remove(&labels);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_and_reasons_follow_the_latest_health() {
        let mut registry = MetricsRegistry::default();
        let m = HealthMetrics::register(&mut registry);
        m.add_server("s");
        assert!(
            registry
                .encode()
                .contains("mcp_server_health_status{server=\"s\"} -1")
        );
        m.record(
            "s",
            &Health {
                status: HealthStatus::Unhealthy,
                reasons: vec!["critical dependency pg is down".into()],
                codes: vec![HealthReason::CriticalDependencyDown, HealthReason::Slow],
            },
        );
        let text = registry.encode();
        for needle in [
            "mcp_server_health_status{server=\"s\"} 0",
            "mcp_server_health_reason{server=\"s\",reason=\"critical_dependency_down\"} 1",
            "mcp_server_health_reason{server=\"s\",reason=\"slow\"} 1",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
        m.record(
            "s",
            &Health {
                status: HealthStatus::Degraded,
                reasons: vec!["slow".into()],
                codes: vec![HealthReason::Slow],
            },
        );
        let text = registry.encode();
        assert!(
            !text.contains("reason=\"critical_dependency_down\""),
            "{text}"
        );
        assert!(text.contains("reason=\"slow\"} 1"), "{text}");
        m.record(
            "s",
            &Health {
                status: HealthStatus::Healthy,
                reasons: vec![],
                codes: vec![],
            },
        );
        let text = registry.encode();
        assert!(!text.contains("mcp_server_health_reason{"), "{text}");
        assert!(text.contains("mcp_server_health_status{server=\"s\"} 2"));
    }
}
