//! The wrapper -> daemon wire format, protocol 1: newline-delimited JSON over a Unix stream
//! socket, one message per line, each an object with one key naming its kind:
//!
//! ```text
//! {"hello":{"protocol":1,"wrapper_version":"0.1.0","name":"memory","command":"npx","args":["-y","@modelcontextprotocol/server-memory"],"pid":4242,"instance":"4242-1767225600123456789"}}
//! {"report":{"requests":[{"origin":"client","method":"tools/call","tool":"echo","started":2,"ok":2,"durations":[0,0,1,1,0,0,0,0,0,0,0,0,0,0,0,0],"duration_sum":0.0071,"request_bytes":180,"response_bytes":210}],"client":{"messages":3,"bytes":420},"server":{"messages":3,"bytes":560},"state":{"session_active":true,"era":"legacy","protocol_version":"2025-11-25"}}}
//! {"exit":{"status":0}}
//! ```
//!
//! `hello` comes first on every connection. A `report` carries the counters added since the
//! previous report (deltas: the daemon adds them up) and the gauges now (`state`, replacing
//! the previous one). `exit` is the status the wrapper exits with. Zero counters and empty
//! lists are left out. docs/traffic.md describes every field and the limits below, which the
//! daemon enforces: a message breaking one ends the connection.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::mcp::Era;

use super::totals::{
    Buckets, DURATION_BUCKETS, DurationHistogram, NotificationKey, OPERATION_BUCKETS, Peer,
    RequestKey, RequestStats, SIZE_BUCKETS, SessionStats, StreamStats, TrafficState, TrafficTotals,
};

/// The protocol version a `hello` names; a daemon refuses any other.
pub const PROTOCOL: u32 = 1;
/// Longest line (message) accepted, newline included.
pub const MAX_LINE_BYTES: usize = 1024 * 1024;
/// Most request, notification or in-flight entries in one report (each list).
pub const MAX_REPORT_ENTRIES: usize = 4096;
/// Longest text field (name, command, one argument, a label before it is sanitized).
pub const MAX_TEXT_BYTES: usize = 4096;
/// Most command-line arguments in a `hello`.
pub const MAX_ARGS: usize = 256;
/// Most error codes in one request entry.
pub const MAX_CODES_PER_ENTRY: usize = 64;

/// A message that breaks the protocol or its limits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The line is longer than [`MAX_LINE_BYTES`].
    #[error("message longer than {MAX_LINE_BYTES} bytes")]
    TooLong,
    /// Not a message of this protocol.
    #[error("unreadable message: {0}")]
    Syntax(String),
    /// A `hello` for another protocol version.
    #[error("protocol {0} is not supported (this daemon speaks protocol {PROTOCOL})")]
    Protocol(u32),
    /// A field over its limit or with an impossible value.
    #[error("invalid message: {0}")]
    Invalid(String),
}

/// One line of the protocol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WireMessage {
    /// Who is reporting; first on every connection.
    Hello(Hello),
    /// Counters since the previous report, gauges now.
    Report(Report),
    /// The wrapper is exiting with this status.
    Exit(Exit),
}

/// The wrapper introduces itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    /// [`PROTOCOL`].
    pub protocol: u32,
    /// The mcp-exporter version of the wrapper.
    pub wrapper_version: String,
    /// `--name`, or the command's file name.
    pub name: String,
    /// The wrapped command as given.
    pub command: String,
    /// Its arguments as given.
    pub args: Vec<String>,
    /// The wrapper's process id (the daemon also reads the peer's credentials).
    pub pid: u32,
    /// Tells this wrapper run from others with the same pid, across reconnections.
    pub instance: String,
}

/// The wrapper's exit status (the child's code, or 128 + signal).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exit {
    /// The status.
    pub status: i32,
}

/// Counters since the previous report and gauges now.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Request series.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requests: Vec<RequestEntry>,
    /// Notification series.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notifications: Vec<NotificationEntry>,
    /// Frames the client sent.
    #[serde(default, skip_serializing_if = "is_default")]
    pub client: WireStream,
    /// Frames the server sent.
    #[serde(default, skip_serializing_if = "is_default")]
    pub server: WireStream,
    /// Sessions.
    #[serde(default, skip_serializing_if = "is_default")]
    pub sessions: WireSessions,
    /// Gauges now.
    #[serde(default)]
    pub state: WireState,
}

