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
use crate::traffic::parse::{Malformed, Message, RequestId, parse_frame};
use crate::traffic::scan::Scanned;
use crate::traffic::totals::{Peer, RequestKey, SessionStats, TrafficState, TrafficTotals};

/// Most sessions followed at once; the least recently used is closed past it.
pub const MAX_SESSIONS: usize = 1024;
/// A session with no traffic for this long is closed (its pending requests unanswered).
pub const SESSION_IDLE: Duration = Duration::from_secs(3600);
/// Most requests awaiting an answer per ledger.
const MAX_PENDING_PER_LEDGER: usize = 1024;
/// The notification that ends a request early.
const CANCELLED: &str = "notifications/cancelled";
/// Most closed exchanges' ledgers kept for reuse (about the exchanges open at once).
const MAX_SPARE_LEDGERS: usize = 64;

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

/// One open exchange: its ledger and the session it was sent in.
#[derive(Debug)]
struct Exchange {
    ledger: Ledger,
    session: Option<String>,
}

#[derive(Debug, Default)]
struct Inner {
    exchanges: HashMap<u64, Exchange>,
    next_exchange: u64,
    sessions: HashMap<String, Session>,
    /// Ledgers of closed exchanges, emptied, for the next ones ([`Ledger::recycle`]): a
    /// small request then allocates little for its accounting.
    spare: Vec<Ledger>,
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

    /// Starts accounting one exchange, sent in `session` if any.
    pub fn open_exchange(&self, session: Option<&str>) -> ExchangeId {
        let mut inner = self.lock();
        let id = inner.next_exchange;
        inner.next_exchange += 1;
        let ledger = inner
            .spare
            .pop()
            .unwrap_or_else(|| Ledger::new(MAX_PENDING_PER_LEDGER));
        inner.exchanges.insert(
            id,
            Exchange {
                ledger,
                session: session.map(str::to_string),
            },
        );
        ExchangeId(id)
    }

