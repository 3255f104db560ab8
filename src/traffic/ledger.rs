//! The accounting of one wrapped stdio server: fed the frames each side sent (already
//! forwarded), it matches responses to requests by id in both directions, times them, tells
//! JSON-RPC errors from failed tool calls, follows cancellations and sessions, and keeps
//! counters until the reporter takes them as a delta. Pure: the caller passes the time.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::mcp::Era;
use crate::metric_registry::labels::sanitize_label_value;

use super::parse::{Message, Outcome, RequestId};
use super::totals::{
    LabelCaps, NotificationKey, OPERATION_BUCKETS, Peer, RequestKey, RequestStats, SIZE_BUCKETS,
    TOOL_ERROR, TrafficState, TrafficTotals,
};

/// Most requests awaiting an answer that are remembered (both directions together); when
/// full, the oldest is dropped and counted as evicted.
pub const MAX_PENDING_REQUESTS: usize = 4096;

/// Most answers kept while their request has not been read yet (see [`Ledger`]); past it,
/// the oldest is counted as unmatched.
pub const MAX_EARLY_ANSWERS: usize = 64;
/// How long an answer may wait for its request to be read before it counts as unmatched.
pub const EARLY_ANSWER_GRACE: Duration = Duration::from_secs(1);

/// The method that opens a legacy-era session.
const INITIALIZE: &str = "initialize";
/// The modern-era discovery method.
const SERVER_DISCOVER: &str = "server/discover";
/// The method whose results may carry `isError`.
const TOOLS_CALL: &str = "tools/call";
/// The notification that ends a request early.
const CANCELLED: &str = "notifications/cancelled";

#[derive(Debug)]
struct Pending {
    key: RequestKey,
    started: Instant,
    /// Position in the eviction order.
    seq: u64,
}

/// Requests awaiting their answer, by who asked and the id; bounded, oldest evicted first.
#[derive(Debug)]
struct PendingTable {
    by_id: HashMap<(Peer, RequestId), Pending>,
    order: BTreeMap<u64, (Peer, RequestId)>,
    next_seq: u64,
    cap: usize,
}

impl PendingTable {
    fn new(cap: usize) -> Self {
        PendingTable {
            by_id: HashMap::new(),
            order: BTreeMap::new(),
            next_seq: 0,
            cap: cap.max(1),
        }
    }

    /// Adds a request; returns what it displaced: a request with the same id (reused id) or
    /// the oldest one when the table was full.
    fn insert(&mut self, who: Peer, id: RequestId, key: RequestKey, at: Instant) -> Displaced {
        let mut displaced = Displaced::default();
        if let Some(old) = self.remove(who, &id) {
            displaced.reused = Some(old.key);
        } else if self.by_id.len() >= self.cap
            && let Some((_, oldest)) = self.order.pop_first()
            && let Some(old) = self.by_id.remove(&oldest)
        {
            displaced.evicted = Some(old.key);
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.order.insert(seq, (who, id.clone()));
        self.by_id.insert(
            (who, id),
            Pending {
                key,
                started: at,
                seq,
            },
        );
        displaced
    }

    fn remove(&mut self, who: Peer, id: &RequestId) -> Option<Pending> {
        let pending = self.by_id.remove(&(who, id.clone()))?;
        self.order.remove(&pending.seq);
        Some(pending)
    }

    fn drain(&mut self) -> impl Iterator<Item = Pending> + '_ {
        self.order.clear();
        self.by_id.drain().map(|(_, p)| p)
    }

    fn len(&self) -> usize {
        self.by_id.len()
    }
}

/// How a response ended its request, owned (it may wait for the request).
#[derive(Debug, Clone, PartialEq)]
enum Answer {
    Result {
        is_error: bool,
        protocol_version: Option<String>,
    },
    Error {
        code: Option<i64>,
    },
}

impl From<Outcome<'_>> for Answer {
    fn from(outcome: Outcome<'_>) -> Self {
        match outcome {
            Outcome::Result {
                is_error,
                protocol_version,
            } => Answer::Result {
                is_error,
                protocol_version: protocol_version.map(|v| v.into_owned()),
            },
            Outcome::Error { code } => Answer::Error { code },
        }
    }
}