/// Who sent a request or notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WirePeer {
    /// The MCP client.
    Client,
    /// The MCP server.
    Server,
}

impl From<Peer> for WirePeer {
    fn from(peer: Peer) -> Self {
        match peer {
            Peer::Client => WirePeer::Client,
            Peer::Server => WirePeer::Server,
        }
    }
}

impl From<WirePeer> for Peer {
    fn from(peer: WirePeer) -> Self {
        match peer {
            WirePeer::Client => Peer::Client,
            WirePeer::Server => Peer::Server,
        }
    }
}

/// One request series' counters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestEntry {
    /// Who asked.
    pub origin: WirePeer,
    /// Method.
    pub method: String,
    /// Tool of a `tools/call`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// See [`RequestStats`] for the meaning of each counter.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub started: u64,
    /// Answered with a result.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub ok: u64,
    /// `tools/call` results with `isError: true`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub tool_errors: u64,
    /// JSON-RPC errors by code.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub errors: BTreeMap<String, u64>,
    /// Cancelled.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cancelled: u64,
    /// Unanswered when the server exited.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub unanswered: u64,
    /// Evicted from the pending table.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub evicted: u64,
    /// Duration counts per bucket (not cumulative), `DURATION_BUCKETS.len() + 1` of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub durations: Vec<u64>,
    /// Sum of the durations, seconds.
    #[serde(default, skip_serializing_if = "is_zero_f64")]
    pub duration_sum: f64,
    /// Request bytes.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub request_bytes: u64,
    /// Response bytes.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub response_bytes: u64,
    /// Request sizes per [`SIZE_BUCKETS`] bucket (not cumulative, `+Inf` last); their sum is
    /// `request_bytes`. Optional: a wrapper may leave it out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub request_sizes: Vec<u64>,
    /// Response sizes per [`SIZE_BUCKETS`] bucket; their sum is `response_bytes`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub response_sizes: Vec<u64>,
    /// Durations per [`OPERATION_BUCKETS`] bucket by `error_type`. Optional.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub operations: Vec<OperationEntry>,
}

/// Durations of one request series' answers of one `error_type`, over [`OPERATION_BUCKETS`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OperationEntry {
    /// Left out for a success; `tool_error` for an `isError` result; the JSON-RPC error code.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error_type: String,
    /// Counts per bucket (not cumulative, `+Inf` last).
    pub counts: Vec<u64>,
    /// Sum of the durations, seconds.
    #[serde(default, skip_serializing_if = "is_zero_f64")]
    pub sum: f64,
}

/// Notifications of one method from one side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationEntry {
    /// Who sent them.
    pub origin: WirePeer,
    /// Method.
    pub method: String,
    /// How many.
    pub count: u64,
}

/// Frame counters of one direction.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireStream {
    /// Frames.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub messages: u64,
    /// Bytes.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub bytes: u64,
    /// Malformed frames.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub malformed: u64,
    /// Oversized frames.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub oversized: u64,
    /// Responses matching no request.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub unmatched_responses: u64,
}

/// Session counters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WireSessions {
    /// Begun.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub started: u64,
    /// Ended.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub ended: u64,
    /// Length of the ended ones, seconds.
    #[serde(default, skip_serializing_if = "is_zero_f64")]
    pub seconds: f64,
}

/// Gauges of the wrapper now.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WireState {
    /// Requests in flight per series.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub in_flight: Vec<InFlightEntry>,
    /// A session is open.
    #[serde(default)]
    pub session_active: bool,
    /// `legacy` or `modern`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub era: Option<String>,
    /// Protocol version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol_version: Option<String>,
}

/// Requests in flight of one series.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InFlightEntry {
    /// Who asked.
    pub origin: WirePeer,
    /// Method.
    pub method: String,
    /// Tool of a `tools/call`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// How many.
    pub count: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

