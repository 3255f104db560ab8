//! `mcp_credential_expiry_timestamp_seconds{server, kind}`: when the credential a server's
//! probes present expires (docs/metrics.md#credentials).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::gauge::Gauge;

use super::{CredentialKind, CredentialReport};
use crate::metric_registry::MetricsRegistry;
use crate::metric_registry::labels::impl_server_label_set;
use crate::metric_registry::server_family::ServerFamily;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CredentialLabels {
    server: String,
    kind: &'static str,
}

impl_server_label_set!(CredentialLabels);

/// Handles to the credential families.
pub struct CredentialMetrics {
    expiry: ServerFamily<CredentialLabels, Gauge>,
}

impl CredentialMetrics {
    /// Registers the credential families in `registry`.
    pub fn register(registry: &mut MetricsRegistry) -> Self {
        CredentialMetrics {
            expiry: registry.server_family(
                "mcp_credential_expiry_timestamp_seconds",
                "Expiry (Unix seconds) of the credential the server's probes present: kind=bearer is the exp claim of a configured JWT bearer token, kind=oauth_access an access token the prober obtained",
            ),
        }
    }

    /// Records the credentials of a probe of `server`: one series per kind that states an
    /// expiry; kinds no longer presented are removed.
    pub fn record(&self, server: &str, report: &CredentialReport) {
        self.expiry.retain_server(server, |labels| {
            report
                .expiries
                .iter()
                .any(|e| e.kind.as_str() == labels.kind)
        });
        for expiry in &report.expiries {
            self.expiry
                .get_or_create(&labels(server, expiry.kind))
                .set(expiry.expires_at);
        }
    }
}

fn labels(server: &str, kind: CredentialKind) -> CredentialLabels {
    CredentialLabels {
        server: server.to_string(),
        kind: kind.as_str(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::CredentialExpiry;

    #[test]
    fn one_series_per_kind_stating_an_expiry() {
        let mut registry = MetricsRegistry::default();
        let m = CredentialMetrics::register(&mut registry);
        let report = |at: Option<i64>| CredentialReport {
            presented: true,
            expiries: at
                .map(|expires_at| CredentialExpiry {
                    kind: CredentialKind::Bearer,
                    expires_at,
                })
                .into_iter()
                .collect(),
            ..CredentialReport::default()
        };
        m.record("s", &report(Some(1_900_000_000)));
        let text = registry.encode();
        assert!(
            text.contains(
                "mcp_credential_expiry_timestamp_seconds{server=\"s\",kind=\"bearer\"} 1900000000"
            ),
            "{text}"
        );
        m.record("s", &report(None));
        assert!(!registry.encode().contains("kind=\"bearer\""));
    }
}
