//! The daemon's own log lines about assessments: health changes, catalog drift, probe results.

use crate::health::HealthStatus;

use super::{Assessment, Sink};

/// Longest old or new text of a changed tool field written to the log (the history store keeps
/// the whole text).
const LOGGED_TEXT_BYTES: usize = 2048;

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
        for change in &a.catalog.changes {
            tracing::warn!(
                server,
                kind = change.kind.as_str(),
                tool = %change.name,
                change = change.change.as_str(),
                fields = %change.field_names(),
                old_sha256 = change.old_sha256.as_deref().unwrap_or("-"),
                new_sha256 = change.new_sha256.as_deref().unwrap_or("-"),
                "tool definition changed"
            );
            for field in &change.fields {
                tracing::warn!(
                    server,
                    kind = change.kind.as_str(),
                    tool = %change.name,
                    field = %field.field,
                    old = %crate::excerpt::cut(field.old.as_deref().unwrap_or("(absent)"), LOGGED_TEXT_BYTES),
                    new = %crate::excerpt::cut(field.new.as_deref().unwrap_or("(absent)"), LOGGED_TEXT_BYTES),
                    "tool definition field changed"
                );
            }
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
