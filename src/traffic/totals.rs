//! What a wrapper observed, as mergeable counters: [`TrafficTotals`] (counters, sent as deltas
//! and summed by the daemon) and [`TrafficState`] (gauges, sent as absolute values). Label
//! values are bounded by [`LabelCaps`] on both sides of the socket.

use std::collections::{BTreeMap, BTreeSet};

use crate::mcp::Era;
use crate::metric_registry::labels::sanitize_label_value;
use crate::probe::metrics::MAX_TOOL_LABELS_PER_SERVER;
/// The bounds of the OpenTelemetry operation and the message size histograms: the daemon's
/// families' own (src/probe/metrics.rs), so a wrapper's buckets add up exactly.
pub use crate::probe::metrics::{OPERATION_BUCKETS, SIZE_BUCKETS};

/// Upper bounds (seconds) of the request duration histogram; the last bucket is `+Inf`. The
/// same boundaries as the probes' request histograms, so real and synthetic latency read alike.
pub const DURATION_BUCKETS: [f64; 15] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
/// The `error_type` of a `tools/call` answered with `isError: true` (the semantic
/// convention's value); JSON-RPC errors use their code.
pub const TOOL_ERROR: &str = "tool_error";
/// Most distinct method label values per wrapper (and per server in the daemon); the rest
/// are counted as `other`. MCP defines about thirty methods.
pub const MAX_METHOD_LABELS: usize = 64;
/// Most distinct JSON-RPC error codes per wrapper (and per server); the rest are `other`.
pub const MAX_ERROR_CODES: usize = 32;
/// The label value a capped set folds new values into.
pub const OTHER: &str = "other";

/// Who sent a message: the MCP client (through the wrapper's stdin) or the server (the
/// child's stdout). For a request it is the side that asked; for a response, the side that
/// answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Peer {
    /// The MCP client (Claude Desktop, an IDE, an agent).
    Client,
    /// The wrapped MCP server.
    Server,
}

impl Peer {
    /// The other side.
    pub fn other(self) -> Peer {
        match self {
            Peer::Client => Peer::Server,
            Peer::Server => Peer::Client,
        }
    }

    /// `client` or `server`, as on the wire and in labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Peer::Client => "client",
            Peer::Server => "server",
        }
    }
}

/// One request series: who asked, the method, and for `tools/call` the tool.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestKey {
    /// The side that sent the request.
    pub origin: Peer,
    /// The method label (sanitized, capped).
    pub method: String,
    /// The tool label of a `tools/call` (sanitized, capped); `None` for other methods.
    pub tool: Option<String>,
}

/// Durations of answered requests: counts per [`DURATION_BUCKETS`] bucket (not cumulative;
/// the last one is `+Inf`) and their sum.
#[derive(Clone, Debug, PartialEq)]
pub struct DurationHistogram {
    /// `DURATION_BUCKETS.len() + 1` counts; entry `i` counts durations in `(b[i-1], b[i]]`.
    pub counts: [u64; DURATION_BUCKETS.len() + 1],
    /// Sum of the observed durations, seconds.
    pub sum_seconds: f64,
}

impl Default for DurationHistogram {
    fn default() -> Self {
        DurationHistogram {
            counts: [0; DURATION_BUCKETS.len() + 1],
            sum_seconds: 0.0,
        }
    }
}

impl DurationHistogram {
    /// Counts one duration.
    pub fn observe(&mut self, seconds: f64) {
        let index = DURATION_BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(DURATION_BUCKETS.len());
        self.counts[index] += 1;
        self.sum_seconds += seconds;
    }

    /// Number of observations.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Cumulative counts per bucket, as Prometheus exposes them (the last is the `+Inf` count).
    pub fn cumulative(&self) -> Vec<u64> {
        self.counts
            .iter()
            .scan(0u64, |total, c| {
                *total = total.saturating_add(*c);
                Some(*total)
            })
            .collect()
    }

    fn merge(&mut self, other: &DurationHistogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts.iter()) {
            add(mine, *theirs);
        }
        self.sum_seconds += other.sum_seconds;
    }
}

/// Counts per bucket of some fixed bounds (not cumulative; one more than the bounds, the last
/// `+Inf`) and the sum of the values; empty until the first value (a report leaves it out).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Buckets {
    /// `bounds.len() + 1` counts, or none.
    pub counts: Vec<u64>,
    /// Sum of the values counted.
    pub sum: f64,
}

