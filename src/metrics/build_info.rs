//! `mcp_exporter_build_info`: the exporter's version and the compiler that built it.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use crate::metric_registry::MetricsRegistry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
    rustc_version: &'static str,
}

/// The build-info family; its one series is set at registration and never changes.
pub struct BuildInfo;

impl BuildInfo {
    /// Registers `mcp_exporter_build_info` in `registry`, with its series at 1.
    pub fn register(registry: &mut MetricsRegistry) -> Self {
        let family: Family<BuildLabels, Gauge> = registry.register(
            "mcp_exporter_build_info",
            "Version of the exporter; value is always 1",
            Family::default(),
        );
        family
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
                rustc_version: option_env!("MCP_EXPORTER_RUSTC").unwrap_or("unknown"),
            })
            .set(1);
        BuildInfo
    }
}
