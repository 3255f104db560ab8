//! The OAuth families of the probe client (docs/metrics.md#credentials):
//! `mcp_auth_refresh_total{server, outcome}` and `mcp_auth_metadata_up{server, document}`.
//! The access token's expiry is `mcp_credential_expiry_timestamp_seconds{kind="oauth_access"}`
//! (src/credentials/metrics.rs).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;

use super::{AuthReport, RefreshOutcome};
use crate::metric_registry::MetricsRegistry;
use crate::metric_registry::labels::impl_server_label_set;
use crate::metric_registry::server_family::ServerFamily;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefreshLabels {
    server: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DocumentLabels {
    server: String,
    document: &'static str,
}

impl_server_label_set!(RefreshLabels, DocumentLabels);

/// Handles to the OAuth families.
pub struct AuthMetrics {
    refreshes: ServerFamily<RefreshLabels, Counter>,
    metadata_up: ServerFamily<DocumentLabels, Gauge>,
}

impl AuthMetrics {
    /// Registers the OAuth families in `registry`.
    pub fn register(registry: &mut MetricsRegistry) -> Self {
        AuthMetrics {
            refreshes: registry.server_family(
                "mcp_auth_refresh",
                "Token requests the prober made for an OAuth server (a first token, a renewal before expiry, a new token after a 401 or a step-up), by outcome: ok, rejected (the token endpoint refused the client or grant), unreachable (no answer or 5xx), error",
            ),
            metadata_up: registry.server_family(
                "mcp_auth_metadata_up",
                "1 when the last fetch of the OAuth server's metadata document (protected_resource: RFC 9728, authorization_server: RFC 8414 / OpenID) got an answer from its host, 0 when the host was unreachable or answered 5xx",
            ),
        }
    }

    /// Records what authorization did during a probe of `server`. The refresh outcomes of a
    /// server that has an authorizer are pre-created at zero once it made a first request.
    pub fn record(&self, server: &str, report: &AuthReport) {
        if !report.token_requests.is_empty() {
            for outcome in RefreshOutcome::ALL {
                self.refreshes.get_or_create(&RefreshLabels {
                    server: server.to_string(),
                    outcome: outcome.as_str(),
                });
            }
        }
        for outcome in &report.token_requests {
            self.refreshes
                .get_or_create(&RefreshLabels {
                    server: server.to_string(),
                    outcome: outcome.as_str(),
                })
                .inc();
        }
        for (document, up) in &report.metadata {
            self.metadata_up
                .get_or_create(&DocumentLabels {
                    server: server.to_string(),
                    document: document.as_str(),
                })
                .set(i64::from(*up));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::MetadataDocument;

    #[test]
    fn counts_token_requests_and_keeps_the_last_metadata_state() {
        let mut registry = MetricsRegistry::default();
        let m = AuthMetrics::register(&mut registry);
        m.record("s", &AuthReport::default());
        assert!(!registry.encode().contains("mcp_auth_refresh_total{"));
        m.record(
            "s",
            &AuthReport {
                token_requests: vec![RefreshOutcome::Ok, RefreshOutcome::Unreachable],
                metadata: vec![
                    (MetadataDocument::ProtectedResource, true),
                    (MetadataDocument::AuthorizationServer, false),
                ],
                ..AuthReport::default()
            },
        );
        m.record(
            "s",
            &AuthReport {
                token_requests: vec![RefreshOutcome::Ok],
                metadata: vec![(MetadataDocument::AuthorizationServer, true)],
                ..AuthReport::default()
            },
        );
        let text = registry.encode();
        for line in [
            "mcp_auth_refresh_total{server=\"s\",outcome=\"ok\"} 2",
            "mcp_auth_refresh_total{server=\"s\",outcome=\"unreachable\"} 1",
            "mcp_auth_refresh_total{server=\"s\",outcome=\"rejected\"} 0",
            "mcp_auth_metadata_up{server=\"s\",document=\"protected_resource\"} 1",
            "mcp_auth_metadata_up{server=\"s\",document=\"authorization_server\"} 1",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }
}
