//! Routing of incoming messages while a request waits: match by id, keep notifications,
//! answer server requests, count everything odd. Shared by all transports.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use serde_json::{Value, json};

use super::jsonrpc::{self, Incoming, RpcErrorObject};
use super::{Notification, WireCounters};

/// What to do after one incoming message.
#[derive(Debug)]
pub(crate) enum Routed {
    /// The response to the request being waited for.
    Matched(Result<Value, RpcErrorObject>),
    /// A server request was seen; this reply must be sent back.
    Reply(Value),
    /// Nothing to do; keep waiting.
    Skipped,
}

/// Bytes that are not JSON at all.
#[derive(Debug)]
pub(crate) struct NotJson;

/// Per-session state for incoming messages.
#[derive(Debug)]
pub(crate) struct Inbox {
    pub(crate) counters: Arc<WireCounters>,
    notifications: VecDeque<Notification>,
    max_kept: usize,
    rate: NotificationRate,
    /// Ids of requests given up on (newest last): their late answers are expected.
    abandoned: VecDeque<u64>,
}

/// Most abandoned request ids remembered per session.
const MAX_ABANDONED_IDS: usize = 32;

/// Most bytes of stderr and log notifications waiting for the security pattern scan.
pub(crate) const UNSCANNED_CAP: usize = 64 * 1024;

/// Fixed one-second window counting notifications, so a flood is dropped and counted.
#[derive(Debug)]
struct NotificationRate {
    max_per_second: u32,
    window_start: std::time::Instant,
    in_window: u32,
}

impl NotificationRate {
    fn admit(&mut self) -> bool {
        let now = std::time::Instant::now();
        if now.duration_since(self.window_start) >= std::time::Duration::from_secs(1) {
            self.window_start = now;
            self.in_window = 0;
        }
        self.in_window = self.in_window.saturating_add(1);
        self.in_window <= self.max_per_second
    }
}

impl Inbox {
    pub(crate) fn new(counters: Arc<WireCounters>, max_kept: usize) -> Self {
        Inbox {
            counters,
            notifications: VecDeque::new(),
            max_kept,
            rate: NotificationRate {
                max_per_second: u32::MAX,
                window_start: std::time::Instant::now(),
                in_window: 0,
            },
            abandoned: VecDeque::new(),
        }
    }

    /// Remembers that the request `id` was given up on, so its answer, if it still comes, is
    /// counted as late rather than as a response with an unknown id.
    pub(crate) fn abandon(&mut self, id: u64) {
        if self.abandoned.len() >= MAX_ABANDONED_IDS {
            self.abandoned.pop_front();
        }
        self.abandoned.push_back(id);
    }

    /// Drops (and counts) notifications beyond `per_second` in any one-second window.
    pub(crate) fn with_rate_limit(mut self, per_second: u32) -> Self {
        self.rate.max_per_second = per_second;
        self
    }

    /// Drains the kept notifications, oldest first.
    pub(crate) fn take_notifications(&mut self) -> Vec<Notification> {
        self.notifications.drain(..).collect()
    }

    /// Parses and routes raw bytes (one stdout line, one SSE data field, one JSON body).
    pub(crate) fn route_bytes(&mut self, raw: &[u8], want: u64) -> Result<Vec<Routed>, NotJson> {
        let value: Value = serde_json::from_slice(raw).map_err(|_| NotJson)?;
        Ok(match value {
            // Batches are only legal in 2025-03-26; route their members one by one.
            Value::Array(items) if !items.is_empty() => {
                items.into_iter().map(|v| self.route(v, want)).collect()
            }
            other => vec![self.route(other, want)],
        })
    }

