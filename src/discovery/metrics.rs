//! The discovery families: `mcp_exporter_discovery_file_errors_total{file}` and
//! `mcp_exporter_discovery_servers`; recorded by src/discovery/mod.rs.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use crate::metric_registry::MetricsRegistry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FileLabels {
    file: String,
}

/// Counts refused discovery files and the servers discovery found.
#[derive(Clone, Debug)]
pub struct DiscoveryMetrics {
    errors: Family<FileLabels, Counter>,
    servers: Gauge,
}

impl DiscoveryMetrics {
    /// Registers the discovery families.
    pub fn register(registry: &mut MetricsRegistry) -> Self {
        DiscoveryMetrics {
            errors: registry.register(
                "mcp_exporter_discovery_file_errors",
                "Discovery files (or the directory) refused: new content that did not parse or validate; the file's last good servers were kept",
                Family::default(),
            ),
            servers: registry.register(
                "mcp_exporter_discovery_servers",
                "Servers the discovery directory's files list (after duplicates are dropped)",
                Gauge::default(),
            ),
        }
    }

    /// Counts one refusal of `file`.
    pub fn refused(&self, file: &str) {
        self.errors
            .get_or_create(&FileLabels {
                file: file.to_string(),
            })
            .inc();
    }

    /// Sets the number of discovered servers.
    pub fn set_servers(&self, n: usize) {
        self.servers.set(i64::try_from(n).unwrap_or(i64::MAX));
    }
}

impl Default for DiscoveryMetrics {
    fn default() -> Self {
        DiscoveryMetrics::register(&mut MetricsRegistry::default())
    }
}