/// A response read before its request: the two directions are read by two threads, each
/// after forwarding, so a fast answer can be read first. It waits here for its request.
#[derive(Debug)]
struct EarlyAnswer {
    asker: Peer,
    id: RequestId,
    answer: Answer,
    size: u64,
    at: Instant,
}

#[derive(Debug, Default)]
struct Displaced {
    reused: Option<RequestKey>,
    evicted: Option<RequestKey>,
}

/// Counters and in-flight requests of one wrapped server.
///
/// Frames are stamped with the time their last chunk was read, before it was forwarded; so a
/// request's stamp always precedes its answer's, even when the answer (read by the other
/// direction's thread) is recorded first. Such an early answer waits, bounded in number and
/// time, for its request.
#[derive(Debug)]
pub struct Ledger {
    totals: TrafficTotals,
    pending: PendingTable,
    early: VecDeque<EarlyAnswer>,
    labels: LabelCaps,
    session_started: Option<Instant>,
    era: Option<Era>,
    protocol_version: Option<String>,
}

impl Default for Ledger {
    fn default() -> Self {
        Ledger::new(MAX_PENDING_REQUESTS)
    }
}

impl Ledger {
    /// A ledger remembering at most `max_pending` unanswered requests.
    pub fn new(max_pending: usize) -> Self {
        Ledger {
            totals: TrafficTotals::default(),
            pending: PendingTable::new(max_pending),
            early: VecDeque::new(),
            labels: LabelCaps::default(),
            session_started: None,
            era: None,
            protocol_version: None,
        }
    }

    /// `bytes` more bytes were forwarded from `sender`.
    pub fn record_bytes(&mut self, sender: Peer, bytes: usize) {
        self.totals.stream_mut(sender).bytes += bytes as u64;
    }

    /// A frame from `sender` was too long to read.
    pub fn record_oversized(&mut self, sender: Peer) {
        let stream = self.totals.stream_mut(sender);
        stream.messages += 1;
        stream.oversized += 1;
    }

    /// A frame of `size` bytes from `sender` was read (see [`super::parse::parse_frame`]);
    /// `at` is when its last chunk was read, before it was forwarded.
    pub fn record_frame(
        &mut self,
        sender: Peer,
        parsed: Result<Vec<Message<'_>>, super::parse::Malformed>,
        size: usize,
        at: Instant,
    ) {
        let stream = self.totals.stream_mut(sender);
        stream.messages += 1;
        let messages = match parsed {
            Ok(messages) => messages,
            Err(_) => {
                stream.malformed += 1;
                return;
            }
        };
        // A batch's size is shared among its messages.
        let share = (size / messages.len().max(1)) as u64;
        for message in messages {
            self.record_message(sender, message, share, at);
        }
    }

    fn record_message(&mut self, sender: Peer, message: Message<'_>, size: u64, at: Instant) {
        match message {
            Message::Request {
                id,
                method,
                name,
                protocol_version,
                modern_version,
            } => {
                let tool =
                    (method == TOOLS_CALL).then(|| self.labels.tool(name.as_deref().unwrap_or("")));
                let key = RequestKey {
                    origin: sender,
                    method: self.labels.method(&method),
                    tool,
                };
                if sender == Peer::Client {
                    self.note_protocol(
                        &method,
                        protocol_version.as_deref(),
                        modern_version.as_deref(),
                        at,
                    );
                }
                let stats = self.totals.requests.entry(key.clone()).or_default();
                stats.started += 1;
                stats.request_bytes += size;
                stats.request_sizes.observe(&SIZE_BUCKETS, size as f64);
                if let Some(early) = self.take_early(sender, &id) {
                    let pending = Pending {
                        key,
                        started: at,
                        seq: 0,
                    };
                    self.complete(pending, early.answer, early.size, early.at);
                    return;
                }
                let displaced = self.pending.insert(sender, id, key, at);
                if let Some(key) = displaced.reused {
                    self.stats(key).unanswered += 1;
                }
                if let Some(key) = displaced.evicted {
                    self.stats(key).evicted += 1;
                }
            }
            Message::Notification { method, request_id } => {
                if method == CANCELLED
                    && let Some(id) = request_id
                    && let Some(pending) = self.pending.remove(sender, &id)
                {
                    self.stats(pending.key).cancelled += 1;
                }
                let key = NotificationKey {
                    origin: sender,
                    method: self.labels.method(&method),
                };
                *self.totals.notifications.entry(key).or_default() += 1;
            }
            Message::Response { id, outcome } => {
                self.expire_early(at);
                let Some(id) = id else {
                    self.totals.stream_mut(sender).unmatched_responses += 1;
                    return;
                };
                let asker = sender.other();
                match self.pending.remove(asker, &id) {
                    Some(pending) => self.complete(pending, outcome.into(), size, at),
                    None => {
                        if self.early.len() >= MAX_EARLY_ANSWERS
                            && let Some(oldest) = self.early.pop_front()
                        {
                            self.totals
                                .stream_mut(oldest.asker.other())
                                .unmatched_responses += 1;
                        }
                        self.early.push_back(EarlyAnswer {
                            asker,
                            id,
                            answer: outcome.into(),
                            size,
                            at,
                        });
                    }
                }
            }
        }
    }

