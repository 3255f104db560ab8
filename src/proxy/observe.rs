//! The side reader of one upstream response, fed each chunk as it is passed to the client:
//! JSON bodies are read as one frame and event streams event by event, both as their chunks
//! pass ([`FrameScanner`]): nothing of a body is held but what accounting reads.
//! Dropping it (the response ended, or the client left) closes the exchange's accounting, and
//! for a legacy SSE stream the session it carried.

use std::sync::Arc;
use std::time::Instant;

use crate::traffic::frame::MAX_FRAME_BYTES;
use crate::traffic::scan::FrameScanner;
use crate::traffic::totals::Peer;

use super::accounts::{Accounts, Ending, ExchangeId, Scope};
use super::sse::{EventData, SseEvent, SseSplitter};

/// How a response body is read.
#[derive(Debug)]
pub enum BodyKind {
    /// `text/event-stream`: one JSON-RPC message per `message` event.
    Events(SseSplitter),
    /// `application/json`: one frame (counted as oversized past the frame limit).
    Json(FrameScanner),
    /// Anything else: only its bytes are counted.
    Opaque,
}

impl BodyKind {
    /// The reader for a response of `content_type`.
    pub fn for_content_type(content_type: &str) -> BodyKind {
        let essence = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match essence.as_str() {
            "text/event-stream" => BodyKind::Events(SseSplitter::scanning(MAX_FRAME_BYTES)),
            "application/json" => BodyKind::Json(FrameScanner::new()),
            _ => BodyKind::Opaque,
        }
    }
}

/// Accounts one response body.
#[derive(Debug)]
pub struct ResponseObserver {
    accounts: Arc<Accounts>,
    exchange: ExchangeId,
    /// The session its messages belong to.
    pub session: Option<String>,
    /// Everything goes to the session (a GET stream, a legacy SSE stream).
    pub session_only: bool,
    /// A legacy SSE stream: the session to close when it ends.
    pub legacy_session: Option<String>,
    kind: BodyKind,
    /// The body's announced length: hyper stops reading a body once that much was sent, so
    /// the end is noticed by count.
    expected: Option<u64>,
    received: u64,
    /// How the exchange's unanswered requests end.
    pub ending: Ending,
}

impl ResponseObserver {
    /// An observer of `exchange`'s response body of `expected` bytes (its `Content-Length`),
    /// if known.
    pub fn new(
        accounts: Arc<Accounts>,
        exchange: ExchangeId,
        kind: BodyKind,
        expected: Option<u64>,
    ) -> Self {
        ResponseObserver {
            accounts,
            exchange,
            session: None,
            session_only: false,
            legacy_session: None,
            kind,
            expected,
            received: 0,
            ending: Ending::Unanswered,
        }
    }

    /// The stream is a legacy SSE stream whose messages are posted to `endpoint` (a path on
    /// the proxy): a session from now until the stream ends.
    pub fn open_legacy_session(&mut self, endpoint: String, at: Instant) {
        self.accounts.open_session(&endpoint, at);
        self.session = Some(endpoint.clone());
        self.session_only = true;
        self.legacy_session = Some(endpoint);
    }

    /// A chunk read at `at`, about to be passed on.
    pub fn observe(&mut self, chunk: &[u8], at: Instant) {
        self.accounts
            .record_bytes(self.exchange, Peer::Server, chunk.len());
        let scope = Scope {
            exchange: self.exchange,
            session: self.session.as_deref(),
            session_only: self.session_only,
        };
        let accounts = &self.accounts;
        match &mut self.kind {
            BodyKind::Events(splitter) => splitter.push(chunk, |event| match event {
                SseEvent::Data {
                    kind,
                    data: EventData::Scanned(scanned),
                } if is_message(kind) => {
                    accounts.record_scanned(scope, Peer::Server, scanned, at);
                }
                SseEvent::Data { .. } => {}
                SseEvent::Oversized => accounts.record_oversized(scope, Peer::Server),
            }),
            BodyKind::Json(scanner) => {
                if scanner.size() <= MAX_FRAME_BYTES {
                    scanner.push(chunk);
                }
            }
            BodyKind::Opaque => {}
        }
        self.received += chunk.len() as u64;
        if self
            .expected
            .is_some_and(|expected| self.received >= expected)
        {
            self.finish(at);
        }
    }

    /// The body ended normally at `at`: a JSON body is read now.
    pub fn finish(&mut self, at: Instant) {
        let scope = Scope {
            exchange: self.exchange,
            session: self.session.as_deref(),
            session_only: self.session_only,
        };
        if let BodyKind::Json(scanner) = &mut self.kind {
            if scanner.size() > MAX_FRAME_BYTES {
                self.accounts.record_oversized(scope, Peer::Server);
            } else {
                self.accounts
                    .record_scanned(scope, Peer::Server, scanner.finish(), at);
            }
            self.kind = BodyKind::Opaque;
        }
    }
}

impl Drop for ResponseObserver {
    fn drop(&mut self) {
        self.accounts.close_exchange(self.exchange, self.ending);
        if let Some(session) = &self.legacy_session {
            self.accounts.close_session(session, Instant::now());
        }
    }
}

/// MCP sends JSON-RPC in events of the default type.
fn is_message(kind: &[u8]) -> bool {
    kind.is_empty() || kind == b"message"
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traffic::totals::RequestKey;

    #[test]
    fn json_and_event_bodies_answer_the_exchange() {
        let accounts = Arc::new(Accounts::default());
        let t = Instant::now();
        for (content_type, body) in [
            ("application/json; charset=utf-8", r#"{"jsonrpc":"2.0","id":1,"result":{}}"#.to_string()),
            (
                "text/event-stream",
                "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\n\n\
                 data: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n\n"
                    .to_string(),
            ),
        ] {
            let exchange = accounts.open_exchange(None);
            let scope = Scope {
                exchange,
                session: None,
                session_only: false,
            };
            accounts.record_frame(scope, Peer::Client, br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#, t);
            let mut observer = ResponseObserver::new(
                accounts.clone(),
                exchange,
                BodyKind::for_content_type(content_type),
                None,
            );
            let (a, b) = body.as_bytes().split_at(10);
            observer.observe(a, t);
            observer.observe(b, t);
            observer.finish(t);
        }
        let (delta, state) = accounts.flush(t);
        let ping = RequestKey {
            origin: Peer::Client,
            method: "ping".into(),
            tool: None,
        };
        assert_eq!(delta.requests[&ping].ok, 2);
        assert!(state.in_flight.is_empty());
        assert_eq!(delta.server_to_client.messages, 3);
    }
}
