//! Where the time of an HTTP probe went: `mcp_probe_http_phase_duration_seconds` and
//! `mcp_http_connections_opened_total`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

use crate::mcp::HttpPhases;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    server: String,
    phase: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServerLabels {
    server: String,
}

/// The HTTP phase families.
#[derive(Debug, Default)]
pub struct HttpPhaseMetrics {
    phases: Family<PhaseLabels, Gauge<f64, AtomicU64>>,
    connections_opened: Family<ServerLabels, Counter>,
}

impl HttpPhaseMetrics {
    /// Registers the families in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let m = HttpPhaseMetrics::default();
        registry.register(
            "mcp_probe_http_phase_duration_seconds",
            "Where the last probe's HTTP time went, summed over its requests (as blackbox_exporter's probe_http_duration_seconds): resolve (DNS), connect (TCP and TLS of new connections; 0 when keep-alive connections were reused), processing (request sent to response headers), transfer (headers to the JSON-RPC response). HTTP transports only",
            m.phases.clone(),
        );
        registry.register(
            "mcp_http_connections_opened",
            "Connections the prober opened to an HTTP server; growing with every probe means keep-alive is not working (server, proxy or load balancer closing connections)",
            m.connections_opened.clone(),
        );
        m
    }

    /// Records the phases of one probe.
    pub fn record(&self, server: &str, phases: &HttpPhases) {
        for (phase, took) in phases.labelled() {
            self.phases
                .get_or_create(&PhaseLabels {
                    server: server.to_string(),
                    phase,
                })
                .set(took.as_secs_f64());
        }
        self.connections_opened
            .get_or_create(&ServerLabels {
                server: server.to_string(),
            })
            .inc_by(u64::from(phases.connections_opened));
    }

    /// Drops a removed server's series.
    pub fn remove_server(&self, server: &str) {
        for (phase, _) in HttpPhases::default().labelled() {
            self.phases.remove(&PhaseLabels {
                server: server.to_string(),
                phase,
            });
        }
        self.connections_opened.remove(&ServerLabels {
            server: server.to_string(),
        });
    }
}