impl Buckets {
    /// Counts `value` over `bounds`.
    pub fn observe(&mut self, bounds: &[f64], value: f64) {
        if self.counts.len() != bounds.len() + 1 {
            self.counts = vec![0; bounds.len() + 1];
        }
        let index = crate::metric_registry::histogram::bucket_index(bounds, value);
        add(&mut self.counts[index], 1);
        self.sum += value;
    }

    /// Number of values counted.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Adds `other` (an empty side takes the other's length; different lengths keep ours).
    pub fn merge(&mut self, other: &Buckets) {
        if other.counts.is_empty() {
            return;
        }
        if self.counts.is_empty() {
            self.counts = vec![0; other.counts.len()];
        }
        if self.counts.len() != other.counts.len() {
            return;
        }
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            add(mine, *theirs);
        }
        self.sum += other.sum;
    }
}

/// Counters of one request series.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RequestStats {
    /// Requests sent.
    pub started: u64,
    /// Answered with a result (for `tools/call`: a result without `isError: true`).
    pub ok: u64,
    /// `tools/call` answered with a result carrying `isError: true` (the tool failed; the
    /// protocol worked).
    pub tool_errors: u64,
    /// Answered with a JSON-RPC error, by error code (decimal text, or `other`).
    pub errors: BTreeMap<String, u64>,
    /// Ended by `notifications/cancelled` from the side that asked.
    pub cancelled: u64,
    /// Still unanswered when the server exited or the wrapper stopped.
    pub unanswered: u64,
    /// Dropped from the full pending table before an answer came (oldest first).
    pub evicted: u64,
    /// Request-to-response time of the answered ones (ok, tool errors, errors).
    pub duration: DurationHistogram,
    /// Sum of the request frames' sizes (bytes, without the newline).
    pub request_bytes: u64,
    /// Sum of the response frames' sizes (bytes, without the newline).
    pub response_bytes: u64,
    /// Request frame sizes over [`SIZE_BUCKETS`] (its sum is `request_bytes`).
    pub request_sizes: Buckets,
    /// Response frame sizes over [`SIZE_BUCKETS`].
    pub response_sizes: Buckets,
    /// Durations over [`OPERATION_BUCKETS`] per `error_type`: empty for a success,
    /// [`TOOL_ERROR`] for an `isError` result, the error code (as in `errors`) for a
    /// JSON-RPC error.
    pub operations: BTreeMap<String, Buckets>,
}

impl RequestStats {
    /// Requests answered with a JSON-RPC error, all codes together.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Adds `other`'s counters, its error codes passed through `code_label`. Every sum
    /// saturates: a peer's absurd counter cannot overflow the daemon's.
    pub fn merge(&mut self, other: &RequestStats, mut code_label: impl FnMut(&str) -> String) {
        add(&mut self.started, other.started);
        add(&mut self.ok, other.ok);
        add(&mut self.tool_errors, other.tool_errors);
        for (code, count) in &other.errors {
            add(self.errors.entry(code_label(code)).or_default(), *count);
        }
        add(&mut self.cancelled, other.cancelled);
        add(&mut self.unanswered, other.unanswered);
        add(&mut self.evicted, other.evicted);
        self.duration.merge(&other.duration);
        add(&mut self.request_bytes, other.request_bytes);
        add(&mut self.response_bytes, other.response_bytes);
        self.request_sizes.merge(&other.request_sizes);
        self.response_sizes.merge(&other.response_sizes);
        for (error_type, buckets) in &other.operations {
            let label = match error_type.as_str() {
                "" | TOOL_ERROR => error_type.clone(),
                code => code_label(code),
            };
            self.operations.entry(label).or_default().merge(buckets);
        }
    }
}

/// Counters of one direction of the stdio stream.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StreamStats {
    /// Newline-delimited frames (including malformed and oversized ones).
    pub messages: u64,
    /// Bytes forwarded, every byte (newlines and partial frames included).
    pub bytes: u64,
    /// Frames that are not JSON-RPC (not JSON, or JSON of the wrong shape).
    pub malformed: u64,
    /// Frames over the accounting limit: forwarded, not parsed.
    pub oversized: u64,
    /// Responses whose id matches no pending request of the other side.
    pub unmatched_responses: u64,
}