    /// Routes one parsed message.
    pub(crate) fn route(&mut self, value: Value, want: u64) -> Routed {
        match jsonrpc::classify(value) {
            Incoming::Response { id, outcome } => {
                self.counters.received.fetch_add(1, Ordering::Relaxed);
                if jsonrpc::id_matches(&id, want) {
                    self.counters
                        .responses_matched
                        .fetch_add(1, Ordering::Relaxed);
                    Routed::Matched(outcome)
                } else if let Some(at) = self
                    .abandoned
                    .iter()
                    .position(|gone| jsonrpc::id_matches(&id, *gone))
                {
                    self.abandoned.remove(at);
                    self.counters.late_responses.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%id, want, "late response to an abandoned request skipped");
                    Routed::Skipped
                } else {
                    self.counters
                        .unknown_response_ids
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%id, want, "response with an unknown id skipped");
                    Routed::Skipped
                }
            }
            Incoming::Notification { method, params } => {
                self.counters.received.fetch_add(1, Ordering::Relaxed);
                if !self.rate.admit() {
                    self.counters
                        .notifications_dropped
                        .fetch_add(1, Ordering::Relaxed);
                    return Routed::Skipped;
                }
                if method == "notifications/message" {
                    let text = params.get("data").map(Value::to_string).unwrap_or_default();
                    let mut line = text.into_bytes();
                    line.truncate(4096);
                    line.push(b'\n');
                    self.counters.note_unscanned(&line, UNSCANNED_CAP);
                }
                if self.max_kept > 0 {
                    while self.notifications.len() >= self.max_kept {
                        self.notifications.pop_front();
                    }
                    self.notifications.push_back(Notification {
                        method,
                        params,
                        received_at: SystemTime::now(),
                    });
                }
                Routed::Skipped
            }
            Incoming::Request { id, method } => {
                self.counters.received.fetch_add(1, Ordering::Relaxed);
                if method == "ping" {
                    self.counters
                        .server_pings_answered
                        .fetch_add(1, Ordering::Relaxed);
                    Routed::Reply(jsonrpc::result_response(id, json!({})))
                } else {
                    self.counters
                        .server_requests_refused
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%method, "server request refused");
                    Routed::Reply(jsonrpc::error_response(
                        id,
                        jsonrpc::METHOD_NOT_FOUND,
                        "Method not found: this client (mcp-exporter probe) serves no requests",
                    ))
                }
            }
            Incoming::Invalid { reason } => {
                tracing::debug!(%reason, "invalid JSON-RPC message skipped");
                Routed::Skipped
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_and_counts() {
        let counters = Arc::new(WireCounters::default());
        let mut inbox = Inbox::new(counters.clone(), 2);
        let lines: [&[u8]; 6] = [
            br#"{"jsonrpc":"2.0","method":"n1"}"#,
            br#"{"jsonrpc":"2.0","method":"n2"}"#,
            br#"{"jsonrpc":"2.0","method":"n3"}"#,
            br#"{"jsonrpc":"2.0","id":99,"result":{}}"#,
            br#"{"jsonrpc":"2.0","id":"a","method":"ping"}"#,
            br#"{"jsonrpc":"2.0","id":"b","method":"sampling/createMessage"}"#,
        ];
        for l in lines {
            inbox.route_bytes(l, 1).ok();
        }
        assert!(inbox.route_bytes(b"hello", 1).is_err());
        let matched = inbox.route_bytes(br#"{"jsonrpc":"2.0","id":1,"result":{"x":1}}"#, 1);
        assert!(matches!(matched.as_deref(), Ok([Routed::Matched(Ok(_))])));
        let kept: Vec<_> = inbox
            .take_notifications()
            .into_iter()
            .map(|n| n.method)
            .collect();
        assert_eq!(kept, ["n2", "n3"]);
        assert_eq!(counters.received.load(Ordering::Relaxed), 7);
        assert_eq!(counters.unknown_response_ids.load(Ordering::Relaxed), 1);
        assert_eq!(counters.server_pings_answered.load(Ordering::Relaxed), 1);
        assert_eq!(counters.server_requests_refused.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_late_answer_to_an_abandoned_request_is_not_a_violation() {
        let counters = Arc::new(WireCounters::default());
        let mut inbox = Inbox::new(Arc::clone(&counters), 10);
        inbox.abandon(1);
        let late = br#"{"jsonrpc":"2.0","id":1,"result":{}}"#;
        assert!(matches!(
            inbox.route_bytes(late, 2).as_deref(),
            Ok([Routed::Skipped])
        ));
        assert_eq!(counters.late_responses.load(Ordering::Relaxed), 1);
        assert_eq!(counters.unknown_response_ids.load(Ordering::Relaxed), 0);
        // Only once: a second answer with the same id is a violation.
        inbox.route_bytes(late, 2).ok();
        assert_eq!(counters.unknown_response_ids.load(Ordering::Relaxed), 1);
    }
}
