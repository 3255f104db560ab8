//! Streamable HTTP transport: one POST per message; responses as JSON or as an SSE stream.
//!
//! Legacy era: `Mcp-Session-Id` and `MCP-Protocol-Version` after initialize, DELETE at the end.
//! Modern era (2026-07-28): stateless, `MCP-Protocol-Version` + `Mcp-Method` (+ `Mcp-Name`) on
//! every POST. Bodies are read chunk by chunk under a size bound and the caller's deadline.

use std::sync::atomic::Ordering;
use std::time::Duration;

use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderName, HeaderValue};
use serde_json::Value;
use tokio::time::{Instant, timeout_at};

use super::MODERN_VERSION;
use super::dispatch::{Inbox, Routed};
use super::error::McpError;
use super::http_auth::send_authorized;
use super::http_endpoint::HttpEndpoint;
use super::http_io::{
    auth_error, drain_in_background, map_send_error, read_body, read_excerpt, timeout_marker,
};
use super::jsonrpc::{RpcErrorObject, error_in_body};
use super::mirrored_headers;
use super::sse::{SseItem, SseParser};

/// Most bytes of an error body kept for messages.
const ERROR_BODY_BYTES: usize = 4096;
/// Timeout of detached best-effort POSTs (cancellation).
const DETACHED_POST_TIMEOUT: Duration = Duration::from_secs(1);
/// Header carrying the legacy session id.
pub const SESSION_HEADER: &str = "mcp-session-id";
/// Most times one legacy response stream is resumed before the request fails.
const MAX_RESUMPTIONS: usize = 5;
/// Wait before resuming a stream whose server sent no `retry` field.
const DEFAULT_RETRY: Duration = Duration::from_secs(1);

/// How one SSE response stream ended.
enum StreamEnd {
    /// With the awaited response.
    Answered(Result<Value, RpcErrorObject>),
    /// Before it (cleanly or by a broken connection).
    Closed {
        /// What ended, for the error when it is not resumed.
        detail: String,
        /// What the stream said about resuming it.
        resume: Resumption,
    },
}

/// The `id` and `retry` fields a closed stream carried.
struct Resumption {
    /// The last event id: the `Last-Event-ID` of a resumption.
    last_event_id: Option<String>,
    /// The last `retry` delay.
    retry: Option<Duration>,
}

/// Per-message header choices.
#[derive(Clone, Copy, Debug)]
pub(crate) struct MessageHeaders<'a> {
    /// Send modern-era headers (`MCP-Protocol-Version: 2026-07-28`, `Mcp-Method`, `Mcp-Name`).
    pub modern: bool,
    /// JSON-RPC method of the message.
    pub method: &'a str,
    /// Tool name for `tools/call` (modern `Mcp-Name`).
    pub name: Option<&'a str>,
    /// Mirrored tool parameters of a modern `tools/call`: `(name, encoded value)`, sent as
    /// `Mcp-Param-{name}`.
    pub params: &'a [(String, String)],
}

fn text_excerpt(body: &[u8]) -> String {
    String::from_utf8_lossy(&body[..body.len().min(512)])
        .trim()
        .to_string()
}

/// Streamable HTTP connection state for one server.
#[derive(Debug)]
pub struct HttpTransport {
    /// The server, its client, headers, counters, timing, TLS, OAuth and trace context.
    pub(crate) http: HttpEndpoint,
    session_id: Option<String>,
    protocol_version: Option<String>,
    max_body: usize,
}

impl HttpTransport {
    /// Prepares the transport for `http`, bodies bounded by `max_body`; no request is made yet.
    pub(crate) fn new(http: HttpEndpoint, max_body: usize) -> Self {
        HttpTransport {
            http,
            session_id: None,
            protocol_version: None,
            max_body,
        }
    }

    /// The legacy session id, once the server assigned one.
    pub fn session_id(&self) -> Option<&str> {
        self.session_id.as_deref()
    }

    /// Forgets the session (before re-initializing).
    pub(crate) fn reset_session(&mut self) {
        self.session_id = None;
        self.protocol_version = None;
    }

