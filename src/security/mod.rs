//! Security events: what a monitored server did that an operator should look at.
//!
//! Sources: HTTP 401/403 from a server and credentials an OAuth authorization server or the
//! server refused (`auth_failure`), protocol violations counted by the MCP
//! client's [`WireCounters`] (`protocol_violation`, `oversize_message`, `unexpected_request`),
//! and configurable patterns matched in a server's stderr and log notifications
//! (`pattern_match`). Every event is counted in `mcp_security_events_total{server,kind}` and
//! kept, with redacted evidence, in a bounded in-memory list and a broadcast channel that the
//! store subscribes to ([`EventSink::subscribe`]).

pub mod config;
pub mod metrics;
pub mod redact;

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use regex::Regex;
use tokio::sync::broadcast;

use crate::assessment::{Assessment, Sink};
use crate::deps::sink::CheckSink;
use crate::deps::{DependencyCheck, DependencyConfig, DependencyFailure};
use crate::mcp::WireCounters;
use crate::probe::{FailureClass, ProbeOutcome, ServerConfig};

use self::config::{MAX_PATTERN_SIZE, SecurityConfig};
use self::metrics::SecurityMetrics;

/// Most events kept in memory (newest win).
pub const MAX_EVENTS_KEPT: usize = 1000;
/// Longest evidence kept per event, in bytes.
pub const MAX_EVIDENCE_BYTES: usize = 512;
/// Most pattern events counted per server and probe (a flood of matching lines is one burst).
pub const MAX_PATTERN_EVENTS_PER_PROBE: usize = 10;

/// Default patterns matched in stderr and log notifications (case-insensitive).
pub const DEFAULT_PATTERNS: [&str; 4] = [
    r"permission denied",
    r"access denied",
    r"\.\./\.\./",
    r"(?:/etc/passwd|/etc/shadow)",
];

/// The bounded vocabulary of the `kind` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// The server answered 401/403 to the prober.
    AuthFailure,
    /// A dependency refused the server's credentials (docs/metrics.md#dependencies).
    DependencyAuthFailure,
    /// Invalid JSON-RPC, garbage on stdout, responses with unknown ids.
    ProtocolViolation,
    /// A line, body or SSE event above the size limit.
    OversizeMessage,
    /// The server sent requests the prober does not serve, or flooded notifications.
    UnexpectedRequest,
    /// A configured pattern matched the server's stderr or a log notification.
    PatternMatch,
    /// The server's tool catalog differs from its approved lock (`tools_lock`,
    /// docs/tool-integrity.md); one event per new difference.
    ToolDefinitionMismatch,
}

impl EventKind {
    /// Every kind, for series removal.
    pub const ALL: [EventKind; 7] = [
        EventKind::AuthFailure,
        EventKind::DependencyAuthFailure,
        EventKind::ProtocolViolation,
        EventKind::OversizeMessage,
        EventKind::UnexpectedRequest,
        EventKind::PatternMatch,
        EventKind::ToolDefinitionMismatch,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::AuthFailure => "auth_failure",
            EventKind::DependencyAuthFailure => "dependency_auth_failure",
            EventKind::ProtocolViolation => "protocol_violation",
            EventKind::OversizeMessage => "oversize_message",
            EventKind::UnexpectedRequest => "unexpected_request",
            EventKind::PatternMatch => "pattern_match",
            EventKind::ToolDefinitionMismatch => "tool_definition_mismatch",
        }
    }
}

/// One security event, evidence already redacted and bounded; what the store persists.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SecurityEvent {
    /// Server name.
    pub server: String,
    /// What happened.
    pub kind: EventKind,
    /// Redacted evidence (at most [`MAX_EVIDENCE_BYTES`]).
    pub evidence: String,
    /// When it was observed.
    pub at: SystemTime,
}

/// Receives events: keeps the newest in memory and broadcasts them to subscribers.
#[derive(Debug)]
pub struct EventSink {
    recent: Mutex<VecDeque<SecurityEvent>>,
    tx: broadcast::Sender<SecurityEvent>,
}

impl Default for EventSink {
    fn default() -> Self {
        let (tx, _) = broadcast::channel(256);
        EventSink {
            recent: Mutex::new(VecDeque::new()),
            tx,
        }
    }
}

impl EventSink {
    /// Records one event (evidence is redacted and cut here).
    pub fn push(&self, server: &str, kind: EventKind, evidence: &str) {
        let evidence = crate::excerpt::cut(&redact::redact(evidence), MAX_EVIDENCE_BYTES);
        tracing::warn!(server, kind = kind.as_str(), %evidence, "security event");
        let event = SecurityEvent {
            server: server.to_string(),
            kind,
            evidence,
            at: SystemTime::now(),
        };
        let _ = self.tx.send(event.clone());
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        if recent.len() >= MAX_EVENTS_KEPT {
            recent.pop_front();
        }
        recent.push_back(event);
    }