impl StreamStats {
    fn merge(&mut self, other: &StreamStats) {
        add(&mut self.messages, other.messages);
        add(&mut self.bytes, other.bytes);
        add(&mut self.malformed, other.malformed);
        add(&mut self.oversized, other.oversized);
        add(&mut self.unmatched_responses, other.unmatched_responses);
    }

    fn is_empty(&self) -> bool {
        *self == StreamStats::default()
    }
}

/// Sessions: from an `initialize` request to the server's exit or the client closing stdin.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SessionStats {
    /// Sessions begun (`initialize` requests).
    pub started: u64,
    /// Sessions ended.
    pub ended: u64,
    /// Total length of the ended sessions, seconds.
    pub seconds: f64,
}

impl SessionStats {
    fn merge(&mut self, other: &SessionStats) {
        add(&mut self.started, other.started);
        add(&mut self.ended, other.ended);
        self.seconds += other.seconds;
    }
}

/// Notifications of one method from one side.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NotificationKey {
    /// The side that sent it.
    pub origin: Peer,
    /// The method label (sanitized, capped).
    pub method: String,
}

/// Counters a wrapper accumulates: the wrapper sends them as deltas, the daemon adds the
/// deltas up per server. Every map is bounded by [`LabelCaps`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TrafficTotals {
    /// Per request series.
    pub requests: BTreeMap<RequestKey, RequestStats>,
    /// Notifications per side and method.
    pub notifications: BTreeMap<NotificationKey, u64>,
    /// The client -> server direction (the wrapper's stdin to the child's stdin).
    pub client_to_server: StreamStats,
    /// The server -> client direction (the child's stdout to the wrapper's stdout).
    pub server_to_client: StreamStats,
    /// Sessions.
    pub sessions: SessionStats,
}

impl TrafficTotals {
    /// True when nothing was counted.
    pub fn is_empty(&self) -> bool {
        self.requests.is_empty()
            && self.notifications.is_empty()
            && self.client_to_server.is_empty()
            && self.server_to_client.is_empty()
            && self.sessions == SessionStats::default()
    }

    /// The stream counters of messages sent by `sender`.
    pub fn stream_mut(&mut self, sender: Peer) -> &mut StreamStats {
        match sender {
            Peer::Client => &mut self.client_to_server,
            Peer::Server => &mut self.server_to_client,
        }
    }

    /// Adds `other` as it is (both sides already bounded by the same caps).
    pub fn merge(&mut self, other: &TrafficTotals) {
        // A key already present is not cloned: the proxy merges every exchange's delta.
        for (key, stats) in &other.requests {
            match self.requests.get_mut(key) {
                Some(mine) => mine.merge(stats, str::to_string),
                None => self
                    .requests
                    .entry(key.clone())
                    .or_default()
                    .merge(stats, str::to_string),
            }
        }
        for (key, count) in &other.notifications {
            match self.notifications.get_mut(key) {
                Some(mine) => add(mine, *count),
                None => add(self.notifications.entry(key.clone()).or_default(), *count),
            }
        }
        self.merge_streams_and_sessions(other);
    }

    /// Adds `other`, passing every label through `caps` first: how the daemon adds a
    /// wrapper's delta to a server's totals, so no peer can grow them past the caps.
    pub fn merge_capped(&mut self, other: &TrafficTotals, caps: &mut LabelCaps) {
        for (key, stats) in &other.requests {
            let key = caps.request_key(key);
            self.requests
                .entry(key)
                .or_default()
                .merge(stats, |code| caps.error_code(code));
        }
        for (key, count) in &other.notifications {
            let key = NotificationKey {
                origin: key.origin,
                method: caps.method(&key.method),
            };
            add(self.notifications.entry(key).or_default(), *count);
        }
        self.merge_streams_and_sessions(other);
    }

    fn merge_streams_and_sessions(&mut self, other: &TrafficTotals) {
        self.client_to_server.merge(&other.client_to_server);
        self.server_to_client.merge(&other.server_to_client);
        self.sessions.merge(&other.sessions);
    }
}