    /// Sets the negotiated legacy protocol version (sent as `MCP-Protocol-Version`).
    pub(crate) fn set_protocol_version(&mut self, version: &str) {
        self.protocol_version = Some(version.to_string());
    }

    fn post(
        &self,
        msg: &Value,
        h: MessageHeaders<'_>,
    ) -> Result<reqwest::RequestBuilder, McpError> {
        let body = serde_json::to_vec(msg)
            .map_err(|e| McpError::protocol(format!("cannot encode request: {e}")))?;
        let mut req = self
            .http
            .client
            .post(self.http.url.clone())
            .headers(
                self.http
                    .request_headers(reqwest::Method::POST, &self.http.url),
            )
            .header(ACCEPT, "application/json, text/event-stream")
            .header(CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(sid) = &self.session_id {
            req = req.header(SESSION_HEADER, sid);
        }
        if let Some(traceparent) = &self.http.traceparent {
            req = req.header("traceparent", traceparent);
        }
        if h.modern {
            req = req
                .header("mcp-protocol-version", MODERN_VERSION)
                .header("mcp-method", h.method);
            if let Some(name) = h.name {
                req = req.header("mcp-name", mirrored_headers::encode_value(name));
            }
            for (name, value) in h.params {
                // Names are HTTP tokens and values encoded (mirrored_headers), so both parse.
                if let (Ok(n), Ok(v)) = (
                    HeaderName::try_from(format!("mcp-param-{name}")),
                    HeaderValue::try_from(value.as_str()),
                ) {
                    req = req.header(n, v);
                }
            }
        } else if let Some(v) = &self.protocol_version {
            req = req.header("mcp-protocol-version", v);
        }
        Ok(req)
    }

    async fn send(
        &self,
        msg: &Value,
        h: MessageHeaders<'_>,
        deadline: Instant,
    ) -> Result<reqwest::Response, McpError> {
        send_authorized(
            self.http.auth(),
            &self.http.client,
            &self.http.url,
            deadline,
            || async {
                let req = self.post(msg, h)?;
                let resp = timeout_at(deadline, self.http.phases.scope(req.send()))
                    .await
                    .map_err(|_| timeout_marker())?
                    .map_err(|e| map_send_error(self.http.url.as_str(), &e))?;
                self.http.counters.sent.fetch_add(1, Ordering::Relaxed);
                self.http.tls.note(&resp);
                Ok(resp)
            },
        )
        .await
    }

    /// Checks a non-success status: auth, lost session, JSON-RPC error body, other status.
    /// `Ok(Some(err))` is a JSON-RPC error object the server put in the body.
    async fn check_status(
        &self,
        resp: &mut reqwest::Response,
        deadline: Instant,
    ) -> Result<Option<RpcErrorObject>, McpError> {
        let status = resp.status();
        if status.is_success() {
            return Ok(None);
        }
        if status.as_u16() == 401 || status.as_u16() == 403 {
            return Err(auth_error(resp));
        }
        let body = read_excerpt(resp, ERROR_BODY_BYTES, deadline).await;
        let excerpt = text_excerpt(&body);
        if self.session_id.is_some()
            && (status.as_u16() == 404
                || (status.as_u16() == 400 && excerpt.to_ascii_lowercase().contains("session")))
        {
            return Err(McpError::SessionLost {
                detail: format!("HTTP {}: {excerpt}", status.as_u16()),
            });
        }
        if let Some(err) = error_in_body(&body) {
            return Ok(Some(err));
        }
        Err(McpError::HttpStatus {
            status: status.as_u16(),
            body_excerpt: excerpt,
        })
    }

    /// POSTs a notification; expects 202 (any 2xx accepted).
    pub(crate) async fn notify(
        &mut self,
        msg: &Value,
        h: MessageHeaders<'_>,
        deadline: Instant,
    ) -> Result<(), McpError> {
        let started = Instant::now();
        let outcome = self.post_untimed(msg, h, deadline).await;
        self.http
            .phases
            .add_exchange(started.elapsed(), Duration::ZERO);
        outcome
    }

    /// POSTs a notification or a reply (a reply's time belongs to the transfer of the
    /// response it interrupted, so it is not timed on its own).
    async fn post_untimed(
        &mut self,
        msg: &Value,
        h: MessageHeaders<'_>,
        deadline: Instant,
    ) -> Result<(), McpError> {
        let mut resp = self.send(msg, h, deadline).await?;
        if let Some(err) = self.check_status(&mut resp, deadline).await? {
            return Err(McpError::Rpc {
                method: h.method.to_string(),
                code: err.code,
                message: err.message,
            });
        }
        drain_in_background(resp);
        Ok(())
    }

    /// POSTs without waiting (best-effort cancellation); bounded by a short timeout.
    pub(crate) fn notify_detached(&self, msg: &Value, h: MessageHeaders<'_>) {
        if let Ok(req) = self.post(msg, h) {
            self.http.counters.sent.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                let _ = tokio::time::timeout(DETACHED_POST_TIMEOUT, req.send()).await;
            });
        }
    }

    /// POSTs a request and reads the JSON or SSE response until the message with id `want`.
    pub(crate) async fn roundtrip(
        &mut self,
        msg: &Value,
        want: u64,
        h: MessageHeaders<'_>,
        deadline: Instant,
        inbox: &mut Inbox,
    ) -> Result<Result<Value, RpcErrorObject>, McpError> {
        let started = Instant::now();
        let sent = self.send(msg, h, deadline).await;
        let headers_at = Instant::now();
        // A request that got no headers (timeout, refused, reset) still spent its time: a
        // server that never answers shows it as processing.
        let resp = sent.inspect_err(|_| {
            self.http
                .phases
                .add_exchange(headers_at - started, Duration::ZERO)
        })?;
        let outcome = self.read_response(resp, want, h, deadline, inbox).await;
        self.http
            .phases
            .add_exchange(headers_at - started, headers_at.elapsed());
        outcome
    }

    /// Reads the response to the request with id `want`: a status error, a JSON body or an
    /// SSE stream.
    async fn read_response(
        &mut self,
        mut resp: reqwest::Response,
        want: u64,
        h: MessageHeaders<'_>,
        deadline: Instant,
        inbox: &mut Inbox,
    ) -> Result<Result<Value, RpcErrorObject>, McpError> {
        if let Some(err) = self.check_status(&mut resp, deadline).await? {
            return Ok(Err(err));
        }
        if resp.status().as_u16() == 202 {
            return Err(McpError::protocol(format!(
                "server answered `{}` with 202 Accepted and no response",
                h.method
            )));
        }
        // Sessions belong to the legacy era; modern servers are stateless.
        if !h.modern
            && let Some(sid) = resp.headers().get(SESSION_HEADER)
        {
            self.session_id = Some(String::from_utf8_lossy(sid.as_bytes()).into_owned());
        }
        let content_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).to_ascii_lowercase())
            .unwrap_or_default();
        if content_type.starts_with("text/event-stream") {
            self.read_sse(resp, want, h, deadline, inbox).await
        } else if content_type.starts_with("application/json") || content_type.contains("+json") {
            let body = read_body(&mut resp, self.max_body, deadline, &self.http.counters).await?;
            let routed = inbox.route_bytes(&body, want).map_err(|_| {
                McpError::protocol(format!(
                    "JSON response body is not JSON: {:?}",
                    text_excerpt(&body)
                ))
            })?;
            for r in routed {
                match r {
                    Routed::Matched(outcome) => return Ok(outcome),
                    Routed::Reply(reply) => {
                        self.post_untimed(&reply, self.reply_headers(h), deadline)
                            .await?
                    }
                    Routed::Skipped => {}
                }
            }
            Err(McpError::protocol(format!(
                "JSON response to `{}` did not carry the response with id {want}",
                h.method
            )))
        } else {
            let body = read_excerpt(&mut resp, ERROR_BODY_BYTES, deadline).await;
            Err(McpError::protocol(format!(
                "unexpected content type {content_type:?} for `{}` (expected application/json or text/event-stream): {:?}",
                h.method,
                text_excerpt(&body)
            )))
        }
    }

    fn reply_headers<'a>(&self, h: MessageHeaders<'a>) -> MessageHeaders<'a> {
        MessageHeaders {
            name: None,
            params: &[],
            ..h
        }
    }

    /// Reads an SSE response up to the response with id `want`. A legacy server may end the
    /// stream before the response once it has sent an event id: the stream is then resumed
    /// with a GET carrying `Last-Event-ID`, after the server's `retry` delay
    /// (docs/probing.md#streamable-http). Modern streams are not resumable.
    async fn read_sse(
        &mut self,
        mut resp: reqwest::Response,
        want: u64,
        h: MessageHeaders<'_>,
        deadline: Instant,
        inbox: &mut Inbox,
    ) -> Result<Result<Value, RpcErrorObject>, McpError> {
        let mut last_event_id: Option<String> = None;
        let mut retry: Option<Duration> = None;
        let mut resumed = 0;
        loop {
            let (detail, resume) = match self.read_stream(resp, want, h, deadline, inbox).await? {
                StreamEnd::Answered(outcome) => return Ok(outcome),
                StreamEnd::Closed { detail, resume } => (detail, resume),
            };
            last_event_id = resume.last_event_id.or(last_event_id);
            retry = resume.retry.or(retry);
            let resumable = last_event_id.clone().filter(|id| {
                !h.modern && resumed < MAX_RESUMPTIONS && HeaderValue::from_str(id).is_ok()
            });
            let Some(id) = resumable else {
                return Err(McpError::StreamClosed { detail });
            };
            resumed += 1;
            let wake = Instant::now() + retry.unwrap_or(DEFAULT_RETRY);
            tokio::time::sleep_until(wake.min(deadline)).await;
            if wake > deadline {
                return Err(timeout_marker());
            }
            tracing::debug!(method = h.method, last_event_id = %id, "resuming the SSE response stream");
            resp = self.resume(&id, h, deadline).await?;
        }
    }

    /// Reads one SSE stream until the response with id `want` or the stream's end.
    async fn read_stream(
        &mut self,
        mut resp: reqwest::Response,
        want: u64,
        h: MessageHeaders<'_>,
        deadline: Instant,
        inbox: &mut Inbox,
    ) -> Result<StreamEnd, McpError> {
        let mut parser = SseParser::new(self.max_body);
        let mut items = Vec::new();
        loop {
            let chunk = timeout_at(deadline, resp.chunk())
                .await
                .map_err(|_| timeout_marker())?;
            let detail = match chunk {
                Ok(Some(chunk)) => {
                    self.http.counters.count_bytes(chunk.len());
                    parser.push(&chunk, &mut items);
                    None
                }
                Ok(None) => Some(format!(
                    "SSE response to `{}` ended before the response with id {want}",
                    h.method
                )),
                Err(e) => match map_send_error(self.http.url.as_str(), &e) {
                    McpError::StreamClosed { detail } => Some(detail),
                    other => return Err(other),
                },
            };
            if let Some(detail) = detail {
                return Ok(StreamEnd::Closed {
                    detail,
                    resume: Resumption {
                        last_event_id: parser.last_event_id().map(str::to_string),
                        retry: parser.retry_ms().map(Duration::from_millis),
                    },
                });
            }
            for item in std::mem::take(&mut items) {
                let event = match item {
                    SseItem::Oversize { limit } => {
                        self.http.counters.count_oversize();
                        return Err(McpError::protocol(format!(
                            "SSE event exceeded {limit} bytes (max_message_bytes); reading stopped"
                        )));
                    }
                    SseItem::Event(e) => e,
                };
                if event.event != "message" {
                    continue;
                }
                let Ok(routed) = inbox.route_bytes(event.data.as_bytes(), want) else {
                    tracing::debug!(data = %text_excerpt(event.data.as_bytes()), "non-JSON SSE data skipped");
                    continue;
                };
                for r in routed {
                    match r {
                        Routed::Matched(outcome) => {
                            drain_in_background(resp);
                            return Ok(StreamEnd::Answered(outcome));
                        }
                        Routed::Reply(reply) => {
                            self.post_untimed(&reply, self.reply_headers(h), deadline)
                                .await?
                        }
                        Routed::Skipped => {}
                    }
                }
            }
        }
    }

    /// Resumes a legacy response stream: GET the endpoint with `Last-Event-ID`, the session and
    /// the negotiated version. Anything but an event stream ends the request.
    async fn resume(
        &self,
        last_event_id: &str,
        h: MessageHeaders<'_>,
        deadline: Instant,
    ) -> Result<reqwest::Response, McpError> {
        let mut req = self
            .http
            .client
            .get(self.http.url.clone())
            .headers(
                self.http
                    .request_headers(reqwest::Method::GET, &self.http.url),
            )
            .header(ACCEPT, "text/event-stream")
            .header("last-event-id", last_event_id);
        if let Some(sid) = &self.session_id {
            req = req.header(SESSION_HEADER, sid);
        }
        if let Some(v) = &self.protocol_version {
            req = req.header("mcp-protocol-version", v);
        }
        let resp = timeout_at(deadline, self.http.phases.scope(req.send()))
            .await
            .map_err(|_| timeout_marker())?
            .map_err(|e| map_send_error(self.http.url.as_str(), &e))?;
        let status = resp.status();
        if status.as_u16() == 401 || status.as_u16() == 403 {
            return Err(auth_error(&resp));
        }
        let is_stream = resp.headers().get(CONTENT_TYPE).is_some_and(|v| {
            v.as_bytes()
                .to_ascii_lowercase()
                .starts_with(b"text/event-stream")
        });
        if status.is_success() && is_stream {
            return Ok(resp);
        }
        Err(McpError::StreamClosed {
            detail: format!(
                "the server ended the SSE response to `{}` before answering and did not resume it (GET with Last-Event-ID {last_event_id:?} answered HTTP {}{})",
                h.method,
                status.as_u16(),
                if is_stream {
                    ""
                } else {
                    ", not an event stream"
                }
            ),
        })
    }

    /// Ends a legacy session with DELETE (405 and errors ignored), bounded by `deadline`.
    pub async fn delete_session(&mut self, deadline: Instant) {
        let Some(sid) = self.session_id.take() else {
            return;
        };
        let mut req = self
            .http
            .client
            .delete(self.http.url.clone())
            .headers(
                self.http
                    .request_headers(reqwest::Method::DELETE, &self.http.url),
            )
            .header(SESSION_HEADER, sid);
        if let Some(v) = &self.protocol_version {
            req = req.header("mcp-protocol-version", v);
        }
        let _ = timeout_at(deadline, req.send()).await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use reqwest::header::HeaderMap;

    use super::super::WireCounters;
    use super::super::test_server::{event_stream, scripted_server};
    use super::*;

    fn built(h: MessageHeaders<'_>) -> HeaderMap {
        let url = url::Url::parse("http://127.0.0.1:9/mcp").expect("url");
        let transport = HttpTransport::new(HttpEndpoint::plain(&url, Arc::default()), 1024);
        let msg = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": h.method});
        let request = transport
            .post(&msg, h)
            .and_then(|r| r.build().map_err(|e| McpError::protocol(e.to_string())));
        request.expect("request builds").headers().clone()
    }

    fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
        headers.get(name).and_then(|v| v.to_str().ok())
    }

    #[test]
    fn modern_calls_carry_the_mirrored_headers() {
        let params = [
            ("Region".to_string(), "us-west1".to_string()),
            (
                "Greeting".to_string(),
                "=?base64?SGVsbG8sIOS4lueVjA==?=".to_string(),
            ),
            ("EmptyVal".to_string(), String::new()),
        ];
        let headers = built(MessageHeaders {
            modern: true,
            method: "tools/call",
            name: Some("é"),
            params: &params,
        });
        assert_eq!(
            header(&headers, "mcp-protocol-version"),
            Some(MODERN_VERSION)
        );
        assert_eq!(header(&headers, "mcp-method"), Some("tools/call"));
        assert_eq!(header(&headers, "mcp-name"), Some("=?base64?w6k=?="));
        assert_eq!(header(&headers, "mcp-param-region"), Some("us-west1"));
        assert_eq!(
            header(&headers, "mcp-param-greeting"),
            Some("=?base64?SGVsbG8sIOS4lueVjA==?=")
        );
        assert_eq!(header(&headers, "mcp-param-emptyval"), Some(""));
    }

    #[test]
    fn legacy_requests_carry_no_modern_headers() {
        let headers = built(MessageHeaders {
            modern: false,
            method: "tools/call",
            name: Some("echo"),
            params: &[],
        });
        for name in ["mcp-protocol-version", "mcp-method", "mcp-name"] {
            assert_eq!(header(&headers, name), None, "{name}");
        }
    }

    /// Sends request id 1 (`tools/call`) to `url` as `era` and returns the outcome.
    async fn call(url: &url::Url, modern: bool) -> Result<Result<Value, RpcErrorObject>, McpError> {
        let counters = Arc::new(WireCounters::default());
        let mut transport =
            HttpTransport::new(HttpEndpoint::plain(url, Arc::clone(&counters)), 1 << 20);
        transport.set_protocol_version("2025-11-25");
        let mut inbox = Inbox::new(counters, 16);
        let msg = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call"});
        let h = MessageHeaders {
            modern,
            method: "tools/call",
            name: Some("t"),
            params: &[],
        };
        transport
            .roundtrip(
                &msg,
                1,
                h,
                Instant::now() + Duration::from_secs(5),
                &mut inbox,
            )
            .await
    }

    const PRIMED_THEN_CLOSED: &str = "id: event-1\nretry: 300\ndata: \n\n";

    #[tokio::test]
    async fn a_legacy_stream_closed_after_its_priming_event_is_resumed_after_the_retry_delay() {
        let answer = r#"{"jsonrpc":"2.0","id":1,"result":{"content":[]}}"#;
        let (url, seen) = scripted_server(vec![
            event_stream(PRIMED_THEN_CLOSED),
            event_stream(&format!("event: message\nid: event-2\ndata: {answer}\n\n")),
        ])
        .await;
        let outcome = call(&url, false).await;
        assert_eq!(
            outcome.ok().and_then(Result::ok),
            Some(serde_json::json!({"content": []}))
        );
        let seen = seen.lock().expect("log");
        assert_eq!(
            seen.iter().map(|s| s.method.as_str()).collect::<Vec<_>>(),
            ["POST", "GET"]
        );
        let resumed = &seen[1];
        assert_eq!(resumed.header("last-event-id"), Some("event-1"));
        assert_eq!(resumed.header("accept"), Some("text/event-stream"));
        assert_eq!(resumed.header("mcp-protocol-version"), Some("2025-11-25"));
        let waited = resumed.at - seen[0].at;
        assert!(waited >= Duration::from_millis(300), "{waited:?}");
    }

    #[tokio::test]
    async fn a_stream_is_not_resumed_when_modern_unprimed_or_refused() {
        // Modern streams are not resumable.
        let (url, seen) = scripted_server(vec![event_stream(PRIMED_THEN_CLOSED)]).await;
        let outcome = call(&url, true).await;
        assert!(
            matches!(outcome, Err(McpError::StreamClosed { .. })),
            "{outcome:?}"
        );
        assert_eq!(seen.lock().expect("log").len(), 1);
        // Without an event id there is nothing to resume from.
        let (url, seen) = scripted_server(vec![event_stream("retry: 10\n\n")]).await;
        let outcome = call(&url, false).await;
        assert!(
            matches!(outcome, Err(McpError::StreamClosed { .. })),
            "{outcome:?}"
        );
        assert_eq!(seen.lock().expect("log").len(), 1);
        // A server that refuses the GET ends the request.
        let (url, _) = scripted_server(vec![
            event_stream("id: e\nretry: 10\ndata: \n\n"),
            "HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                .into(),
        ])
        .await;
        let outcome = call(&url, false).await;
        assert!(
            matches!(&outcome, Err(McpError::StreamClosed { detail }) if detail.contains("HTTP 405")),
            "{outcome:?}"
        );
    }
}
