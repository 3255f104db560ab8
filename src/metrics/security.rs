//! Issue 7's families: `mcp_security_events_total{server,kind}` and
//! `mcp_exporter_http_unauthorized_total`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use std::sync::Arc;

use crate::probe::ProbeOutcome;
use crate::security::{EventKind, Monitor};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    server: String,
    kind: &'static str,
}

/// Handles of the security families.
#[derive(Clone)]
pub struct SecurityMetrics {
    events: Family<EventLabels, Counter>,
    /// Requests to the exporter's own endpoints refused with 401.
    pub http_unauthorized: Counter,
    /// Turns probe outcomes into events (and holds the event sink the store subscribes to).
    pub monitor: Arc<Monitor>,
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
            monitor: Arc::new(Monitor::new()),
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

    /// Records one event from elsewhere (e.g. issue 4's dependency checks with
    /// [`EventKind::DependencyAuthFailure`]): counted, logged, kept with redacted evidence.
    pub fn record(&self, server: &str, kind: EventKind, evidence: &str) {
        self.monitor.sink.push(server, kind, evidence);
        self.count_event(server, kind, 1);
    }

    /// Looks at one finished probe and counts the security events it shows.
    pub fn observe(&self, server: &str, outcome: &ProbeOutcome) {
        for (kind, n, _) in self.monitor.observe(server, outcome) {
            self.count_event(server, kind, n);
        }
    }

    /// Drops every series of a server that left the configuration.
    pub fn remove_server(&self, server: &str) {
        self.monitor.remove_server(server);
        for kind in EventKind::ALL {
            self.events.remove(&EventLabels {
                server: server.to_string(),
                kind: kind.as_str(),
            });
        }
    }
}