    /// Counts the answer to `pending`, read at `at`.
    fn complete(&mut self, pending: Pending, answer: Answer, size: u64, at: Instant) {
        if pending.key.method == INITIALIZE
            && let Answer::Result {
                protocol_version: Some(version),
                ..
            } = &answer
        {
            self.protocol_version = Some(sanitize_label_value(version));
        }
        let is_tool_call = pending.key.method == TOOLS_CALL;
        let elapsed = at.saturating_duration_since(pending.started).as_secs_f64();
        let code_label = match &answer {
            Answer::Error { code } => Some(
                code.map(|c| self.labels.error_code(&c.to_string()))
                    .unwrap_or_else(|| super::totals::OTHER.to_string()),
            ),
            Answer::Result { .. } => None,
        };
        let stats = self.stats(pending.key);
        stats.duration.observe(elapsed);
        stats.response_bytes += size;
        stats.response_sizes.observe(&SIZE_BUCKETS, size as f64);
        let error_type = match (answer, code_label) {
            (Answer::Error { .. }, Some(code)) => {
                *stats.errors.entry(code.clone()).or_default() += 1;
                code
            }
            (Answer::Result { is_error: true, .. }, _) if is_tool_call => {
                stats.tool_errors += 1;
                TOOL_ERROR.to_string()
            }
            _ => {
                stats.ok += 1;
                String::new()
            }
        };
        stats
            .operations
            .entry(error_type)
            .or_default()
            .observe(&OPERATION_BUCKETS, elapsed);
    }

    /// The early answer to `asker`'s request `id`, if one is waiting.
    fn take_early(&mut self, asker: Peer, id: &RequestId) -> Option<EarlyAnswer> {
        let index = self
            .early
            .iter()
            .position(|e| e.asker == asker && &e.id == id)?;
        self.early.remove(index)
    }

    /// Early answers whose request never came within the grace are unmatched.
    fn expire_early(&mut self, now: Instant) {
        while let Some(oldest) = self.early.front() {
            if now.saturating_duration_since(oldest.at) < EARLY_ANSWER_GRACE {
                break;
            }
            let answerer = oldest.asker.other();
            self.early.pop_front();
            self.totals.stream_mut(answerer).unmatched_responses += 1;
        }
    }

    /// Session, era and version bookkeeping for a request from the client.
    fn note_protocol(
        &mut self,
        method: &str,
        asked_version: Option<&str>,
        modern_version: Option<&str>,
        at: Instant,
    ) {
        if method == INITIALIZE {
            self.end_session(at);
            self.session_started = Some(at);
            self.totals.sessions.started += 1;
            self.era = Some(Era::Legacy);
            self.protocol_version = asked_version.map(sanitize_label_value);
        } else if method == SERVER_DISCOVER {
            self.era = Some(Era::Modern);
        }
        if let Some(version) = modern_version {
            self.era = Some(Era::Modern);
            self.protocol_version = Some(sanitize_label_value(version));
        }
    }

    fn stats(&mut self, key: RequestKey) -> &mut RequestStats {
        self.totals.requests.entry(key).or_default()
    }

    fn end_session(&mut self, at: Instant) {
        if let Some(started) = self.session_started.take() {
            self.totals.sessions.ended += 1;
            self.totals.sessions.seconds += at.saturating_duration_since(started).as_secs_f64();
        }
    }

    /// The client closed the wrapper's stdin: the session ends (answers may still come).
    pub fn client_closed(&mut self, at: Instant) {
        self.end_session(at);
    }

