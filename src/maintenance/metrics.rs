//! `mcp_server_maintenance` and `mcp_alertmanager_request_failures_total`
//! (docs/metrics.md#maintenance).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use crate::metric_registry::MetricsRegistry;
use crate::metric_registry::labels::ServerLabels;
use crate::metric_registry::server_family::ServerFamily;

/// What the exporter asked Alertmanager to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Create the silence of a window.
    CreateSilence,
    /// Expire the silence of a window ended early.
    ExpireSilence,
}

impl Operation {
    /// The `operation` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::CreateSilence => "create_silence",
            Operation::ExpireSilence => "expire_silence",
        }
    }

    const ALL: [Operation; 2] = [Operation::CreateSilence, Operation::ExpireSilence];
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    operation: &'static str,
}

/// The maintenance families.
#[derive(Clone, Debug)]
pub struct MaintenanceMetrics {
    in_maintenance: ServerFamily<ServerLabels, Gauge>,
    /// Keep a series at 0 for servers not in maintenance (`FamilySwitches::zero_maintenance_series`).
    zero_series: bool,
    alertmanager_failures: Family<OperationLabels, Counter>,
}

impl MaintenanceMetrics {
    /// Registers the families; the failure counter starts at 0 for every operation.
    pub fn register(registry: &mut MetricsRegistry) -> Self {
        let metrics = MaintenanceMetrics {
            zero_series: registry.switches().zero_maintenance_series,
            in_maintenance: registry.server_family(
                "mcp_server_maintenance",
                "1 while a maintenance window holds for the server (planned downtime: the bundled alerts stay silent), 0 otherwise",
            ),
            alertmanager_failures: registry.register(
                "mcp_alertmanager_request_failures",
                "Requests to Alertmanager's API that failed (unreachable, timed out or refused), by operation; the maintenance window holds regardless",
                Family::default(),
            ),
        };
        for op in Operation::ALL {
            let _ = metrics
                .alertmanager_failures
                .get_or_create(&OperationLabels {
                    operation: op.as_str(),
                });
        }
        metrics
    }

    /// Sets whether `server` is in maintenance (out of maintenance without zero series: no
    /// series).
    pub fn set(&self, server: &str, in_maintenance: bool) {
        let labels = ServerLabels::new(server);
        if in_maintenance || self.zero_series {
            self.in_maintenance
                .get_or_create(&labels)
                .set(i64::from(in_maintenance));
        } else {
            self.in_maintenance.remove(&labels);
        }
    }

    /// Counts a failed request to Alertmanager.
    pub fn alertmanager_failed(&self, operation: Operation) {
        self.alertmanager_failures
            .get_or_create(&OperationLabels {
                operation: operation.as_str(),
            })
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauges_and_failures_are_exposed() {
        let mut registry = MetricsRegistry::default();
        let m = MaintenanceMetrics::register(&mut registry);
        m.set("a", true);
        m.set("b", false);
        m.alertmanager_failed(Operation::ExpireSilence);
        let text = registry.encode();
        for needle in [
            "mcp_server_maintenance{server=\"a\"} 1",
            "mcp_server_maintenance{server=\"b\"} 0",
            "mcp_alertmanager_request_failures_total{operation=\"create_silence\"} 0",
            "mcp_alertmanager_request_failures_total{operation=\"expire_silence\"} 1",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
    }
}
