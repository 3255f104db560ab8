//! The family of the trace export: `mcp_exporter_spans_dropped_total` (docs/metrics.md).

use prometheus_client::metrics::counter::Counter;

use crate::metric_registry::MetricsRegistry;

/// The span export's counters.
#[derive(Clone, Debug, Default)]
pub struct OtelMetrics {
    /// Spans lost: the export queue was full, or their batch failed (collector down).
    pub spans_dropped: Counter,
}

impl OtelMetrics {
    /// Registers the families; they stay at zero while traces are off.
    pub fn register(registry: &mut MetricsRegistry) -> Self {
        OtelMetrics {
            spans_dropped: registry.register(
                "mcp_exporter_spans_dropped",
                "Spans of probe traces dropped: the export queue was full, or the collector refused or could not be reached",
                Counter::default(),
            ),
        }
    }
}
