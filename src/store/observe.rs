//! The history store's sink: turns each assessment into history rows (the probe result,
//! health transitions whatever caused them, session restarts, stderr lines,
//! `notifications/message` and HTTP errors) and the process samples, one per server per minute
//! (the [`Downsampler`] is its only state). Row-building; [`StoreHandle::record`] never blocks.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use crate::assessment::{Assessment, Sink};
use crate::deps::sink::CheckSink;
use crate::deps::{DependencyCheck, DependencyConfig};
use crate::health::Health;
use crate::mcp::{Notification, TransportSpec};
use crate::probe::{ProbeOutcome, ServerConfig};

use super::writer::StoreHandle;
use super::{
    DefinitionChangeRow, Level, LogRow, LogSource, ProbeRow, ProcessSampleRow, Record,
    TransitionRow,
};
use crate::probe::catalog::DefinitionChange;
use crate::process::usage::Usage;
use crate::wall_clock::unix_seconds;

/// Longest message stored from a notification.
const MAX_MESSAGE_BYTES: usize = 8192;

/// Seconds between two stored process samples of one server: the daemon samples after every
/// probe, the store keeps one sample a minute for the report's resource trends.
pub const PROCESS_SAMPLE_EVERY_SECONDS: f64 = 60.0;

/// Which process samples to keep: the first of each server, then one per
/// [`PROCESS_SAMPLE_EVERY_SECONDS`].
#[derive(Debug, Default)]
pub struct Downsampler {
    last_kept: HashMap<String, f64>,
}

impl Downsampler {
    /// Whether the sample of `server` at `ts` (Unix seconds) is kept; remembers it when it is.
    pub fn keep(&mut self, server: &str, ts: f64) -> bool {
        match self.last_kept.get(server) {
            Some(last) if ts - last < PROCESS_SAMPLE_EVERY_SECONDS => false,
            _ => {
                self.last_kept.insert(server.to_string(), ts);
                true
            }
        }
    }

    /// Forgets `server` (removed from the configuration).
    pub fn forget(&mut self, server: &str) {
        self.last_kept.remove(server);
    }
}

/// Writes assessments to the history store.
#[derive(Debug, Clone)]
pub struct HistorySink {
    store: StoreHandle,
    process_samples: Arc<Mutex<Downsampler>>,
}

impl HistorySink {
    /// A sink writing to `store`.
    pub fn new(store: StoreHandle) -> Self {
        HistorySink {
            store,
            process_samples: Arc::default(),
        }
    }
}

/// The stored row of a process sample.
pub fn process_sample_row(server: &str, ts: f64, usage: &Usage) -> ProcessSampleRow {
    ProcessSampleRow {
        ts,
        server: server.to_string(),
        processes: usage.processes,
        cpu_percent: usage.cpu_percent,
        memory_bytes: usage.memory_bytes,
        file_descriptors: usage.file_descriptors,
    }
}

impl Sink for HistorySink {
    fn server_removed(&self, server: &str) {
        if let Ok(mut d) = self.process_samples.lock() {
            d.forget(server);
        }
    }

    fn assessed(&self, a: &Assessment) {
        let server = a.name();
        // A transition is stamped with the probe that showed it, or now when a dependency
        // changed between probes.
        let ts = match a.new_probe() {
            Some(outcome) => unix_seconds(outcome.started_at),
            None => unix_seconds(SystemTime::now()),
        };
        if let Some(outcome) = a.new_probe() {
            self.store
                .record(Record::Probe(probe_row(&a.server, outcome, &a.health)));
        }
        if let Some(usage) = a.process.as_ref().and_then(|p| p.usage.as_ref()) {
            let now = unix_seconds(SystemTime::now());
            let keep = self
                .process_samples
                .lock()
                .map(|mut d| d.keep(server, now))
                .unwrap_or(false);
            if keep {
                self.store.record(Record::ProcessSample(process_sample_row(
                    server, now, usage,
                )));
            }
        }
        for change in &a.catalog.changes {
            self.store
                .record(Record::DefinitionChange(definition_change_row(
                    server, ts, change,
                )));
        }
        if a.session_restarted {
            let from = a.transition.map_or(a.health.status, |t| t.from);
            self.store.record(Record::Transition(TransitionRow {
                ts,
                server: server.to_string(),
                kind: "restart".into(),
                from_status: from.word().into(),
                to_status: a.health.status.word().into(),
                reason: "session re-established (server restarted or reconnected)".into(),
            }));
        }
        if let Some(t) = &a.transition {
            self.store.record(Record::Transition(TransitionRow {
                ts,
                server: server.to_string(),
                kind: t.kind.as_str().into(),
                from_status: t.from.word().into(),
                to_status: t.to.word().into(),
                reason: a.health.reasons.join("; "),
            }));
        }
        let now = unix_seconds(SystemTime::now());
        for line in &a.logs.stderr_lines {
            self.store.record(Record::Log(LogRow {
                ts: now,
                server: server.to_string(),
                source: LogSource::Stderr,
                level: Level::guess(line),
                logger: None,
                message: line.clone(),
            }));
        }
        for n in &a.logs.notifications {
            if let Some(row) = log_of_notification(server, n) {
                self.store.record(Record::Log(row));
            }
        }
        if let Some(failure) = a.new_probe().and_then(|o| o.failure.as_ref())
            && !matches!(a.server.transport, TransportSpec::Stdio { .. })
        {
            self.store.record(Record::Log(LogRow {
                ts,
                server: server.to_string(),
                source: LogSource::Http,
                level: Level::Error,
                logger: None,
                message: failure.to_string(),
            }));
        }
    }
}

impl CheckSink for HistorySink {
    fn checked(&self, dependency: &DependencyConfig, check: &DependencyCheck, _: &[String]) {
        self.store.record(Record::Dependency(super::DependencyRow {
            ts: unix_seconds(check.started_at),
            server: None,
            dependency: dependency.name.clone(),
            kind: dependency.spec.kind().to_string(),
            up: check.up(),
            status: check.status.word().to_string(),
            duration_ms: Some(check.duration.as_secs_f64() * 1000.0),
            error: check.reason.clone(),
        }));
    }
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
        trace_id: outcome.trace_id.clone(),
    }
}

/// The history row of one tool definition change.
pub fn definition_change_row(
    server: &str,
    ts: f64,
    change: &DefinitionChange,
) -> DefinitionChangeRow {
    DefinitionChangeRow {
        ts,
        server: server.to_string(),
        kind: change.kind.as_str().to_string(),
        tool: change.name.clone(),
        change: change.change.as_str().to_string(),
        old_sha256: change.old_sha256.clone(),
        new_sha256: change.new_sha256.clone(),
        fields: serde_json::to_string(&change.fields).unwrap_or_else(|_| "[]".into()),
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
    let data = match n.params.get("data") {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    };
    let message = crate::excerpt::cut(&data, MAX_MESSAGE_BYTES);
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
    fn process_samples_are_kept_once_a_minute_per_server() {
        let mut d = Downsampler::default();
        assert!(d.keep("a", 1000.0));
        assert!(!d.keep("a", 1030.0));
        assert!(d.keep("b", 1030.0), "each server has its own minute");
        assert!(!d.keep("a", 1059.9));
        assert!(d.keep("a", 1060.0));
        d.forget("a");
        assert!(d.keep("a", 1061.0), "a server added again starts afresh");
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
