//! The security families: `mcp_security_events_total{server,kind}` and
//! `mcp_exporter_http_unauthorized_total` (documented in docs/metrics.md).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use super::EventKind;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    server: String,
    kind: &'static str,
}

/// Handles of the security families (cheap to clone: clones share the series).
#[derive(Clone, Debug)]
pub struct SecurityMetrics {
    events: Family<EventLabels, Counter>,
    /// Requests to the exporter's own endpoints refused with 401.
    pub http_unauthorized: Counter,
}

impl SecurityMetrics {
    /// Registers the families.
    pub fn register(registry: &mut Registry) -> Self {
        let events = Family::<EventLabels, Counter>::default();
        registry.register(
            "mcp_security_events",
            "Security-relevant events per server (kind: auth_failure, dependency_auth_failure, protocol_violation, oversize_message, unexpected_request, pattern_match)",
            events.clone(),
        );
        let http_unauthorized = Counter::default();
        registry.register(
            "mcp_exporter_http_unauthorized",
            "Requests to the exporter's endpoints refused with 401 (missing or wrong basic-auth credentials, --web.config.file)",
            http_unauthorized.clone(),
        );
        SecurityMetrics {
            events,
            http_unauthorized,
        }
    }

    /// Counts `n` events of `kind` for `server`.
    pub fn count_event(&self, server: &str, kind: EventKind, n: u64) {
        self.events
            .get_or_create(&EventLabels {
                server: server.to_string(),
                kind: kind.as_str(),
            })
            .inc_by(n);
    }

    /// Drops every series of a server that left the configuration.
    pub fn remove_server(&self, server: &str) {
        for kind in EventKind::ALL {
            self.events.remove(&EventLabels {
                server: server.to_string(),
                kind: kind.as_str(),
            });
        }
    }
}
