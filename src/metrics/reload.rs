//! The exporter's own reload families: `mcp_exporter_config_last_reload_successful` and
//! `mcp_exporter_config_last_reload_success_timestamp_seconds`, as Prometheus exposes for its
//! own configuration; recorded by src/daemon/reload.rs. They also keep the family switches the
//! registry was built with, which a reload cannot change (docs/metrics.md#profiles).

use std::time::SystemTime;

use prometheus_client::metrics::gauge::Gauge;

use crate::metric_registry::{FamilySwitches, MetricsRegistry};

type FloatGauge = Gauge<f64, std::sync::atomic::AtomicU64>;

/// `mcp_exporter_config_last_reload_successful` and its success timestamp.
#[derive(Clone, Debug)]
pub struct ReloadMetrics {
    successful: Gauge,
    success_time: FloatGauge,
    /// The switches the registry was built with: the families registered at start.
    families: FamilySwitches,
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
            families: registry.switches(),
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

    /// The family switches (`[exporter] metrics` and its per-family keys) the running registry
    /// was built with: families are registered at start, so a reload that would change them is
    /// refused (src/daemon/reload.rs).
    pub fn registered_families(&self) -> FamilySwitches {
        self.families
    }

    /// Records a rejected file.
    pub fn failed(&self) {
        self.successful.set(0);
    }
}
