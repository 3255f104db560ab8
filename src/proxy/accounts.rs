//! The accounting of one proxy, on the stdio wrapper's [`Ledger`]: HTTP reuses request ids
//! across sessions and exchanges, so each exchange (one client request and its response) gets
//! a ledger of its own for the client's requests, and each session (an `Mcp-Session-Id`, or a
//! legacy SSE stream) one for what crosses exchanges: the server's requests and the client's
//! answers, and for legacy SSE everything. [`Accounts::flush`] sums them into one delta and one
//! state, what a wrapper reports.
//!
//! Sessions here are HTTP sessions (from the upstream assigning an `Mcp-Session-Id`, or a
//! legacy SSE stream opening, to a `DELETE`, a `404` for it, the stream closing, or idleness),
//! so the ledgers' own `initialize`-based session counts are left out.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::mcp::Era;
use crate::traffic::ledger::Ledger;
use crate::traffic::parse::{Message, parse_frame};
use crate::traffic::totals::{Peer, RequestKey, SessionStats, TrafficState, TrafficTotals};

/// Most sessions followed at once; the least recently used is closed past it.
pub const MAX_SESSIONS: usize = 1024;
/// A session with no traffic for this long is closed (its pending requests unanswered).
pub const SESSION_IDLE: Duration = Duration::from_secs(3600);
/// Most requests awaiting an answer per ledger.
const MAX_PENDING_PER_LEDGER: usize = 1024;

/// One exchange's handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ExchangeId(u64);

/// Where a frame's messages are accounted.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    /// The exchange the frame crossed in.
    pub exchange: ExchangeId,
    /// Its session, if any.
    pub session: Option<&'a str>,
    /// Everything goes to the session (legacy SSE, where answers come on another stream).
    pub session_only: bool,
}

/// How an exchange ended, for the requests it left unanswered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The response ended (or the client left) without answering them: `unanswered`.
    Unanswered,
    /// The client got this HTTP status instead of a JSON-RPC answer: counted as an error with
    /// the status as its code (positive, so never mistaken for a JSON-RPC code): `502` the
    /// proxy could not reach the upstream, `504` the upstream sent no headers in time, any
    /// other the upstream's own.
    HttpStatus(u16),
}

#[derive(Debug)]
struct Session {
    ledger: Ledger,
    opened: Instant,
    last_seen: Instant,
}

#[derive(Debug, Default)]
struct Inner {
    exchanges: HashMap<u64, Ledger>,
    next_exchange: u64,
    sessions: HashMap<String, Session>,
    /// Counted and not yet flushed: closed ledgers' deltas and the session counts.
    finished: TrafficTotals,
    era: Option<Era>,
    protocol_version: Option<String>,
}

/// The traffic counters of one proxy.
#[derive(Debug, Default)]
pub struct Accounts {
    inner: Mutex<Inner>,
}

impl Accounts {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts accounting one exchange.
    pub fn open_exchange(&self) -> ExchangeId {
        let mut inner = self.lock();
        let id = inner.next_exchange;
        inner.next_exchange += 1;
        inner
            .exchanges
            .insert(id, Ledger::new(MAX_PENDING_PER_LEDGER));
        ExchangeId(id)
    }

    /// `bytes` more bytes crossed from `sender` in `exchange`.
    pub fn record_bytes(&self, exchange: ExchangeId, sender: Peer, bytes: usize) {
        let mut inner = self.lock();
        match inner.exchanges.get_mut(&exchange.0) {
            Some(ledger) => ledger.record_bytes(sender, bytes),
            None => inner.finished.stream_mut(sender).bytes += bytes as u64,
        }
    }

    /// A message from `sender` too long to read.
    pub fn record_oversized(&self, scope: Scope<'_>, sender: Peer) {
        let mut inner = self.lock();
        if let Some(ledger) = inner.ledger(scope, false) {
            ledger.record_oversized(sender);
        }
    }

    /// One JSON-RPC frame (a POST body, an SSE event's data) from `sender`, read at `at`
    /// (before it was forwarded).
    pub fn record_frame(&self, scope: Scope<'_>, sender: Peer, frame: &[u8], at: Instant) {
        let parsed = parse_frame(frame);
        // The server's requests and the client's answers cross exchanges: they belong to the
        // session, when there is one.
        let crosses = match &parsed {
            Ok(messages) => messages.iter().any(|m| {
                matches!(
                    (sender, m),
                    (Peer::Server, Message::Request { .. })
                        | (Peer::Client, Message::Response { .. })
                )
            }),
            Err(_) => false,
        };
        let mut inner = self.lock();
        if let Some(ledger) = inner.ledger(scope, crosses) {
            ledger.record_frame(sender, parsed, frame.len(), at);
        }
    }

