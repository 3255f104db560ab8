//! The certificate families: the earliest not-after of the chain an HTTPS server or HTTP
//! dependency presented, and the TLS version it negotiated (docs/metrics.md#tls).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use super::TlsObservation;
use crate::metric_registry::MetricsRegistry;
use crate::metric_registry::labels::{ServerLabels, impl_server_label_set};
use crate::metric_registry::server_family::ServerFamily;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServerVersionLabels {
    server: String,
    version: &'static str,
}

impl_server_label_set!(ServerVersionLabels);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DependencyLabels {
    dependency: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DependencyVersionLabels {
    dependency: String,
    version: &'static str,
}

/// Handles to the certificate families.
pub struct TlsMetrics {
    server_not_after: ServerFamily<ServerLabels, Gauge>,
    server_version: ServerFamily<ServerVersionLabels, Gauge>,
    dependency_not_after: Family<DependencyLabels, Gauge>,
    dependency_version: Family<DependencyVersionLabels, Gauge>,
}

impl TlsMetrics {
    /// Registers the certificate families in `registry`.
    pub fn register(registry: &mut MetricsRegistry) -> Self {
        TlsMetrics {
            server_not_after: registry.server_family(
                "mcp_tls_cert_not_after_timestamp_seconds",
                "Earliest not-after (Unix seconds) of the certificate chain the HTTPS server presented on its last verified connection (leaf and intermediates, like blackbox_exporter's probe_ssl_earliest_cert_expiry)",
            ),
            server_version: registry.server_family(
                "mcp_tls_version_info",
                "TLS version the HTTPS server negotiated on the last probe's connection; value is always 1",
            ),
            dependency_not_after: registry.register(
                "mcp_dependency_tls_cert_not_after_timestamp_seconds",
                "Earliest not-after (Unix seconds) of the certificate chain the HTTPS dependency presented on its last verified connection",
                Family::default(),
            ),
            dependency_version: registry.register(
                "mcp_dependency_tls_version_info",
                "TLS version the HTTPS dependency negotiated on its last check's connection; value is always 1",
                Family::default(),
            ),
        }
    }

    /// Records what a probe of `server` saw of TLS; nothing when it made no HTTPS request
    /// (the last values stay).
    pub fn record_server(&self, server: &str, seen: Option<&TlsObservation>) {
        let Some(seen) = seen else { return };
        self.server_not_after
            .get_or_create(&ServerLabels::new(server))
            .set(seen.cert_not_after);
        self.server_version
            .retain_server(server, |labels| labels.version == seen.version);
        self.server_version
            .get_or_create(&ServerVersionLabels {
                server: server.to_string(),
                version: seen.version,
            })
            .set(1);
    }

    /// Records what a check of `dependency` saw of TLS; nothing when it made no HTTPS request.
    pub fn record_dependency(&self, dependency: &str, seen: Option<&TlsObservation>) {
        let Some(seen) = seen else { return };
        let labels = DependencyLabels {
            dependency: dependency.to_string(),
        };
        self.dependency_not_after
            .get_or_create(&labels)
            .set(seen.cert_not_after);
        self.remove_dependency_versions(dependency, Some(seen.version));
        self.dependency_version
            .get_or_create(&DependencyVersionLabels {
                dependency: dependency.to_string(),
                version: seen.version,
            })
            .set(1);
    }

    /// Drops the series of a dependency that left the configuration.
    pub fn remove_dependency(&self, dependency: &str) {
        self.dependency_not_after.remove(&DependencyLabels {
            dependency: dependency.to_string(),
        });
        self.remove_dependency_versions(dependency, None);
    }

    fn remove_dependency_versions(&self, dependency: &str, keep: Option<&'static str>) {
        for version in ["TLS 1.0", "TLS 1.1", "TLS 1.2", "TLS 1.3", "unknown"] {
            if Some(version) != keep {
                self.dependency_version.remove(&DependencyVersionLabels {
                    dependency: dependency.to_string(),
                    version,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(at: i64, version: &'static str) -> TlsObservation {
        TlsObservation {
            cert_not_after: at,
            leaf_not_after: at,
            certificates: 2,
            version,
        }
    }

    #[test]
    fn the_newest_observation_wins_and_removal_clears() {
        let mut registry = MetricsRegistry::default();
        let m = TlsMetrics::register(&mut registry);
        m.record_server("s", Some(&seen(100, "TLS 1.2")));
        m.record_server("s", Some(&seen(200, "TLS 1.3")));
        m.record_server("s", None);
        m.record_dependency("api", Some(&seen(300, "TLS 1.2")));
        m.record_dependency("api", Some(&seen(400, "TLS 1.3")));
        let text = registry.encode();
        for needle in [
            "mcp_tls_cert_not_after_timestamp_seconds{server=\"s\"} 200",
            "mcp_tls_version_info{server=\"s\",version=\"TLS 1.3\"} 1",
            "mcp_dependency_tls_cert_not_after_timestamp_seconds{dependency=\"api\"} 400",
            "mcp_dependency_tls_version_info{dependency=\"api\",version=\"TLS 1.3\"} 1",
        ] {
            assert!(text.contains(needle), "{needle} missing:\n{text}");
        }
        assert!(!text.contains("TLS 1.2"), "{text}");
        m.remove_dependency("api");
        registry.remove_server("s");
        let text = registry.encode();
        assert!(!text.contains("dependency=\"api\""), "{text}");
        assert!(!text.contains("server=\"s\""), "{text}");
    }
}
