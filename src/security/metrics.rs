//! The security families: `mcp_security_events_total{server,kind}` and
//! `mcp_exporter_http_unauthorized_total` (documented in docs/metrics.md).

use prometheus_client::metrics::counter::Counter;

use super::EventKind;
use crate::metric_registry::MetricsRegistry;
use crate::metric_registry::labels::ServerKindLabels;
use crate::metric_registry::server_family::ServerFamily;

/// Handles of the security families (cheap to clone: clones share the series).
#[derive(Clone, Debug)]
pub struct SecurityMetrics {
    events: ServerFamily<ServerKindLabels, Counter>,
    /// Requests to the exporter's own endpoints refused with 401.
    pub http_unauthorized: Counter,
}

impl SecurityMetrics {
    /// Registers the security families in `registry`.
    pub fn register(registry: &mut MetricsRegistry) -> Self {
        SecurityMetrics {
            events: registry.server_family(
                "mcp_security_events",
                "Security-relevant events per server (kind: auth_failure, dependency_auth_failure, protocol_violation, oversize_message, unexpected_request, pattern_match, tool_definition_mismatch)",
            ),
            http_unauthorized: registry.register(
                "mcp_exporter_http_unauthorized",
                "Requests to the exporter's endpoints refused with 401 (missing or wrong basic-auth credentials, --web.config.file)",
                Counter::default(),
            ),
        }
    }

    /// Counts `n` events of `kind` for `server`.
    pub fn count_event(&self, server: &str, kind: EventKind, n: u64) {
        self.events
            .get_or_create(&ServerKindLabels::new(server, kind.as_str()))
            .inc_by(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_counted_per_server_and_kind() {
        let mut registry = MetricsRegistry::default();
        let m = SecurityMetrics::register(&mut registry);
        m.count_event("s", EventKind::AuthFailure, 2);
        m.count_event("s", EventKind::AuthFailure, 1);
        m.http_unauthorized.inc();
        let text = registry.encode();
        for needle in [
            "mcp_security_events_total{server=\"s\",kind=\"auth_failure\"} 3",
            "mcp_exporter_http_unauthorized_total 1",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
        registry.remove_server("s");
        assert!(!registry.encode().contains("server=\"s\""));
    }
}