    /// The server exited: the session ends and every pending request stays unanswered.
    pub fn server_exited(&mut self, at: Instant) {
        self.end_session(at);
        for early in std::mem::take(&mut self.early) {
            self.totals
                .stream_mut(early.asker.other())
                .unmatched_responses += 1;
        }
        let orphans: Vec<RequestKey> = self.pending.drain().map(|p| p.key).collect();
        for key in orphans {
            self.stats(key).unanswered += 1;
        }
    }

    /// The counters since the last call (the delta to report); the ledger starts from zero.
    pub fn take_delta(&mut self) -> TrafficTotals {
        std::mem::take(&mut self.totals)
    }

    /// The gauges now: requests in flight per series, session, era and version.
    pub fn state(&self) -> TrafficState {
        let mut in_flight: BTreeMap<RequestKey, u64> = BTreeMap::new();
        for pending in self.pending.by_id.values() {
            *in_flight.entry(pending.key.clone()).or_default() += 1;
        }
        TrafficState {
            in_flight,
            session_active: self.session_started.is_some(),
            era: self.era,
            protocol_version: self.protocol_version.clone(),
        }
    }

    /// Requests awaiting an answer.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// True when `asker`'s request `id` awaits its answer here.
    pub fn is_pending(&self, asker: Peer, id: &RequestId) -> bool {
        self.pending.by_id.contains_key(&(asker, id.clone()))
    }

    /// `asker`'s request `id` was cancelled by a notification read elsewhere (the proxy reads
    /// a cancellation in another HTTP exchange than its request): counted `cancelled` when it
    /// was waiting here. Returns whether it was.
    pub fn cancel(&mut self, asker: Peer, id: &RequestId) -> bool {
        match self.pending.remove(asker, id) {
            Some(pending) => {
                self.stats(pending.key).cancelled += 1;
                true
            }
            None => false,
        }
    }

    /// Readies the ledger for another exchange once its delta, state and pending requests
    /// were taken: whatever is left (early answers, session, protocol) is dropped as a new
    /// ledger would not have it; the label caps and the tables' room are kept, so labels seen
    /// before cost no allocation (the caps are reset once half used: an exchange always has
    /// room for at least half of each cap, far more labels than one request body carries).
    pub fn recycle(&mut self) {
        self.totals = TrafficTotals::default();
        self.pending.by_id.clear();
        self.pending.order.clear();
        self.early.clear();
        self.session_started = None;
        self.era = None;
        self.protocol_version = None;
        if self.labels.half_full() {
            self.labels = LabelCaps::default();
        }
    }

    /// Hands over the requests still awaiting an answer (they leave this ledger uncounted;
    /// see [`Ledger::adopt_pending`]).
    pub fn take_pending(&mut self) -> Vec<PendingRequest> {
        self.pending.order.clear();
        self.pending
            .by_id
            .drain()
            .map(|((asker, id), pending)| PendingRequest {
                asker,
                id,
                key: pending.key,
                started: pending.started,
            })
            .collect()
    }

    /// Takes over requests another ledger counted as started: their answers are matched here
    /// (an answer already waiting here as early completes them at once).
    pub fn adopt_pending(&mut self, requests: Vec<PendingRequest>) {
        for request in requests {
            if let Some(early) = self.take_early(request.asker, &request.id) {
                let pending = Pending {
                    key: request.key,
                    started: request.started,
                    seq: 0,
                };
                self.complete(pending, early.answer, early.size, early.at);
                continue;
            }
            let displaced =
                self.pending
                    .insert(request.asker, request.id, request.key, request.started);
            if let Some(key) = displaced.reused {
                self.stats(key).unanswered += 1;
            }
            if let Some(key) = displaced.evicted {
                self.stats(key).evicted += 1;
            }
        }
    }
}

/// A request awaiting its answer, handed from one ledger to another.
#[derive(Debug)]
pub struct PendingRequest {
    asker: Peer,
    id: RequestId,
    key: RequestKey,
    started: Instant,
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::parse::parse_frame;
    use super::*;

    struct Feed {
        ledger: Ledger,
        t0: Instant,
    }

    impl Feed {
        fn new(max_pending: usize) -> Self {
            Feed {
                ledger: Ledger::new(max_pending),
                t0: Instant::now(),
            }
        }

