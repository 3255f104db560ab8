//! The exporter's own reload families: `mcp_exporter_config_last_reload_successful` and
//! `mcp_exporter_config_last_reload_success_timestamp_seconds`, as Prometheus exposes for its
//! own configuration; recorded by src/daemon/reload.rs.

use std::time::SystemTime;

use prometheus_client::metrics::gauge::Gauge;

use crate::metric_registry::MetricsRegistry;

type FloatGauge = Gauge<f64, std::sync::atomic::AtomicU64>;

/// `mcp_exporter_config_last_reload_successful` and its success timestamp.
#[derive(Clone, Debug)]
pub struct ReloadMetrics {
    successful: Gauge,
    success_time: FloatGauge,
}

impl ReloadMetrics {
    /// Registers the reload families; the configuration loaded at start counts as a success.
    pub fn register(registry: &mut MetricsRegistry) -> Self {
        let metrics = ReloadMetrics {
            successful: registry.register(
                "mcp_exporter_config_last_reload_successful",
                "1 when the last configuration reload (SIGHUP or POST /-/reload) succeeded, 0 when the file was rejected and the running configuration kept",
                Gauge::default(),
            ),
            success_time: registry.register(
                "mcp_exporter_config_last_reload_success_timestamp_seconds",
                "Unix time of the last successful configuration load (start-up or reload)",
                FloatGauge::default(),
            ),
        };
        metrics.succeeded();
        metrics
    }

    /// Records a successful load.
    pub fn succeeded(&self) {
        self.successful.set(1);
        self.success_time
            .set(crate::wall_clock::unix_seconds(SystemTime::now()));
    }

    /// Records a rejected file.
    pub fn failed(&self) {
        self.successful.set(0);
    }
}