/// Gauges of one wrapper at the time of a report; each report replaces the previous one.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TrafficState {
    /// Requests awaiting an answer, per series.
    pub in_flight: BTreeMap<RequestKey, u64>,
    /// A session is open (an `initialize` was seen and neither side has ended it).
    pub session_active: bool,
    /// The protocol era seen: `initialize` (legacy) or `server/discover` / per-request
    /// `_meta` version (modern).
    pub era: Option<Era>,
    /// The protocol version: the one `initialize` negotiated (or asked for, until the
    /// answer), or the modern per-request version.
    pub protocol_version: Option<String>,
}

impl TrafficState {
    /// Passes every label through `caps` (the daemon's view of a peer's state).
    pub fn capped(&self, caps: &mut LabelCaps) -> TrafficState {
        let mut in_flight = BTreeMap::new();
        for (key, count) in &self.in_flight {
            add(in_flight.entry(caps.request_key(key)).or_default(), *count);
        }
        TrafficState {
            in_flight,
            session_active: self.session_active,
            era: self.era,
            protocol_version: self.protocol_version.as_deref().map(sanitize_label_value),
        }
    }
}

/// The label values one wrapper (or one server in the daemon) has used so far: methods,
/// tools and error codes are sanitized like probe labels and capped; a new value past a cap
/// becomes `other`.
#[derive(Clone, Debug, Default)]
pub struct LabelCaps {
    methods: BTreeSet<String>,
    tools: BTreeSet<String>,
    codes: BTreeSet<String>,
}

impl LabelCaps {
    /// The label for method `raw` (at most [`MAX_METHOD_LABELS`] distinct values).
    pub fn method(&mut self, raw: &str) -> String {
        capped(
            &mut self.methods,
            MAX_METHOD_LABELS,
            sanitize_label_value(raw),
        )
    }

    /// The label for tool `raw` (at most [`MAX_TOOL_LABELS_PER_SERVER`] distinct values, as
    /// for probes).
    pub fn tool(&mut self, raw: &str) -> String {
        capped(
            &mut self.tools,
            MAX_TOOL_LABELS_PER_SERVER,
            sanitize_label_value(raw),
        )
    }

    /// The label for an error code given as text: an integer keeps its canonical decimal
    /// form (at most [`MAX_ERROR_CODES`] distinct values), anything else is `other`.
    pub fn error_code(&mut self, raw: &str) -> String {
        match raw.parse::<i64>() {
            Ok(code) => capped(&mut self.codes, MAX_ERROR_CODES, code.to_string()),
            Err(_) => OTHER.to_string(),
        }
    }

    /// True when some label set has used at least half of its cap.
    pub fn half_full(&self) -> bool {
        self.methods.len() * 2 >= MAX_METHOD_LABELS
            || self.tools.len() * 2 >= MAX_TOOL_LABELS_PER_SERVER
            || self.codes.len() * 2 >= MAX_ERROR_CODES
    }

    /// The key with its labels passed through the caps.
    pub fn request_key(&mut self, key: &RequestKey) -> RequestKey {
        RequestKey {
            origin: key.origin,
            method: self.method(&key.method),
            tool: key.tool.as_deref().map(|tool| self.tool(tool)),
        }
    }
}

/// `*total += value`, saturating.
fn add(total: &mut u64, value: u64) {
    *total = total.saturating_add(value);
}