        fn send(&mut self, sender: Peer, ms: u64, frame: &str) {
            let at = self.t0 + Duration::from_millis(ms);
            self.ledger
                .record_frame(sender, parse_frame(frame.as_bytes()), frame.len(), at);
        }
    }

    fn key(origin: Peer, method: &str, tool: Option<&str>) -> RequestKey {
        RequestKey {
            origin,
            method: method.into(),
            tool: tool.map(str::to_string),
        }
    }

    #[test]
    fn a_session_of_tool_calls_lands_in_the_right_buckets() {
        let mut f = Feed::new(100);
        f.send(Peer::Client, 0, r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25"}}"#);
        f.send(
            Peer::Server,
            5,
            r#"{"jsonrpc":"2.0","id":0,"result":{"protocolVersion":"2025-06-18"}}"#,
        );
        f.send(
            Peer::Client,
            6,
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        );
        f.send(
            Peer::Client,
            10,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}"#,
        );
        f.send(
            Peer::Client,
            11,
            r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"fail"}}"#,
        );
        f.send(
            Peer::Client,
            12,
            r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"nope"}}"#,
        );
        f.send(
            Peer::Server,
            13,
            r#"{"jsonrpc":"2.0","id":3,"error":{"code":-32602,"message":"unknown"}}"#,
        );
        f.send(
            Peer::Server,
            14,
            r#"{"jsonrpc":"2.0","id":2,"result":{"content":[],"isError":true}}"#,
        );
        f.send(
            Peer::Server,
            40,
            r#"{"jsonrpc":"2.0","id":1,"result":{"content":[]}}"#,
        );

        let state = f.ledger.state();
        assert_eq!(state.era, Some(Era::Legacy));
        assert_eq!(state.protocol_version.as_deref(), Some("2025-06-18"));
        assert!(state.session_active);
        assert!(state.in_flight.is_empty());

        let t = f.ledger.take_delta();
        let echo = &t.requests[&key(Peer::Client, "tools/call", Some("echo"))];
        assert_eq!((echo.started, echo.ok, echo.tool_errors), (1, 1, 0));
        assert_eq!(echo.duration.count(), 1);
        assert!((echo.duration.sum_seconds - 0.030).abs() < 1e-9);
        let fail = &t.requests[&key(Peer::Client, "tools/call", Some("fail"))];
        assert_eq!((fail.ok, fail.tool_errors, fail.error_count()), (0, 1, 0));
        let nope = &t.requests[&key(Peer::Client, "tools/call", Some("nope"))];
        assert_eq!(nope.errors.get("-32602"), Some(&1));
        assert_eq!(nope.tool_errors, 0);
        // The semantic-convention histograms tell the three outcomes apart by error_type.
        let error_types = |stats: &RequestStats| -> Vec<(String, u64)> {
            stats
                .operations
                .iter()
                .map(|(k, b)| (k.clone(), b.count()))
                .collect()
        };
        assert_eq!(error_types(echo), vec![(String::new(), 1)]);
        assert_eq!(error_types(fail), vec![(TOOL_ERROR.to_string(), 1)]);
        assert_eq!(error_types(nope), vec![("-32602".to_string(), 1)]);
        assert_eq!(echo.request_sizes.count(), 1);
        assert_eq!(echo.response_sizes.count(), 1);
        assert!((echo.request_sizes.sum - echo.request_bytes as f64).abs() < 1e-9);
        let init = &t.requests[&key(Peer::Client, "initialize", None)];
        assert_eq!(init.ok, 1);
        assert_eq!(
            t.notifications[&NotificationKey {
                origin: Peer::Client,
                method: "notifications/initialized".into()
            }],
            1
        );
        assert_eq!(t.client_to_server.messages, 5);
        assert_eq!(t.server_to_client.messages, 4);
        assert_eq!(t.sessions.started, 1);
        assert!(f.ledger.take_delta().is_empty(), "a delta is taken once");
    }

    #[test]
    fn server_requests_are_matched_in_the_other_direction() {
        let mut f = Feed::new(100);
        // Both sides use id 1 at once: they are different requests.
        f.send(
            Peer::Client,
            0,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"sample"}}"#,
        );
        f.send(
            Peer::Server,
            1,
            r#"{"jsonrpc":"2.0","id":1,"method":"sampling/createMessage","params":{}}"#,
        );
        assert_eq!(f.ledger.state().in_flight.len(), 2);
        f.send(
            Peer::Client,
            3,
            r#"{"jsonrpc":"2.0","id":1,"result":{"role":"assistant"}}"#,
        );
        f.send(
            Peer::Server,
            4,
            r#"{"jsonrpc":"2.0","id":1,"result":{"content":[]}}"#,
        );
        let t = f.ledger.take_delta();
        assert_eq!(
            t.requests[&key(Peer::Server, "sampling/createMessage", None)].ok,
            1
        );
        assert_eq!(
            t.requests[&key(Peer::Client, "tools/call", Some("sample"))].ok,
            1
        );
        assert_eq!(t.server_to_client.unmatched_responses, 0);
    }

    #[test]
    fn cancellation_ends_a_request_and_a_late_answer_is_unmatched() {
        let mut f = Feed::new(100);
        f.send(
            Peer::Client,
            0,
            r#"{"jsonrpc":"2.0","id":"a","method":"tools/call","params":{"name":"slow"}}"#,
        );
        f.send(
            Peer::Client,
            5,
            r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"a"}}"#,
        );
        assert_eq!(f.ledger.pending_len(), 0);
        f.send(Peer::Server, 9, r#"{"jsonrpc":"2.0","id":"a","result":{}}"#);
        // The late answer waits out the grace for a request that never comes.
        f.send(
            Peer::Server,
            2000,
            r#"{"jsonrpc":"2.0","id":"b","result":{}}"#,
        );
        let t = f.ledger.take_delta();
        let slow = &t.requests[&key(Peer::Client, "tools/call", Some("slow"))];
        assert_eq!((slow.cancelled, slow.ok), (1, 0));
        assert_eq!(t.server_to_client.unmatched_responses, 1);
    }

    #[test]
    fn an_answer_read_before_its_request_still_matches_with_the_right_duration() {
        let mut f = Feed::new(100);
        // The client's thread read the request at 0 ms but recorded it after the server's
        // thread recorded the answer (read at 3 ms).
        f.send(
            Peer::Server,
            3,
            r#"{"jsonrpc":"2.0","id":1,"result":{"content":[]}}"#,
        );
        assert_eq!(f.ledger.pending_len(), 0);
        f.send(
            Peer::Client,
            0,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"fast"}}"#,
        );
        let t = f.ledger.take_delta();
        let fast = &t.requests[&key(Peer::Client, "tools/call", Some("fast"))];
        assert_eq!((fast.started, fast.ok), (1, 1));
        assert!((fast.duration.sum_seconds - 0.003).abs() < 1e-9);
        assert_eq!(t.server_to_client.unmatched_responses, 0);
        assert!(f.ledger.state().in_flight.is_empty());
    }

    #[test]
    fn early_answers_are_bounded() {
        let mut f = Feed::new(100);
        for id in 0..(MAX_EARLY_ANSWERS as u64 + 10) {
            f.send(
                Peer::Server,
                1,
                &format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{{}}}}"#),
            );
        }
        assert_eq!(f.ledger.early.len(), MAX_EARLY_ANSWERS);
        assert_eq!(
            f.ledger.take_delta().server_to_client.unmatched_responses,
            10
        );
    }

    #[test]
    fn a_full_pending_table_evicts_the_oldest() {
        let mut f = Feed::new(2);
        for id in 1..=3 {
            f.send(
                Peer::Client,
                id,
                &format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"ping"}}"#),
            );
        }
        assert_eq!(f.ledger.pending_len(), 2);
        f.send(Peer::Server, 9, r#"{"jsonrpc":"2.0","id":1,"result":{}}"#);
        f.send(Peer::Server, 9, r#"{"jsonrpc":"2.0","id":3,"result":{}}"#);
        assert_eq!(
            f.ledger.state().in_flight[&key(Peer::Client, "ping", None)],
            1
        );
        f.ledger.server_exited(f.t0 + Duration::from_millis(10));
        let t = f.ledger.take_delta();
        let ping = &t.requests[&key(Peer::Client, "ping", None)];
        assert_eq!(
            (ping.started, ping.evicted, ping.ok, ping.unanswered),
            (3, 1, 1, 1)
        );
        assert_eq!(t.server_to_client.unmatched_responses, 1);
    }

    #[test]
    fn the_server_exiting_leaves_pending_requests_unanswered_and_ends_the_session() {
        let mut f = Feed::new(100);
        f.send(
            Peer::Client,
            0,
            r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{}}"#,
        );
        f.send(
            Peer::Client,
            1,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"crash"}}"#,
        );
        f.ledger.server_exited(f.t0 + Duration::from_secs(2));
        let state = f.ledger.state();
        assert!(!state.session_active);
        assert!(state.in_flight.is_empty());
        let t = f.ledger.take_delta();
        assert_eq!(
            t.requests[&key(Peer::Client, "tools/call", Some("crash"))].unanswered,
            1
        );
        assert_eq!(
            t.requests[&key(Peer::Client, "initialize", None)].unanswered,
            1
        );
        assert_eq!((t.sessions.started, t.sessions.ended), (1, 1));
        assert!((t.sessions.seconds - 2.0).abs() < 1e-9);
    }

    #[test]
    fn closing_stdin_ends_the_session_but_answers_still_count() {
        let mut f = Feed::new(100);
        f.send(
            Peer::Client,
            0,
            r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{}}"#,
        );
        f.send(
            Peer::Client,
            1,
            r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#,
        );
        f.ledger.client_closed(f.t0 + Duration::from_millis(2));
        assert!(!f.ledger.state().session_active);
        f.send(Peer::Server, 3, r#"{"jsonrpc":"2.0","id":1,"result":{}}"#);
        f.ledger.server_exited(f.t0 + Duration::from_millis(4));
        let t = f.ledger.take_delta();
        assert_eq!(t.requests[&key(Peer::Client, "ping", None)].ok, 1);
        assert_eq!(t.sessions.ended, 1, "the session ended once");
    }

    #[test]
    fn malformed_and_oversized_frames_are_counted_per_direction() {
        let mut f = Feed::new(100);
        f.send(Peer::Client, 0, "garbage");
        f.send(Peer::Server, 0, "{\"jsonrpc\":\"2.0\"}");
        f.ledger.record_oversized(Peer::Server);
        f.ledger.record_bytes(Peer::Server, 123);
        let t = f.ledger.take_delta();
        assert_eq!(
            (t.client_to_server.messages, t.client_to_server.malformed),
            (1, 1)
        );
        assert_eq!(
            (
                t.server_to_client.messages,
                t.server_to_client.malformed,
                t.server_to_client.oversized
            ),
            (2, 1, 1)
        );
        assert_eq!(t.server_to_client.bytes, 123);
    }

    #[test]
    fn modern_requests_set_era_and_version() {
        let mut f = Feed::new(100);
        f.send(
            Peer::Client,
            0,
            r#"{"jsonrpc":"2.0","id":1,"method":"server/discover","params":{}}"#,
        );
        assert_eq!(f.ledger.state().era, Some(Era::Modern));
        f.send(Peer::Client, 0, r#"{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#);
        let state = f.ledger.state();
        assert_eq!(state.protocol_version.as_deref(), Some("2026-07-28"));
        assert!(!state.session_active, "the modern era has no sessions");
    }

    #[test]
    fn request_and_response_sizes_are_summed_per_series() {
        let mut f = Feed::new(100);
        let req = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
        let resp = r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[]}}"#;
        f.send(Peer::Client, 0, req);
        f.send(Peer::Server, 1, resp);
        let t = f.ledger.take_delta();
        let list = &t.requests[&key(Peer::Client, "tools/list", None)];
        assert_eq!(list.request_bytes, req.len() as u64);
        assert_eq!(list.response_bytes, resp.len() as u64);
    }

    #[test]
    fn a_reused_id_leaves_the_first_request_unanswered() {
        let mut f = Feed::new(100);
        f.send(
            Peer::Client,
            0,
            r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#,
        );
        f.send(
            Peer::Client,
            1,
            r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#,
        );
        f.send(Peer::Server, 2, r#"{"jsonrpc":"2.0","id":1,"result":{}}"#);
        let t = f.ledger.take_delta();
        let ping = &t.requests[&key(Peer::Client, "ping", None)];
        assert_eq!((ping.started, ping.unanswered, ping.ok), (2, 1, 1));
    }
}
