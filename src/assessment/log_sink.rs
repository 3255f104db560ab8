//! The daemon's own log lines about assessments: health changes, catalog drift, probe results.

use crate::health::HealthStatus;

use super::{Assessment, Sink};

/// Writes an assessment's news to the daemon's log (tracing).
#[derive(Debug, Default, Clone, Copy)]
pub struct LogSink;

impl Sink for LogSink {
    fn assessed(&self, a: &Assessment) {
        let server = a.name();
        if let Some(change) = &a.catalog_change {
            tracing::warn!(
                server,
                old_hash = format!("{:016x}", change.old_hash),
                new_hash = format!("{:016x}", change.new_hash),
                tools = change.tools,
                "tool catalog changed (schema drift)"
            );
        }
        if let Some(outcome) = a.new_probe() {
            tracing::debug!(
                server,
                success = outcome.success,
                duration_ms = outcome.duration.as_millis() as u64,
                summary = %outcome.summary(),
                "probe finished"
            );
        }
        if let Some(t) = &a.transition {
            let reasons = a.health.reasons.join("; ");
            if t.to == HealthStatus::Unhealthy {
                tracing::warn!(server, from = %t.from, to = %t.to, %reasons, "health changed");
            } else {
                tracing::info!(server, from = %t.from, to = %t.to, %reasons, "health changed");
            }
        }
    }
}
