//! Where the time of an HTTP probe went (the phases `http_timing.rs` measures):
//! `mcp_probe_http_phase_duration_seconds` and `mcp_http_connections_opened_total`.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;

use super::HttpPhases;
use crate::metric_registry::MetricsRegistry;
use crate::metric_registry::labels::{ServerLabels, impl_server_label_set};
use crate::metric_registry::server_family::ServerFamily;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    server: String,
    phase: &'static str,
}

impl_server_label_set!(PhaseLabels);

/// Handles to the HTTP phase families.
pub struct HttpPhaseMetrics {
    /// `None` when the profile leaves the phases out (`FamilySwitches::probe_http_phases`).
    phases: Option<ServerFamily<PhaseLabels, Gauge<f64, AtomicU64>>>,
    connections_opened: ServerFamily<ServerLabels, Counter>,
}

impl HttpPhaseMetrics {
    /// Registers the HTTP phase families in `registry`.
    pub fn register(registry: &mut MetricsRegistry) -> Self {
        let phases = registry.switches().probe_http_phases.then(|| {
            registry.server_family(
                "mcp_probe_http_phase_duration_seconds",
                "Where the last probe's HTTP time went, summed over its requests (as blackbox_exporter's probe_http_duration_seconds): resolve (DNS), connect (TCP and TLS of new connections; 0 when keep-alive connections were reused), processing (request sent to response headers), transfer (headers to the JSON-RPC response). HTTP transports only",
            )
        });
        HttpPhaseMetrics {
            phases,
            connections_opened: registry.server_family(
                "mcp_http_connections_opened",
                "Connections the prober opened to an HTTP server; growing with every probe means keep-alive is not working (server, proxy or load balancer closing connections)",
            ),
        }
    }

    /// Records the phases of one probe of `server`.
    pub fn record(&self, server: &str, phases: &HttpPhases) {
        if let Some(family) = &self.phases {
            for (phase, took) in phases.labelled() {
                family
                    .get_or_create(&PhaseLabels {
                        server: server.to_string(),
                        phase,
                    })
                    .set(took.as_secs_f64());
            }
        }
        self.connections_opened
            .get_or_create(&ServerLabels::new(server))
            .inc_by(u64::from(phases.connections_opened));
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn phases_are_gauges_of_the_last_probe_and_connections_add_up() {
        let mut registry = MetricsRegistry::default();
        let m = HttpPhaseMetrics::register(&mut registry);
        m.record(
            "h",
            &HttpPhases {
                resolve: Duration::from_millis(2),
                connect: Duration::from_millis(3),
                processing: Duration::from_millis(40),
                transfer: Duration::from_millis(5),
                connections_opened: 1,
            },
        );
        // The next probe reused the connection.
        m.record(
            "h",
            &HttpPhases {
                processing: Duration::from_millis(30),
                transfer: Duration::from_millis(4),
                ..Default::default()
            },
        );
        let text = registry.encode();
        for needle in [
            "mcp_probe_http_phase_duration_seconds{server=\"h\",phase=\"resolve\"} 0.0",
            "mcp_probe_http_phase_duration_seconds{server=\"h\",phase=\"connect\"} 0.0",
            "mcp_probe_http_phase_duration_seconds{server=\"h\",phase=\"processing\"} 0.03",
            "mcp_probe_http_phase_duration_seconds{server=\"h\",phase=\"transfer\"} 0.004",
            "mcp_http_connections_opened_total{server=\"h\"} 1",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
    }
}
