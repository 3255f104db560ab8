//! Turns what one server's probe loop observed into history rows: the probe result, health
//! transitions (down, degraded, recovered, restarts), stderr lines, `notifications/message`
//! and HTTP errors. Pure row-building; [`StoreHandle::record`] never blocks.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use crate::config::ServerConfig;
use crate::health::{Health, HealthStatus};
use crate::mcp::{Notification, TransportSpec};
use crate::probe::ProbeOutcome;

use super::writer::StoreHandle;
use super::{Level, LogRow, LogSource, ProbeRow, Record, TransitionRow, unix_seconds};

/// Longest message stored from a notification.
const MAX_MESSAGE_BYTES: usize = 8192;

/// Per-server state of the history recording (lives in the server's probe task).
#[derive(Debug)]
pub struct ProbeObserver {
    store: StoreHandle,
    config: Arc<ServerConfig>,
    last: HealthStatus,
    sessions: u64,
}

impl ProbeObserver {
    /// Starts observing `config`'s server; its health starts UNKNOWN.
    pub fn new(store: StoreHandle, config: Arc<ServerConfig>) -> Self {
        ProbeObserver {
            store,
            config,
            last: HealthStatus::Unknown,
            sessions: 0,
        }
    }

    /// Records one probe, the health decided from it, and the server's new log lines.
    pub fn observe(
        &mut self,
        outcome: &ProbeOutcome,
        health: &Health,
        notifications: Vec<Notification>,
        stderr_lines: Vec<String>,
    ) {
        let server = self.config.name.clone();
        let ts = unix_seconds(outcome.started_at);
        self.store
            .record(Record::Probe(probe_row(&self.config, outcome, health)));
        if outcome.new_session {
            self.sessions += 1;
            if self.sessions > 1 {
                self.store.record(Record::Transition(TransitionRow {
                    ts,
                    server: server.clone(),
                    kind: "restart".into(),
                    from_status: self.last.word().into(),
                    to_status: health.status.word().into(),
                    reason: "session re-established (server restarted or reconnected)".into(),
                }));
            }
        }
        if let Some(kind) = transition_kind(self.last, health.status) {
            self.store.record(Record::Transition(TransitionRow {
                ts,
                server: server.clone(),
                kind: kind.into(),
                from_status: self.last.word().into(),
                to_status: health.status.word().into(),
                reason: health.reasons.join("; "),
            }));
        }
        self.last = health.status;
        let now = unix_seconds(SystemTime::now());
        for line in stderr_lines {
            self.store.record(Record::Log(LogRow {
                ts: now,
                server: server.clone(),
                source: LogSource::Stderr,
                level: Level::guess(&line),
                logger: None,
                message: line,
            }));
        }
        for n in notifications {
            if let Some(row) = log_of_notification(&server, &n) {
                self.store.record(Record::Log(row));
            }
        }
        if let Some(failure) = &outcome.failure
            && !matches!(self.config.transport, TransportSpec::Stdio { .. })
        {
            self.store.record(Record::Log(LogRow {
                ts,
                server,
                source: LogSource::Http,
                level: Level::Error,
                logger: None,
                message: format!(
                    "{} at {}: {}",
                    failure.class,
                    failure.stage.as_str(),
                    failure.reason
                ),
            }));
        }
    }
}

/// The transition kind of a health change, `None` when nothing changed.
pub fn transition_kind(from: HealthStatus, to: HealthStatus) -> Option<&'static str> {
    if from == to {
        return None;
    }
    Some(match (from, to) {
        (_, HealthStatus::Unhealthy) => "down",
        (_, HealthStatus::Degraded) => "degraded",
        (HealthStatus::Unhealthy | HealthStatus::Degraded, HealthStatus::Healthy) => "recovered",
        (_, HealthStatus::Healthy) => "up",
        (_, HealthStatus::Unknown) => "unknown",
    })
}

/// The probe row of `outcome`.
pub fn probe_row(config: &ServerConfig, outcome: &ProbeOutcome, health: &Health) -> ProbeRow {
    let stages: BTreeMap<&str, f64> = outcome
        .stages
        .iter()
        .map(|(s, d)| (s.as_str(), d.as_secs_f64() * 1000.0))
        .collect();
    let error = match &outcome.failure {
        Some(f) => Some(f.reason.clone()),
        None if !health.reasons.is_empty() => Some(health.reasons.join("; ")),
        None => None,
    };
    ProbeRow {
        ts: unix_seconds(outcome.started_at),
        server: config.name.clone(),
        check_type: config.check.as_str().into(),
        up: outcome.up,
        success: outcome.success,
        health: health.status.word().into(),
        duration_ms: outcome.duration.as_secs_f64() * 1000.0,
        latency_ms: outcome.latency.map(|d| d.as_secs_f64() * 1000.0),
        failure_class: outcome.failure.as_ref().map(|f| f.class.as_str().into()),
        failure_stage: outcome.failure.as_ref().map(|f| f.stage.as_str().into()),
        error,
        stages: serde_json::to_string(&stages).unwrap_or_else(|_| "{}".into()),
    }
}

/// A `notifications/message` as a log row; other notifications give `None`.
pub fn log_of_notification(server: &str, n: &Notification) -> Option<LogRow> {
    if n.method != "notifications/message" {
        return None;
    }
    let level = n
        .params
        .get("level")
        .and_then(|l| l.as_str())
        .and_then(|l| l.parse().ok())
        .unwrap_or(Level::Info);
    let logger = n
        .params
        .get("logger")
        .and_then(|l| l.as_str())
        .map(str::to_string);
    let mut message = match n.params.get("data") {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    };
    if message.len() > MAX_MESSAGE_BYTES {
        message.truncate(message.floor_char_boundary(MAX_MESSAGE_BYTES));
        message.push('…');
    }
    Some(LogRow {
        ts: unix_seconds(n.received_at),
        server: server.to_string(),
        source: LogSource::Notification,
        level,
        logger,
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transitions_are_named_as_operators_say_them() {
        use HealthStatus::*;
        assert_eq!(transition_kind(Healthy, Healthy), None);
        assert_eq!(transition_kind(Unknown, Healthy), Some("up"));
        assert_eq!(transition_kind(Healthy, Unhealthy), Some("down"));
        assert_eq!(transition_kind(Healthy, Degraded), Some("degraded"));
        assert_eq!(transition_kind(Unhealthy, Healthy), Some("recovered"));
        assert_eq!(transition_kind(Degraded, Healthy), Some("recovered"));
    }

    #[test]
    fn notification_messages_keep_level_logger_and_data() {
        let n = Notification {
            method: "notifications/message".into(),
            params: serde_json::json!({"level": "error", "logger": "db", "data": "Error-level message"}),
            received_at: SystemTime::now(),
        };
        let row = log_of_notification("s", &n).unwrap();
        assert_eq!(row.level, Level::Error);
        assert_eq!(row.logger.as_deref(), Some("db"));
        assert_eq!(row.message, "Error-level message");
        let other = Notification {
            method: "notifications/tools/list_changed".into(),
            ..n
        };
        assert!(log_of_notification("s", &other).is_none());
    }
}