    /// The upstream assigned (or still honours) `session`: followed from now on.
    pub fn open_session(&self, session: &str, at: Instant) {
        let mut inner = self.lock();
        if let Some(known) = inner.sessions.get_mut(session) {
            known.last_seen = at;
            return;
        }
        if inner.sessions.len() >= MAX_SESSIONS
            && let Some(oldest) = inner
                .sessions
                .iter()
                .min_by_key(|(_, s)| s.last_seen)
                .map(|(k, _)| k.clone())
        {
            inner.close_session(&oldest, at);
        }
        inner.finished.sessions.started += 1;
        inner.sessions.insert(
            session.to_string(),
            Session {
                ledger: Ledger::new(MAX_PENDING_PER_LEDGER),
                opened: at,
                last_seen: at,
            },
        );
    }

    /// True when `session` is followed.
    pub fn has_session(&self, session: &str) -> bool {
        self.lock().sessions.contains_key(session)
    }

    /// `session` ended (deleted, lost upstream, its stream closed): what it still waits for
    /// stays unanswered.
    pub fn close_session(&self, session: &str, at: Instant) {
        self.lock().close_session(session, at);
    }

    /// The exchange is over: its requests still waiting end as `ending` says.
    pub fn close_exchange(&self, exchange: ExchangeId, ending: Ending) {
        let mut inner = self.lock();
        let Some(mut ledger) = inner.exchanges.remove(&exchange.0) else {
            return;
        };
        let state = ledger.state();
        let mut delta = ledger.take_delta();
        for (key, count) in state.in_flight {
            let stats = delta.requests.entry(key).or_default();
            match ending {
                Ending::Unanswered => stats.unanswered += count,
                Ending::HttpStatus(status) => {
                    *stats.errors.entry(status.to_string()).or_default() += count
                }
            }
        }
        inner.note_protocol(&state.era, &state.protocol_version);
        inner.absorb(delta);
    }

    /// Closes every session (the proxy stops).
    pub fn close_all(&self, at: Instant) {
        let mut inner = self.lock();
        let keys: Vec<String> = inner.sessions.keys().cloned().collect();
        for key in keys {
            inner.close_session(&key, at);
        }
    }

    /// The counters since the previous flush and the gauges now; idle sessions are closed.
    pub fn flush(&self, now: Instant) -> (TrafficTotals, TrafficState) {
        let mut inner = self.lock();
        let idle: Vec<String> = inner
            .sessions
            .iter()
            .filter(|(_, s)| now.saturating_duration_since(s.last_seen) >= SESSION_IDLE)
            .map(|(k, _)| k.clone())
            .collect();
        for key in idle {
            inner.close_session(&key, now);
        }
        let mut delta = std::mem::take(&mut inner.finished);
        let mut in_flight: std::collections::BTreeMap<RequestKey, u64> = Default::default();
        let mut latest = (None, None);
        let Inner {
            exchanges,
            sessions,
            ..
        } = &mut *inner;
        let ledgers = exchanges
            .values_mut()
            .chain(sessions.values_mut().map(|s| &mut s.ledger));
        for ledger in ledgers {
            let mut part = ledger.take_delta();
            part.sessions = SessionStats::default();
            delta.merge(&part);
            let state = ledger.state();
            for (key, count) in state.in_flight {
                *in_flight.entry(key).or_default() += count;
            }
            if state.era.is_some() {
                latest = (state.era, state.protocol_version);
            }
        }
        let (era, version) = latest;
        inner.note_protocol(&era, &version);
        let state = TrafficState {
            in_flight,
            session_active: !inner.sessions.is_empty(),
            era: inner.era,
            protocol_version: inner.protocol_version.clone(),
        };
        (delta, state)
    }
}

impl Inner {
    /// The ledger a frame goes to.
    fn ledger(&mut self, scope: Scope<'_>, crosses: bool) -> Option<&mut Ledger> {
        if let Some(key) = scope.session
            && (crosses || scope.session_only)
            && self.sessions.contains_key(key)
        {
            let session = self.sessions.get_mut(key)?;
            session.last_seen = Instant::now();
            return Some(&mut session.ledger);
        }
        self.exchanges.get_mut(&scope.exchange.0)
    }

    fn absorb(&mut self, mut delta: TrafficTotals) {
        delta.sessions = SessionStats::default();
        self.finished.merge(&delta);
    }

    fn note_protocol(&mut self, era: &Option<Era>, version: &Option<String>) {
        if era.is_some() {
            self.era = *era;
            self.protocol_version.clone_from(version);
        }
    }

    fn close_session(&mut self, key: &str, at: Instant) {
        let Some(mut session) = self.sessions.remove(key) else {
            return;
        };
        session.ledger.server_exited(at);
        let state = session.ledger.state();
        self.note_protocol(&state.era, &state.protocol_version);
        let delta = session.ledger.take_delta();
        self.absorb(delta);
        self.finished.sessions.ended += 1;
        self.finished.sessions.seconds +=
            at.saturating_duration_since(session.opened).as_secs_f64();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(method: &str, tool: Option<&str>, origin: Peer) -> RequestKey {
        RequestKey {
            origin,
            method: method.into(),
            tool: tool.map(str::to_string),
        }
    }

    fn scope(exchange: ExchangeId, session: Option<&str>) -> Scope<'_> {
        Scope {
            exchange,
            session,
            session_only: false,
        }
    }

