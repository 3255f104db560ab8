//! Metrics of the history store and of the monitored servers' log lines.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::store::{Level, Record};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LogLabels {
    server: String,
    level: String,
}

/// `mcp_store_*` and `mcp_log_lines_total`.
#[derive(Debug, Default)]
pub struct StoreMetrics {
    writes: Family<KindLabels, Counter>,
    dropped: Family<KindLabels, Counter>,
    size: Gauge,
    log_lines: Family<LogLabels, Counter>,
}

impl StoreMetrics {
    /// Registers the families in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let m = StoreMetrics::default();
        registry.register(
            "mcp_store_writes",
            "Rows written to the history store, by kind (probe, dependency, transition, log)",
            m.writes.clone(),
        );
        registry.register(
            "mcp_store_dropped",
            "Rows not written to the history store because its queue was full or the write failed, by kind",
            m.dropped.clone(),
        );
        registry.register(
            "mcp_store_size_bytes",
            "Size of the history store on disk (database plus write-ahead log), measured by the retention task",
            m.size.clone(),
        );
        registry.register(
            "mcp_log_lines",
            "Log lines observed from a monitored server (stderr lines, notifications/message, HTTP errors), by level",
            m.log_lines.clone(),
        );
        m
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

    /// Counts one log line of `server`.
    pub fn log_line(&self, server: &str, level: Level) {
        self.log_lines
            .get_or_create(&LogLabels {
                server: server.into(),
                level: level.as_str().into(),
            })
            .inc();
    }

    /// Drops the log-line series of a server that left the configuration.
    pub fn remove_server(&self, server: &str) {
        for level in Level::ALL {
            self.log_lines.remove(&LogLabels {
                server: server.into(),
                level: level.as_str().into(),
            });
        }
    }
}