    /// `bytes` more bytes crossed from `sender` in `exchange`.
    pub fn record_bytes(&self, exchange: ExchangeId, sender: Peer, bytes: usize) {
        let mut inner = self.lock();
        match inner.exchanges.get_mut(&exchange.0) {
            Some(open) => open.ledger.record_bytes(sender, bytes),
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
        self.record_parsed(scope, sender, parse_frame(frame), frame.len(), at);
    }

    /// A frame from `sender` read as it passed ([`crate::traffic::scan`]), finished at `at`:
    /// a blank one is no message, one past the scanner's bounds counts as oversized.
    pub fn record_scanned(
        &self,
        scope: Scope<'_>,
        sender: Peer,
        scanned: Scanned<'_>,
        at: Instant,
    ) {
        match scanned {
            Scanned::Blank => {}
            Scanned::Unparsed { .. } => self.record_oversized(scope, sender),
            Scanned::Read { size, parsed } => self.record_parsed(scope, sender, parsed, size, at),
        }
    }

    fn record_parsed(
        &self,
        scope: Scope<'_>,
        sender: Peer,
        parsed: Result<Vec<Message<'_>>, Malformed>,
        size: usize,
        at: Instant,
    ) {
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
        if let Ok(messages) = &parsed {
            for message in messages {
                if let Message::Notification {
                    method,
                    request_id: Some(id),
                } = message
                    && method == CANCELLED
                {
                    inner.cancel_elsewhere(scope, sender, id);
                }
            }
        }
        if let Some(ledger) = inner.ledger(scope, crosses) {
            ledger.record_frame(sender, parsed, size, at);
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

    /// The exchange is over: its requests still waiting end as `ending` says; but when its
    /// response simply ended (`Unanswered`) in a followed session, they stay in flight in the
    /// session, whose streams may still answer them (a GET resuming with `Last-Event-ID`).
    pub fn close_exchange(&self, exchange: ExchangeId, ending: Ending) {
        let mut inner = self.lock();
        let Some(Exchange {
            mut ledger,
            session,
        }) = inner.exchanges.remove(&exchange.0)
        else {
            return;
        };
        if ending == Ending::Unanswered
            && let Some(session) = session
            && let Some(open) = inner.sessions.get_mut(&session)
        {
            open.ledger.adopt_pending(ledger.take_pending());
        }
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
        if inner.spare.len() < MAX_SPARE_LEDGERS {
            ledger.recycle();
            inner.spare.push(ledger);
        }
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
            .map(|e| &mut e.ledger)
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
        self.exchanges
            .get_mut(&scope.exchange.0)
            .map(|open| &mut open.ledger)
    }

    /// A cancellation of `asker`'s request `id`, read in `scope`: when the request is not
    /// waiting in the ledger the notification goes to, it is looked for in the session's ledger,
    /// then in the session's other open exchanges (the request's POST whose response stream is
    /// still open); without a session, in the one other sessionless exchange waiting on that
    /// id, if there is exactly one.
    fn cancel_elsewhere(&mut self, scope: Scope<'_>, asker: Peer, id: &RequestId) {
        let here = self
            .exchanges
            .get(&scope.exchange.0)
            .is_some_and(|open| open.ledger.is_pending(asker, id));
        if here {
            return;
        }
        if let Some(key) = scope.session
            && let Some(session) = self.sessions.get_mut(key)
            && session.ledger.cancel(asker, id)
        {
            return;
        }
        let mut waiting = self.exchanges.iter_mut().filter(|(n, open)| {
            **n != scope.exchange.0
                && open.session.as_deref() == scope.session
                && open.ledger.is_pending(asker, id)
        });
        let first = waiting.next();
        let unique = scope.session.is_some() || waiting.next().is_none();
        if unique && let Some((_, open)) = first {
            open.ledger.cancel(asker, id);
        }
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
    use crate::traffic::ledger::EARLY_ANSWER_GRACE;

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
        let (x, y) = (a.open_exchange(None), a.open_exchange(None));
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
    fn a_reused_ledger_starts_empty() {
        let a = Accounts::default();
        let t = Instant::now();
        let call = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}"#;
        let answer = br#"{"jsonrpc":"2.0","id":1,"result":{}}"#;
        let x = a.open_exchange(None);
        a.record_frame(scope(x, None), Peer::Client, call, t);
        a.close_exchange(x, Ending::HttpStatus(502));
        // The next exchange gets x's ledger back: x's request is not waiting in it.
        let y = a.open_exchange(None);
        a.record_frame(scope(y, None), Peer::Server, answer, t);
        let (mut delta, state) = a.flush(t);
        assert!(state.in_flight.is_empty(), "{:?}", state.in_flight);
        a.record_frame(scope(y, None), Peer::Client, call, t);
        a.record_frame(scope(y, None), Peer::Server, answer, t);
        a.close_exchange(y, Ending::Unanswered);
        let (rest, state) = a.flush(t + EARLY_ANSWER_GRACE * 2);
        delta.merge(&rest);
        let stats = &delta.requests[&key("tools/call", Some("echo"), Peer::Client)];
        assert_eq!(
            (stats.started, stats.ok, stats.errors.get("502").copied()),
            (2, 1, Some(1))
        );
        assert!(state.in_flight.is_empty());
    }

    #[test]
    fn a_failed_exchange_counts_its_requests_as_errors_and_an_abandoned_one_as_unanswered() {
        let a = Accounts::default();
        let t = Instant::now();
        let (x, y) = (a.open_exchange(None), a.open_exchange(None));
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
        let (stream, answer) = (a.open_exchange(None), a.open_exchange(None));
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
        let post = a.open_exchange(None);
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
    fn a_cancellation_posted_later_cancels_the_request_of_another_exchange() {
        let a = Accounts::default();
        let t = Instant::now();
        a.open_session("s1", t);
        let call = br#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"slow"}}"#;
        let cancel =
            br#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":5}}"#;
        let (post, later) = (a.open_exchange(Some("s1")), a.open_exchange(Some("s1")));
        a.record_frame(scope(post, Some("s1")), Peer::Client, call, t);
        a.record_frame(scope(later, Some("s1")), Peer::Client, cancel, t);
        a.close_exchange(later, Ending::Unanswered);
        a.close_exchange(post, Ending::Unanswered);
        a.close_session("s1", t);
        // Without a session: the one other exchange waiting on that id.
        let (x, y) = (a.open_exchange(None), a.open_exchange(None));
        a.record_frame(scope(x, None), Peer::Client, call, t);
        a.record_frame(scope(y, None), Peer::Client, cancel, t);
        a.close_exchange(x, Ending::Unanswered);
        a.close_exchange(y, Ending::Unanswered);
        let (delta, state) = a.flush(t);
        let stats = &delta.requests[&key("tools/call", Some("slow"), Peer::Client)];
        assert_eq!(
            (stats.started, stats.cancelled, stats.unanswered),
            (2, 2, 0)
        );
        assert!(state.in_flight.is_empty());
    }

    #[test]
    fn an_answer_on_a_resumed_stream_matches_the_request_of_the_dropped_one() {
        let a = Accounts::default();
        let t = Instant::now();
        a.open_session("s1", t);
        let post = a.open_exchange(Some("s1"));
        let call = br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"slow"}}"#;
        a.record_frame(scope(post, Some("s1")), Peer::Client, call, t);
        // The POST's event stream broke before the answer.
        a.close_exchange(post, Ending::Unanswered);
        let (mut delta, state) = a.flush(t);
        assert_eq!(state.in_flight.len(), 1, "still in flight in the session");
        // The client resumes with a GET (Last-Event-ID): its stream belongs to the session.
        let get = a.open_exchange(Some("s1"));
        let resumed = Scope {
            exchange: get,
            session: Some("s1"),
            session_only: true,
        };
        a.record_frame(
            resumed,
            Peer::Server,
            br#"{"jsonrpc":"2.0","id":7,"result":{"content":[]}}"#,
            t + Duration::from_millis(30),
        );
        a.close_exchange(get, Ending::Unanswered);
        // An answer read on the resumed stream before the broken one was noticed waits for it.
        let early = a.open_exchange(Some("s1"));
        let call8 = br#"{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"slow"}}"#;
        a.record_frame(scope(early, Some("s1")), Peer::Client, call8, t);
        let get2 = a.open_exchange(Some("s1"));
        a.record_frame(
            Scope {
                exchange: get2,
                session: Some("s1"),
                session_only: true,
            },
            Peer::Server,
            br#"{"jsonrpc":"2.0","id":8,"result":{}}"#,
            t + Duration::from_millis(40),
        );
        a.close_exchange(early, Ending::Unanswered);
        a.close_exchange(get2, Ending::Unanswered);
        let (rest, state) = a.flush(t);
        delta.merge(&rest);
        let stats = &delta.requests[&key("tools/call", Some("slow"), Peer::Client)];
        assert_eq!((stats.started, stats.ok, stats.unanswered), (2, 2, 0));
        assert!(state.in_flight.is_empty());
        assert_eq!(delta.server_to_client.unmatched_responses, 0);
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
