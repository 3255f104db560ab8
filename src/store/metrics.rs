//! Metrics of the history store and of the monitored servers' log lines.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use crate::metric_registry::MetricsRegistry;
use crate::metric_registry::labels::impl_server_label_set;
use crate::metric_registry::server_family::ServerFamily;
use crate::store::{Level, Record};

type FloatGauge = Gauge<f64, AtomicU64>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LogLabels {
    server: String,
    level: &'static str,
}

impl_server_label_set!(LogLabels);

/// `mcp_store_*` and `mcp_log_lines_total`.
#[derive(Debug)]
pub struct StoreMetrics {
    writes: Family<KindLabels, Counter>,
    dropped: Family<KindLabels, Counter>,
    size: Gauge,
    log_lines: ServerFamily<LogLabels, Counter>,
    last_backup: FloatGauge,
    backup_interval: FloatGauge,
    backup_failures: Counter,
}

impl StoreMetrics {
    /// Registers the store and log-line families in `registry`.
    pub fn register(registry: &mut MetricsRegistry) -> Self {
        StoreMetrics {
            writes: registry.register(
                "mcp_store_writes",
                "Rows written to the history store, by kind (probe, dependency, transition, log)",
                Family::default(),
            ),
            dropped: registry.register(
                "mcp_store_dropped",
                "Rows not written to the history store because its queue was full or the write failed, by kind",
                Family::default(),
            ),
            size: registry.register(
                "mcp_store_size_bytes",
                "Size of the history store on disk (database plus write-ahead log), measured by the retention task",
                Gauge::default(),
            ),
            log_lines: registry.server_family(
                "mcp_log_lines",
                "Log lines observed from a monitored server (stderr lines, notifications/message, HTTP errors), by level",
            ),
            last_backup: registry.register(
                "mcp_store_last_backup_timestamp_seconds",
                "Unix time the newest successful scheduled backup of the history store started (read from the store at start); 0 when none is recorded",
                FloatGauge::default(),
            ),
            backup_interval: registry.register(
                "mcp_store_backup_interval_seconds",
                "Period of the `[store] backup` schedule; 0 when no schedule is configured",
                FloatGauge::default(),
            ),
            backup_failures: registry.register(
                "mcp_store_backup_failures",
                "Scheduled backups of the history store that failed (VACUUM INTO, the quick_check of the copy, or the file system)",
                Counter::default(),
            ),
        }
    }

    /// Creates the `kind` series at zero (called when the store is enabled).
    pub fn init_kinds(&self) {
        for kind in Record::KINDS {
            let labels = KindLabels { kind: kind.into() };
            let _ = self.writes.get_or_create(&labels);
            let _ = self.dropped.get_or_create(&labels);
        }
    }

    /// Counts rows written.
    pub fn written(&self, kind: &str, n: u64) {
        self.writes
            .get_or_create(&KindLabels { kind: kind.into() })
            .inc_by(n);
    }

    /// Counts rows dropped.
    pub fn dropped(&self, kind: &str, n: u64) {
        self.dropped
            .get_or_create(&KindLabels { kind: kind.into() })
            .inc_by(n);
    }

    /// Sets the store size.
    pub fn set_size(&self, bytes: u64) {
        self.size.set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    /// Sets the start time of the newest successful backup.
    pub fn set_last_backup(&self, unix: f64) {
        self.last_backup.set(unix);
    }

    /// Sets the period of the backup schedule.
    pub fn set_backup_interval(&self, every: Duration) {
        self.backup_interval.set(every.as_secs_f64());
    }

    /// Counts one failed scheduled backup.
    pub fn backup_failed(&self) {
        self.backup_failures.inc();
    }

    /// Counts one log line of `server`.
    pub fn log_line(&self, server: &str, level: Level) {
        self.log_lines
            .get_or_create(&LogLabels {
                server: server.into(),
                level: level.as_str(),
            })
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_sizes_and_log_lines_are_counted() {
        let mut registry = MetricsRegistry::default();
        let m = StoreMetrics::register(&mut registry);
        m.init_kinds();
        m.written("probe", 2);
        m.dropped("log", 1);
        m.set_size(4096);
        m.log_line("s", Level::Error);
        m.log_line("s", Level::Error);
        m.set_last_backup(1_800_000_000.5);
        m.set_backup_interval(Duration::from_secs(86_400));
        m.backup_failed();
        let text = registry.encode();
        for needle in [
            "mcp_store_writes_total{kind=\"probe\"} 2",
            "mcp_store_writes_total{kind=\"transition\"} 0",
            "mcp_store_dropped_total{kind=\"log\"} 1",
            "mcp_store_size_bytes 4096",
            "mcp_log_lines_total{server=\"s\",level=\"error\"} 2",
            "mcp_store_last_backup_timestamp_seconds 1800000000.5",
            "mcp_store_backup_interval_seconds 86400",
            "mcp_store_backup_failures_total 1",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
        registry.remove_server("s");
        assert!(!registry.encode().contains("server=\"s\""));
    }
}