    #[test]
    fn the_same_id_in_two_exchanges_is_two_requests() {
        let a = Accounts::default();
        let t = Instant::now();
        let (x, y) = (a.open_exchange(), a.open_exchange());
        let call = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}"#;
        a.record_frame(scope(x, None), Peer::Client, call, t);
        a.record_frame(scope(y, None), Peer::Client, call, t);
        let (mut delta, state) = a.flush(t);
        assert_eq!(
            state.in_flight[&key("tools/call", Some("echo"), Peer::Client)],
            2
        );
        a.record_frame(
            scope(x, None),
            Peer::Server,
            br#"{"jsonrpc":"2.0","id":1,"result":{}}"#,
            t,
        );
        a.record_frame(
            scope(y, None),
            Peer::Server,
            br#"{"jsonrpc":"2.0","id":1,"result":{"isError":true}}"#,
            t,
        );
        a.close_exchange(x, Ending::Unanswered);
        a.close_exchange(y, Ending::Unanswered);
        let (rest, state) = a.flush(t);
        delta.merge(&rest);
        let stats = &delta.requests[&key("tools/call", Some("echo"), Peer::Client)];
        assert_eq!(
            (stats.started, stats.ok, stats.tool_errors, stats.unanswered),
            (2, 1, 1, 0)
        );
        assert!(state.in_flight.is_empty());
        assert_eq!(delta.client_to_server.messages, 2);
    }

    #[test]
    fn a_failed_exchange_counts_its_requests_as_errors_and_an_abandoned_one_as_unanswered() {
        let a = Accounts::default();
        let t = Instant::now();
        let (x, y) = (a.open_exchange(), a.open_exchange());
        let ping = br#"{"jsonrpc":"2.0","id":"p","method":"ping"}"#;
        a.record_frame(scope(x, None), Peer::Client, ping, t);
        a.record_frame(scope(y, None), Peer::Client, ping, t);
        a.close_exchange(x, Ending::HttpStatus(504));
        a.close_exchange(y, Ending::Unanswered);
        let (delta, _) = a.flush(t);
        let stats = &delta.requests[&key("ping", None, Peer::Client)];
        assert_eq!(stats.errors["504"], 1);
        assert_eq!(stats.unanswered, 1);
    }

    #[test]
    fn server_requests_are_matched_across_exchanges_within_a_session() {
        let a = Accounts::default();
        let t = Instant::now();
        a.open_session("s1", t);
        let (stream, answer) = (a.open_exchange(), a.open_exchange());
        let sampling = br#"{"jsonrpc":"2.0","id":0,"method":"sampling/createMessage"}"#;
        a.record_frame(scope(stream, Some("s1")), Peer::Server, sampling, t);
        a.close_exchange(stream, Ending::Unanswered);
        a.record_frame(
            scope(answer, Some("s1")),
            Peer::Client,
            br#"{"jsonrpc":"2.0","id":0,"result":{}}"#,
            t + Duration::from_millis(5),
        );
        a.close_exchange(answer, Ending::Unanswered);
        a.close_session("s1", t + Duration::from_secs(2));
        let (delta, state) = a.flush(t);
        let stats = &delta.requests[&key("sampling/createMessage", None, Peer::Server)];
        assert_eq!((stats.started, stats.ok), (1, 1));
        assert_eq!((delta.sessions.started, delta.sessions.ended), (1, 1));
        assert!((delta.sessions.seconds - 2.0).abs() < 1e-9);
        assert!(!state.session_active);
    }

    #[test]
    fn legacy_sessions_take_everything_and_leave_the_unanswered_at_close() {
        let a = Accounts::default();
        let t = Instant::now();
        a.open_session("/messages?sessionId=1", t);
        let post = a.open_exchange();
        let legacy = Scope {
            exchange: post,
            session: Some("/messages?sessionId=1"),
            session_only: true,
        };
        let init = br#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-03-26"}}"#;
        a.record_frame(legacy, Peer::Client, init, t);
        a.close_exchange(post, Ending::Unanswered);
        let (_, state) = a.flush(t);
        assert_eq!(state.in_flight.len(), 1, "still waiting on the stream");
        assert!(state.session_active);
        assert_eq!(state.era, Some(Era::Legacy));
        a.close_session("/messages?sessionId=1", t);
        let (delta, _) = a.flush(t);
        assert_eq!(
            delta.requests[&key("initialize", None, Peer::Client)].unanswered,
            1
        );
        assert_eq!(delta.sessions.started, 0, "counted by the first flush");
        assert_eq!(delta.sessions.ended, 1);
    }

    #[test]
    fn sessions_past_the_cap_close_the_least_recent() {
        let a = Accounts::default();
        let t = Instant::now();
        for i in 0..=MAX_SESSIONS {
            a.open_session(&format!("s{i}"), t + Duration::from_millis(i as u64));
        }
        assert!(!a.has_session("s0"));
        assert!(a.has_session(&format!("s{MAX_SESSIONS}")));
        let (delta, _) = a.flush(t);
        assert_eq!(delta.sessions.ended, 1);
        let (_, state) = a.flush(t + SESSION_IDLE + Duration::from_secs(2));
        assert!(!state.session_active, "idle sessions close");
    }
}
