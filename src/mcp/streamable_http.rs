//! Streamable HTTP transport: one POST per message; responses as JSON or as an SSE stream.
//!
//! Legacy era: `Mcp-Session-Id` and `MCP-Protocol-Version` after initialize, DELETE at the end.
//! Modern era (2026-07-28): stateless, `MCP-Protocol-Version` + `Mcp-Method` (+ `Mcp-Name`) on
//! every POST. Bodies are read chunk by chunk under a size bound and the caller's deadline.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap};
use serde_json::Value;
use tokio::time::{Instant, timeout_at};

use super::dispatch::{Inbox, Routed};
use super::error::McpError;
use super::http_io::{
    auth_error, build_client, drain_in_background, map_send_error, parse_headers, read_body,
    read_excerpt, timeout_marker,
};
use super::http_timing::{HttpPhases, PhaseRecorder};
use super::jsonrpc::{RpcErrorObject, error_in_body};
use super::sse::{SseItem, SseParser};
use super::{MODERN_VERSION, WireCounters};

/// Most bytes of an error body kept for messages.
const ERROR_BODY_BYTES: usize = 4096;
/// Timeout of detached best-effort POSTs (cancellation).
const DETACHED_POST_TIMEOUT: Duration = Duration::from_secs(1);
/// Header carrying the legacy session id.
pub const SESSION_HEADER: &str = "mcp-session-id";

/// Per-message header choices.
#[derive(Clone, Copy, Debug)]
pub(crate) struct MessageHeaders<'a> {
    /// Send modern-era headers (`MCP-Protocol-Version: 2026-07-28`, `Mcp-Method`, `Mcp-Name`).
    pub modern: bool,
    /// JSON-RPC method of the message.
    pub method: &'a str,
    /// Tool name for `tools/call` (modern `Mcp-Name`).
    pub name: Option<&'a str>,
}

/// Encodes an `Mcp-Name` value: verbatim when printable ASCII, else `=?base64?...?=`.
fn header_safe(name: &str) -> String {
    if name.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        name.to_string()
    } else {
        format!("=?base64?{}?=", base64(name.as_bytes()))
    }
}

fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn text_excerpt(body: &[u8]) -> String {
    String::from_utf8_lossy(&body[..body.len().min(512)])
        .trim()
        .to_string()
}

/// Streamable HTTP connection state for one server.
#[derive(Debug)]
pub struct HttpTransport {
    client: reqwest::Client,
    url: url::Url,
    headers: HeaderMap,
    session_id: Option<String>,
    protocol_version: Option<String>,
    max_body: usize,
    counters: Arc<WireCounters>,
    phases: PhaseRecorder,
}

impl HttpTransport {
    /// Prepares a client for `url`; no request is made yet.
    pub fn new(
        url: &url::Url,
        headers: &[(String, String)],
        max_body: usize,
        counters: Arc<WireCounters>,
    ) -> Result<Self, McpError> {
        let phases = PhaseRecorder::default();
        Ok(HttpTransport {
            client: build_client(&phases)?,
            url: url.clone(),
            headers: parse_headers(headers)?,
            session_id: None,
            protocol_version: None,
            max_body,
            counters,
            phases,
        })
    }

    /// Where the time of the HTTP requests since the last call went.
    pub fn take_phases(&self) -> HttpPhases {
        self.phases.take()
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
            .client
            .post(self.url.clone())
            .headers(self.headers.clone())
            .header(ACCEPT, "application/json, text/event-stream")
            .header(CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(sid) = &self.session_id {
            req = req.header(SESSION_HEADER, sid);
        }
        if h.modern {
            req = req
                .header("mcp-protocol-version", MODERN_VERSION)
                .header("mcp-method", h.method);
            if let Some(name) = h.name {
                req = req.header("mcp-name", header_safe(name));
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
        let req = self.post(msg, h)?;
        let resp = timeout_at(deadline, req.send())
            .await
            .map_err(|_| timeout_marker())?
            .map_err(|e| map_send_error(self.url.as_str(), &e))?;
        self.counters.sent.fetch_add(1, Ordering::Relaxed);
        Ok(resp)
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
        self.phases.add_exchange(started.elapsed(), Duration::ZERO);
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
            self.counters.sent.fetch_add(1, Ordering::Relaxed);
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
            self.phases
                .add_exchange(headers_at - started, Duration::ZERO)
        })?;
        let outcome = self.read_response(resp, want, h, deadline, inbox).await;
        self.phases
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
            let body = read_body(&mut resp, self.max_body, deadline, &self.counters).await?;
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
        MessageHeaders { name: None, ..h }
    }

    async fn read_sse(
        &mut self,
        mut resp: reqwest::Response,
        want: u64,
        h: MessageHeaders<'_>,
        deadline: Instant,
        inbox: &mut Inbox,
    ) -> Result<Result<Value, RpcErrorObject>, McpError> {
        let mut parser = SseParser::new(self.max_body);
        let mut items = Vec::new();
        loop {
            let chunk = timeout_at(deadline, resp.chunk())
                .await
                .map_err(|_| timeout_marker())?
                .map_err(|e| map_send_error(self.url.as_str(), &e))?;
            let Some(chunk) = chunk else {
                return Err(McpError::StreamClosed {
                    detail: format!(
                        "SSE response to `{}` ended before the response with id {want}",
                        h.method
                    ),
                });
            };
            self.counters.count_bytes(chunk.len());
            parser.push(&chunk, &mut items);
            for item in std::mem::take(&mut items) {
                let event = match item {
                    SseItem::Oversize { limit } => {
                        self.counters.count_oversize();
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
                            return Ok(outcome);
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

    /// Ends a legacy session with DELETE (405 and errors ignored), bounded by `deadline`.
    pub async fn delete_session(&mut self, deadline: Instant) {
        let Some(sid) = self.session_id.take() else {
            return;
        };
        let mut req = self
            .client
            .delete(self.url.clone())
            .headers(self.headers.clone())
            .header(SESSION_HEADER, sid);
        if let Some(v) = &self.protocol_version {
            req = req.header("mcp-protocol-version", v);
        }
        let _ = timeout_at(deadline, req.send()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (plain, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), enc);
        }
    }

    #[test]
    fn mcp_name_is_encoded_only_when_needed() {
        assert_eq!(header_safe("echo"), "echo");
        assert_eq!(header_safe("é"), "=?base64?w6k=?=");
    }
}