    /// The newest events, oldest first.
    pub fn recent(&self) -> Vec<SecurityEvent> {
        let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        recent.iter().cloned().collect()
    }

    /// A receiver of every event from now on (the store's hook).
    pub fn subscribe(&self) -> broadcast::Receiver<SecurityEvent> {
        self.tx.subscribe()
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Seen {
    garbage: u64,
    unknown_ids: u64,
    oversize: u64,
    refused: u64,
    flood: u64,
}

impl Seen {
    fn of(c: &WireCounters) -> Seen {
        Seen {
            garbage: c.stdout_garbage_lines.load(Ordering::Relaxed),
            unknown_ids: c.unknown_response_ids.load(Ordering::Relaxed),
            oversize: c.oversize_messages.load(Ordering::Relaxed),
            refused: c.server_requests_refused.load(Ordering::Relaxed),
            flood: c.notifications_dropped.load(Ordering::Relaxed),
        }
    }
}

/// Turns probe outcomes and wire counters into events, keeps them and counts them; one per
/// daemon, fed by the scheduler as a [`Sink`] and by the dependency checks.
#[derive(Debug)]
pub struct Monitor {
    /// Where events go.
    pub sink: EventSink,
    counts: SecurityMetrics,
    servers: Mutex<BTreeMap<String, (Arc<WireCounters>, Seen)>>,
    patterns: RwLock<Vec<Regex>>,
}

/// Events found by one observation: (kind, count, evidence).
pub type Found = Vec<(EventKind, u64, String)>;

impl Monitor {
    /// A monitor with the default patterns, counting its events in `counts`.
    pub fn new(counts: SecurityMetrics) -> Self {
        let m = Monitor {
            sink: EventSink::default(),
            counts,
            servers: Mutex::default(),
            patterns: RwLock::default(),
        };
        m.set_patterns(&DEFAULT_PATTERNS.map(String::from)).ok();
        m
    }

    /// Records one event found elsewhere (e.g. a dependency refusing a server's credentials,
    /// [`EventKind::DependencyAuthFailure`]): kept with redacted evidence, logged, counted.
    pub fn record(&self, server: &str, kind: EventKind, evidence: &str) {
        self.sink.push(server, kind, evidence);
        self.counts.count_event(server, kind, 1);
    }

    /// Replaces the patterns (case-insensitive regexes); on error the old ones stay.
    pub fn set_patterns(&self, patterns: &[String]) -> Result<(), regex::Error> {
        let compiled = patterns
            .iter()
            .map(|p| {
                regex::RegexBuilder::new(p)
                    .case_insensitive(true)
                    .size_limit(MAX_PATTERN_SIZE)
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()?;
        *self.patterns.write().unwrap_or_else(|p| p.into_inner()) = compiled;
        Ok(())
    }

    /// Starts watching a server's wire counters.
    pub fn add_server(&self, server: &str, counters: Arc<WireCounters>) {
        let seen = Seen::of(&counters);
        let mut servers = self.servers.lock().unwrap_or_else(|p| p.into_inner());
        servers.insert(server.to_string(), (counters, seen));
    }

    /// Stops watching a server.
    pub fn remove_server(&self, server: &str) {
        let mut servers = self.servers.lock().unwrap_or_else(|p| p.into_inner());
        servers.remove(server);
    }

    /// Looks at one finished probe: counter deltas since the last probe, auth failures,
    /// and the stderr / log-notification text not scanned yet. Events go to the sink; the
    /// found list is returned for counting.
    pub fn observe(&self, server: &str, outcome: &ProbeOutcome) -> Found {
        let mut found: Found = Vec::new();
        // A server refusing access, or an authorization server refusing the client or a fresh
        // token: credentials someone revoked or rotated. A person having to log in
        // (`login_required`) or an authorization server that is down is not an event.
        if let Some(f) = &outcome.failure
            && matches!(
                f.class,
                FailureClass::AuthRequired | FailureClass::CredentialRejected
            )
        {
            found.push((EventKind::AuthFailure, 1, f.reason.clone()));
        }
        let text = {
            let mut servers = self.servers.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((counters, seen)) = servers.get_mut(server) {
                let now = Seen::of(counters);
                let delta = |a: u64, b: u64| a.saturating_sub(b);
                let garbage = delta(now.garbage, seen.garbage);
                let ids = delta(now.unknown_ids, seen.unknown_ids);
                if garbage + ids > 0 {
                    found.push((
                        EventKind::ProtocolViolation,
                        garbage + ids,
                        format!("{garbage} non-JSON message(s), {ids} response(s) with an unknown id since the last probe"),
                    ));
                }
                let over = delta(now.oversize, seen.oversize);
                if over > 0 {
                    found.push((
                        EventKind::OversizeMessage,
                        over,
                        format!("{over} message(s) above max_message_bytes since the last probe"),
                    ));
                }
                let refused = delta(now.refused, seen.refused);
                let flood = delta(now.flood, seen.flood);
                if refused + flood > 0 {
                    found.push((
                        EventKind::UnexpectedRequest,
                        refused + flood,
                        format!("{refused} server request(s) refused, {flood} notification(s) dropped above the rate limit since the last probe"),
                    ));
                }
                *seen = now;
                counters.take_unscanned()
            } else {
                String::new()
            }
        };
        if !text.is_empty() {
            let patterns = self.patterns.read().unwrap_or_else(|p| p.into_inner());
            let mut matches = 0;
            for line in text.lines() {
                if let Some(p) = patterns.iter().find(|p| p.is_match(line)) {
                    found.push((
                        EventKind::PatternMatch,
                        1,
                        format!("/{}/ matched: {}", p.as_str(), line.trim()),
                    ));
                    matches += 1;
                    if matches >= MAX_PATTERN_EVENTS_PER_PROBE {
                        break;
                    }
                }
            }
        }
        for (kind, n, evidence) in &found {
            self.sink.push(server, *kind, evidence);
            self.counts.count_event(server, *kind, *n);
        }
        found
    }
}

impl CheckSink for Monitor {
    /// A dependency refusing its credentials is a `dependency_auth_failure` event of each server
    /// that depends on it (or of `dependency:<name>` when none does).
    fn checked(
        &self,
        dependency: &DependencyConfig,
        check: &DependencyCheck,
        dependents: &[String],
    ) {
        if check.failure != Some(DependencyFailure::AuthFailed) {
            return;
        }
        let evidence = format!(
            "dependency {}: {}",
            dependency.name,
            check.reason.as_deref().unwrap_or("authentication failed")
        );
        if dependents.is_empty() {
            let server = format!("dependency:{}", dependency.name);
            self.record(&server, EventKind::DependencyAuthFailure, &evidence);
        }
        for server in dependents {
            self.record(server, EventKind::DependencyAuthFailure, &evidence);
        }
    }
}

impl Sink for Monitor {
    fn server_added(&self, server: &ServerConfig, counters: &Arc<WireCounters>) {
        self.add_server(&server.name, Arc::clone(counters));
    }

    fn server_removed(&self, server: &str) {
        self.remove_server(server);
    }

    fn assessed(&self, assessment: &Assessment) {
        if let Some(outcome) = assessment.new_probe() {
            self.observe(assessment.name(), outcome);
        }
        if assessment.catalog.new_mismatch
            && let Some(lock) = &assessment.catalog.lock
        {
            let path = assessment
                .server
                .tools_lock
                .as_ref()
                .map(|l| l.path.display().to_string())
                .unwrap_or_default();
            self.record(
                assessment.name(),
                EventKind::ToolDefinitionMismatch,
                &format!(
                    "{} tool(s) differ from the approved lock {path}: {}",
                    lock.unapproved(),
                    lock.summary()
                ),
            );
        }
    }
}

/// Applies a (validated) `[security]` to the monitor.
pub fn apply_config(monitor: &Monitor, config: &SecurityConfig) {
    let defaults: Vec<String> = DEFAULT_PATTERNS.iter().map(|p| p.to_string()).collect();
    let patterns = config.patterns.as_ref().unwrap_or(&defaults);
    if let Err(err) = monitor.set_patterns(patterns) {
        tracing::error!(error = %err, "security patterns rejected; keeping the previous ones");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_deltas_and_patterns_become_events() {
        let mut registry = crate::metric_registry::MetricsRegistry::default();
        let monitor = Monitor::new(SecurityMetrics::register(&mut registry));
        let counters = Arc::new(WireCounters::default());
        monitor.add_server("s", Arc::clone(&counters));
        counters
            .unknown_response_ids
            .fetch_add(3, Ordering::Relaxed);
        counters.oversize_messages.fetch_add(1, Ordering::Relaxed);
        counters.note_unscanned(b"ok line\nopen ../../etc/x: Permission denied\n", 1024);
        let outcome = ProbeOutcome::started(SystemTime::now());
        let found = monitor.observe("s", &outcome);
        let kinds: Vec<_> = found.iter().map(|(k, n, _)| (*k, *n)).collect();
        assert_eq!(
            kinds,
            [
                (EventKind::ProtocolViolation, 3),
                (EventKind::OversizeMessage, 1),
                (EventKind::PatternMatch, 1)
            ]
        );
        assert!(
            monitor.observe("s", &outcome).is_empty(),
            "deltas, not totals"
        );
        assert_eq!(monitor.sink.recent().len(), 3);
        let text = registry.encode();
        assert!(
            text.contains("mcp_security_events_total{server=\"s\",kind=\"protocol_violation\"} 3"),
            "events are counted where they are found:\n{text}"
        );
    }
}