fn is_zero_f64(v: &f64) -> bool {
    *v == 0.0
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// The message as one line, newline included.
pub fn encode(message: &WireMessage) -> Vec<u8> {
    // Serializing these plain structs cannot fail (string keys, finite numbers).
    let mut line = serde_json::to_vec(message).unwrap_or_default();
    line.push(b'\n');
    line
}

/// Reads one line (with or without its newline). Checks the syntax and the size only; see
/// [`Hello::validate`] and [`Report::into_update`] for the rest.
pub fn decode(line: &[u8]) -> Result<WireMessage, WireError> {
    if line.len() > MAX_LINE_BYTES {
        return Err(WireError::TooLong);
    }
    serde_json::from_slice(line).map_err(|e| WireError::Syntax(e.to_string()))
}

fn check_text(field: &str, value: &str) -> Result<(), WireError> {
    if value.len() > MAX_TEXT_BYTES {
        return Err(WireError::Invalid(format!(
            "{field} is longer than {MAX_TEXT_BYTES} bytes"
        )));
    }
    Ok(())
}

fn check_count(field: &str, len: usize) -> Result<(), WireError> {
    if len > MAX_REPORT_ENTRIES {
        return Err(WireError::Invalid(format!(
            "{field} has more than {MAX_REPORT_ENTRIES} entries"
        )));
    }
    Ok(())
}

fn check_seconds(field: &str, value: f64) -> Result<(), WireError> {
    if !value.is_finite() || value < 0.0 {
        return Err(WireError::Invalid(format!("{field} is {value}")));
    }
    Ok(())
}

impl Hello {
    /// The hello of this wrapper.
    pub fn new(name: &str, command: &str, args: &[String], instance: &str) -> Hello {
        Hello {
            protocol: PROTOCOL,
            wrapper_version: env!("CARGO_PKG_VERSION").to_string(),
            name: name.to_string(),
            command: command.to_string(),
            args: args.to_vec(),
            pid: std::process::id(),
            instance: instance.to_string(),
        }
    }

    /// Checks the protocol version and the limits.
    pub fn validate(&self) -> Result<(), WireError> {
        if self.protocol != PROTOCOL {
            return Err(WireError::Protocol(self.protocol));
        }
        check_text("wrapper_version", &self.wrapper_version)?;
        check_text("name", &self.name)?;
        check_text("command", &self.command)?;
        check_text("instance", &self.instance)?;
        if self.args.len() > MAX_ARGS {
            return Err(WireError::Invalid(format!(
                "more than {MAX_ARGS} arguments"
            )));
        }
        for arg in &self.args {
            check_text("an argument", arg)?;
        }
        Ok(())
    }
}

impl Report {
    /// The report of a delta and the gauges now.
    pub fn new(totals: &TrafficTotals, state: &TrafficState) -> Report {
        Report {
            requests: totals
                .requests
                .iter()
                .map(|(key, stats)| request_entry(key, stats))
                .collect(),
            notifications: totals
                .notifications
                .iter()
                .map(|(key, count)| NotificationEntry {
                    origin: key.origin.into(),
                    method: key.method.clone(),
                    count: *count,
                })
                .collect(),
            client: wire_stream(&totals.client_to_server),
            server: wire_stream(&totals.server_to_client),
            sessions: WireSessions {
                started: totals.sessions.started,
                ended: totals.sessions.ended,
                seconds: totals.sessions.seconds,
            },
            state: WireState {
                in_flight: state
                    .in_flight
                    .iter()
                    .map(|(key, count)| InFlightEntry {
                        origin: key.origin.into(),
                        method: key.method.clone(),
                        tool: key.tool.clone(),
                        count: *count,
                    })
                    .collect(),
                session_active: state.session_active,
                era: state.era.map(|era| era.to_string()),
                protocol_version: state.protocol_version.clone(),
            },
        }
    }

    /// Checks every limit and returns the delta and the gauges. Labels are still the peer's
    /// raw text: pass them through [`super::totals::LabelCaps`] before using them.
    pub fn into_update(self) -> Result<(TrafficTotals, TrafficState), WireError> {
        check_count("requests", self.requests.len())?;
        check_count("notifications", self.notifications.len())?;
        check_count("in_flight", self.state.in_flight.len())?;
        let mut totals = TrafficTotals::default();
        for entry in self.requests {
            let (key, stats) = entry.into_stats()?;
            totals
                .requests
                .entry(key)
                .or_default()
                .merge(&stats, str::to_string);
        }
        for entry in self.notifications {
            check_text("method", &entry.method)?;
            let key = NotificationKey {
                origin: entry.origin.into(),
                method: entry.method,
            };
            let count = totals.notifications.entry(key).or_default();
            *count = count.saturating_add(entry.count);
        }
        totals.client_to_server = stream_stats(self.client);
        totals.server_to_client = stream_stats(self.server);
        check_seconds("sessions.seconds", self.sessions.seconds)?;
        totals.sessions = SessionStats {
            started: self.sessions.started,
            ended: self.sessions.ended,
            seconds: self.sessions.seconds,
        };
        let mut state = TrafficState {
            session_active: self.state.session_active,
            ..TrafficState::default()
        };
        for entry in self.state.in_flight {
            check_text("method", &entry.method)?;
            if let Some(tool) = &entry.tool {
                check_text("tool", tool)?;
            }
            let key = RequestKey {
                origin: entry.origin.into(),
                method: entry.method,
                tool: entry.tool,
            };
            let count = state.in_flight.entry(key).or_default();
            *count = count.saturating_add(entry.count);
        }
        state.era = match self.state.era.as_deref() {
            None => None,
            Some("legacy") => Some(Era::Legacy),
            Some("modern") => Some(Era::Modern),
            Some(other) => {
                return Err(WireError::Invalid(format!(
                    "era {other:?} is neither legacy nor modern"
                )));
            }
        };
        if let Some(version) = &self.state.protocol_version {
            check_text("protocol_version", version)?;
        }
        state.protocol_version = self.state.protocol_version;
        Ok((totals, state))
    }
}

impl RequestEntry {
    fn into_stats(self) -> Result<(RequestKey, RequestStats), WireError> {
        check_text("method", &self.method)?;
        if let Some(tool) = &self.tool {
            check_text("tool", tool)?;
        }
        if self.errors.len() > MAX_CODES_PER_ENTRY {
            return Err(WireError::Invalid(format!(
                "more than {MAX_CODES_PER_ENTRY} error codes in one entry"
            )));
        }
        for code in self.errors.keys() {
            check_text("error code", code)?;
        }
        let mut duration = DurationHistogram::default();
        if !self.durations.is_empty() {
            if self.durations.len() != duration.counts.len() {
                return Err(WireError::Invalid(format!(
                    "durations has {} buckets, not {}",
                    self.durations.len(),
                    DURATION_BUCKETS.len() + 1
                )));
            }
            duration.counts.copy_from_slice(&self.durations);
        }
        check_seconds("duration_sum", self.duration_sum)?;
        duration.sum_seconds = self.duration_sum;
        let request_sizes = sizes("request_sizes", self.request_sizes, self.request_bytes)?;
        let response_sizes = sizes("response_sizes", self.response_sizes, self.response_bytes)?;
        if self.operations.len() > MAX_CODES_PER_ENTRY + 2 {
            return Err(WireError::Invalid(format!(
                "more than {} operation entries in one entry",
                MAX_CODES_PER_ENTRY + 2
            )));
        }
        let mut operations: BTreeMap<String, Buckets> = BTreeMap::new();
        for entry in self.operations {
            check_text("error_type", &entry.error_type)?;
            check_buckets("operations.counts", &entry.counts, OPERATION_BUCKETS.len())?;
            check_seconds("operations.sum", entry.sum)?;
            operations
                .entry(entry.error_type)
                .or_default()
                .merge(&Buckets {
                    counts: entry.counts,
                    sum: entry.sum,
                });
        }
        let key = RequestKey {
            origin: self.origin.into(),
            method: self.method,
            tool: self.tool,
        };
        let stats = RequestStats {
            started: self.started,
            ok: self.ok,
            tool_errors: self.tool_errors,
            errors: self.errors,
            cancelled: self.cancelled,
            unanswered: self.unanswered,
            evicted: self.evicted,
            duration,
            request_bytes: self.request_bytes,
            response_bytes: self.response_bytes,
            request_sizes,
            response_sizes,
            operations,
        };
        Ok((key, stats))
    }
}

fn request_entry(key: &RequestKey, stats: &RequestStats) -> RequestEntry {
    let durations = if stats.duration.count() == 0 {
        Vec::new()
    } else {
        stats.duration.counts.to_vec()
    };
    RequestEntry {
        origin: key.origin.into(),
        method: key.method.clone(),
        tool: key.tool.clone(),
        started: stats.started,
        ok: stats.ok,
        tool_errors: stats.tool_errors,
        errors: stats.errors.clone(),
        cancelled: stats.cancelled,
        unanswered: stats.unanswered,
        evicted: stats.evicted,
        durations,
        duration_sum: stats.duration.sum_seconds,
        request_bytes: stats.request_bytes,
        response_bytes: stats.response_bytes,
        request_sizes: stats.request_sizes.counts.clone(),
        response_sizes: stats.response_sizes.counts.clone(),
        operations: stats
            .operations
            .iter()
            .map(|(error_type, buckets)| OperationEntry {
                error_type: error_type.clone(),
                counts: buckets.counts.clone(),
                sum: buckets.sum,
            })
            .collect(),
    }
}

/// Checks that `counts` is empty or holds `bounds + 1` buckets.
fn check_buckets(field: &str, counts: &[u64], bounds: usize) -> Result<(), WireError> {
    if counts.is_empty() || counts.len() == bounds + 1 {
        return Ok(());
    }
    Err(WireError::Invalid(format!(
        "{field} has {} buckets, not {}",
        counts.len(),
        bounds + 1
    )))
}

/// A size histogram from its bucket counts and the byte total that is its sum.
fn sizes(field: &str, counts: Vec<u64>, total: u64) -> Result<Buckets, WireError> {
    check_buckets(field, &counts, SIZE_BUCKETS.len())?;
    let sum = if counts.is_empty() { 0.0 } else { total as f64 };
    Ok(Buckets { counts, sum })
}

fn wire_stream(s: &StreamStats) -> WireStream {
    WireStream {
        messages: s.messages,
        bytes: s.bytes,
        malformed: s.malformed,
        oversized: s.oversized,
        unmatched_responses: s.unmatched_responses,
    }
}

fn stream_stats(s: WireStream) -> StreamStats {
    StreamStats {
        messages: s.messages,
        bytes: s.bytes,
        malformed: s.malformed,
        oversized: s.oversized,
        unmatched_responses: s.unmatched_responses,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (TrafficTotals, TrafficState) {
        let mut totals = TrafficTotals::default();
        let key = RequestKey {
            origin: Peer::Client,
            method: "tools/call".into(),
            tool: Some("echo".into()),
        };
        let mut stats = RequestStats {
            started: 3,
            ok: 1,
            tool_errors: 1,
            errors: BTreeMap::from([("-32602".to_string(), 1)]),
            request_bytes: 300,
            response_bytes: 900,
            ..RequestStats::default()
        };
        // Exactly representable, so the text round trip is exact.
        stats.duration.observe(0.125);
        stats.duration.observe(0.5);
        stats.request_sizes.observe(&SIZE_BUCKETS, 300.0);
        stats.response_sizes.observe(&SIZE_BUCKETS, 900.0);
        for error_type in ["", "tool_error"] {
            stats
                .operations
                .entry(error_type.to_string())
                .or_default()
                .observe(&OPERATION_BUCKETS, 0.25);
        }
        totals.requests.insert(key.clone(), stats);
        totals.notifications.insert(
            NotificationKey {
                origin: Peer::Server,
                method: "notifications/message".into(),
            },
            4,
        );
        totals.client_to_server.messages = 5;
        totals.server_to_client.bytes = 1234;
        totals.sessions.started = 1;
        let state = TrafficState {
            in_flight: BTreeMap::from([(key, 1)]),
            session_active: true,
            era: Some(Era::Legacy),
            protocol_version: Some("2025-11-25".into()),
        };
        (totals, state)
    }

    #[test]
    fn a_report_round_trips() {
        let (totals, state) = sample();
        let line = encode(&WireMessage::Report(Report::new(&totals, &state)));
        assert!(line.ends_with(b"\n"));
        let WireMessage::Report(report) = decode(&line).expect("decodes") else {
            panic!("not a report")
        };
        assert_eq!(report.into_update(), Ok((totals, state)));
    }

    #[test]
    fn zero_counters_are_left_out() {
        let line = encode(&WireMessage::Report(Report::default()));
        assert_eq!(
            String::from_utf8_lossy(&line),
            "{\"report\":{\"state\":{\"session_active\":false}}}\n"
        );
        let exit = encode(&WireMessage::Exit(Exit { status: 3 }));
        assert_eq!(
            String::from_utf8_lossy(&exit),
            "{\"exit\":{\"status\":3}}\n"
        );
    }

    #[test]
    fn hello_is_checked() {
        let hello = Hello::new("memory", "npx", &["-y".into(), "x".into()], "1-2");
        assert_eq!(hello.validate(), Ok(()));
        let line = encode(&WireMessage::Hello(hello.clone()));
        assert_eq!(decode(&line), Ok(WireMessage::Hello(hello.clone())));
        let future = Hello {
            protocol: 2,
            ..hello.clone()
        };
        assert_eq!(future.validate(), Err(WireError::Protocol(2)));
        let long = Hello {
            command: "x".repeat(MAX_TEXT_BYTES + 1),
            ..hello.clone()
        };
        assert!(matches!(long.validate(), Err(WireError::Invalid(_))));
        let many = Hello {
            args: vec!["a".into(); MAX_ARGS + 1],
            ..hello
        };
        assert!(matches!(many.validate(), Err(WireError::Invalid(_))));
    }

    #[test]
    fn broken_reports_are_refused() {
        let bad = [
            r#"{"report":{"requests":[{"origin":"client","method":"m","durations":[1,2]}]}}"#,
            r#"{"report":{"requests":[{"origin":"client","method":"m","duration_sum":-1}]}}"#,
            r#"{"report":{"requests":[{"origin":"client","method":"m","request_sizes":[1]}]}}"#,
            r#"{"report":{"requests":[{"origin":"client","method":"m","operations":[{"counts":[1]}]}]}}"#,
            r#"{"report":{"requests":[{"origin":"client","method":"m","operations":[{"counts":[0,0,0,0,0,0,0,0,0,0,0,0,0,0,1],"sum":-2}]}]}}"#,
            r#"{"report":{"requests":[{"origin":"robot","method":"m"}]}}"#,
            r#"{"report":{"requests":[{"origin":"client","method":"m","started":-1}]}}"#,
            r#"{"report":{"state":{"era":"future"}}}"#,
            r#"{"shout":{}}"#,
            r#"{"report":{}} {"report":{}}"#,
            "not json",
        ];
        for line in bad {
            let refused = decode(line.as_bytes()).and_then(|m| match m {
                WireMessage::Report(r) => r.into_update().map(|_| ()),
                _ => Ok(()),
            });
            assert!(refused.is_err(), "{line}");
        }
        let huge = vec![b' '; MAX_LINE_BYTES + 1];
        assert_eq!(decode(&huge), Err(WireError::TooLong));
    }

    #[test]
    fn too_many_entries_are_refused() {
        let entry = NotificationEntry {
            origin: WirePeer::Client,
            method: "m".into(),
            count: 1,
        };
        let report = Report {
            notifications: vec![entry; MAX_REPORT_ENTRIES + 1],
            ..Report::default()
        };
        assert!(matches!(report.into_update(), Err(WireError::Invalid(_))));
    }

    #[test]
    fn unknown_fields_are_ignored_for_forward_compatibility() {
        let line = br#"{"report":{"client":{"messages":1,"future_field":7},"state":{"session_active":true,"new":1}}}"#;
        let WireMessage::Report(report) = decode(line).expect("decodes") else {
            panic!("not a report")
        };
        let (totals, state) = report.into_update().expect("valid");
        assert_eq!(totals.client_to_server.messages, 1);
        assert!(state.session_active);
    }
}