fn capped(seen: &mut BTreeSet<String>, cap: usize, value: String) -> String {
    if seen.contains(&value) {
        return value;
    }
    if seen.len() >= cap {
        return OTHER.to_string();
    }
    seen.insert(value.clone());
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(method: &str, tool: Option<&str>) -> RequestKey {
        RequestKey {
            origin: Peer::Client,
            method: method.into(),
            tool: tool.map(str::to_string),
        }
    }

    #[test]
    fn histogram_buckets_are_upper_bounds_inclusive() {
        let mut h = DurationHistogram::default();
        h.observe(0.001);
        h.observe(0.0011);
        h.observe(61.0);
        assert_eq!(h.counts[0], 1);
        assert_eq!(h.counts[1], 1);
        assert_eq!(h.counts[DURATION_BUCKETS.len()], 1);
        assert_eq!(h.count(), 3);
        assert_eq!(h.cumulative().last(), Some(&3));
        assert_eq!(h.cumulative()[1], 2);
    }

    #[test]
    fn merging_adds_every_counter() {
        let mut a = TrafficTotals::default();
        let mut b = TrafficTotals::default();
        let stats = RequestStats {
            started: 2,
            ok: 1,
            errors: BTreeMap::from([("-32601".to_string(), 1)]),
            request_bytes: 10,
            ..RequestStats::default()
        };
        b.requests.insert(key("tools/call", Some("echo")), stats);
        b.client_to_server.messages = 3;
        b.sessions.started = 1;
        a.merge(&b);
        a.merge(&b);
        let merged = &a.requests[&key("tools/call", Some("echo"))];
        assert_eq!((merged.started, merged.ok, merged.error_count()), (4, 2, 2));
        assert_eq!(merged.request_bytes, 20);
        assert!(merged.operations.is_empty() && merged.request_sizes.counts.is_empty());
        assert_eq!(a.client_to_server.messages, 6);
        assert_eq!(a.sessions.started, 2);
        assert!(!a.is_empty());
        assert!(TrafficTotals::default().is_empty());
    }

    #[test]
    fn operations_keep_success_and_tool_errors_and_cap_codes() {
        let mut one = RequestStats::default();
        for error_type in ["", TOOL_ERROR, "-32602", "7", "8"] {
            one.operations
                .entry(error_type.to_string())
                .or_default()
                .observe(&OPERATION_BUCKETS, 0.015);
        }
        one.request_sizes.observe(&SIZE_BUCKETS, 600.0);
        let mut caps = LabelCaps::default();
        for i in 0..MAX_ERROR_CODES - 1 {
            caps.error_code(&(1000 + i).to_string());
        }
        let mut sum = RequestStats::default();
        sum.merge(&one, |code| caps.error_code(code));
        sum.merge(&one, |code| caps.error_code(code));
        let keys: Vec<&str> = sum.operations.keys().map(String::as_str).collect();
        assert_eq!(keys, vec!["", "-32602", OTHER, TOOL_ERROR]);
        assert_eq!(
            sum.operations[OTHER].count(),
            4,
            "two codes past the cap, twice"
        );
        assert_eq!(
            sum.operations[""].counts[1], 2,
            "0.015 s is in (0.01, 0.02]"
        );
        assert_eq!(sum.request_sizes.counts[2], 2, "600 B is in (512, 2048]");
        assert!((sum.request_sizes.sum - 1200.0).abs() < 1e-9);
    }

    #[test]
    fn tools_past_the_probe_cap_fold_into_other() {
        let mut caps = LabelCaps::default();
        for i in 0..MAX_TOOL_LABELS_PER_SERVER {
            assert_eq!(caps.tool(&format!("t{i}")), format!("t{i}"));
        }
        assert_eq!(caps.tool("one-too-many"), OTHER);
        assert_eq!(caps.tool("t5"), "t5");
        assert_eq!(caps.tool("bad\nname"), OTHER);
    }

    #[test]
    fn labels_are_sanitized_like_probe_labels() {
        let mut caps = LabelCaps::default();
        assert_eq!(caps.method("a\nb"), "a_b");
        assert_eq!(caps.method(""), "unknown");
        assert_eq!(caps.method(&"m".repeat(500)).len(), 128);
    }

    #[test]
    fn error_codes_are_canonical_integers_and_capped() {
        let mut caps = LabelCaps::default();
        assert_eq!(caps.error_code("-32601"), "-32601");
        assert_eq!(caps.error_code("+7"), "7");
        assert_eq!(caps.error_code("nope"), OTHER);
        for i in 1..MAX_ERROR_CODES {
            caps.error_code(&i.to_string());
        }
        assert_eq!(caps.error_code("999999"), OTHER);
    }

    #[test]
    fn capped_merge_bounds_a_hostile_peer() {
        let mut hostile = TrafficTotals::default();
        for i in 0..500 {
            hostile.requests.insert(
                key(&format!("m{i}"), None),
                RequestStats {
                    started: 1,
                    ..RequestStats::default()
                },
            );
        }
        let mut caps = LabelCaps::default();
        let mut totals = TrafficTotals::default();
        totals.merge_capped(&hostile, &mut caps);
        assert_eq!(totals.requests.len(), MAX_METHOD_LABELS + 1);
        let other = &totals.requests[&key(OTHER, None)];
        assert_eq!(other.started, 500 - MAX_METHOD_LABELS as u64);
    }
}
