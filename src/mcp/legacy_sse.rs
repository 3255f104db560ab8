//! Legacy HTTP+SSE transport (2024-11-05): GET an event stream whose first event names the
//! POST endpoint; each message is POSTed there and responses arrive as `message` events.
//!
//! A background task reads the stream (bounded events) and hands items over a channel; the
//! stream ending marks the transport dead.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use reqwest::header::{ACCEPT, CONTENT_TYPE};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout_at};

use super::WireCounters;
use super::dispatch::{Inbox, Routed};
use super::error::McpError;
use super::http_auth::send_authorized;
use super::http_endpoint::HttpEndpoint;
use super::http_io::{
    auth_error, drain_in_background, map_send_error, read_excerpt, timeout_marker,
};
use super::jsonrpc::RpcErrorObject;
use super::sse::{SseEvent, SseItem, SseParser};

/// What the stream reader hands over.
#[derive(Debug)]
enum StreamItem {
    Event(SseEvent),
    Oversize(usize),
    End(String),
}

/// Legacy HTTP+SSE connection state.
#[derive(Debug)]
pub struct SseTransport {
    /// The server, its client, headers, counters, timing, TLS, OAuth and trace context.
    pub(crate) http: HttpEndpoint,
    endpoint: Option<url::Url>,
    inbound: Option<mpsc::Receiver<StreamItem>>,
    reader: Option<JoinHandle<()>>,
    closed: bool,
    max_event: usize,
}

impl SseTransport {
    /// Prepares the transport for `http`, events bounded by `max_event`; the stream is opened
    /// by the first request (under its deadline). The stream's GET counts in the phases of the
    /// probe that opened it.
    pub(crate) fn new(http: HttpEndpoint, max_event: usize) -> Self {
        SseTransport {
            http,
            endpoint: None,
            inbound: None,
            reader: None,
            closed: false,
            max_event,
        }
    }

    /// False once the event stream ended.
    pub fn is_alive(&self) -> bool {
        !self.closed && self.reader.as_ref().is_none_or(|r| !r.is_finished())
    }

    /// The POST endpoint announced by the server, once connected.
    pub fn endpoint(&self) -> Option<&url::Url> {
        self.endpoint.as_ref()
    }

    async fn connect(&mut self, deadline: Instant) -> Result<(), McpError> {
        let started = Instant::now();
        let this = &*self;
        let sent = send_authorized(
            this.http.auth(),
            &this.http.client,
            &this.http.url,
            deadline,
            || async {
                let req = this
                    .http
                    .client
                    .get(this.http.url.clone())
                    .headers(
                        this.http
                            .request_headers(reqwest::Method::GET, &this.http.url),
                    )
                    .header(ACCEPT, "text/event-stream");
                let resp = timeout_at(deadline, this.http.phases.scope(req.send()))
                    .await
                    .map_err(|_| timeout_marker())?
                    .map_err(|e| map_send_error(this.http.url.as_str(), &e))?;
                this.http.tls.note(&resp);
                Ok(resp)
            },
        )
        .await;
        let headers_at = Instant::now();
        // Timed whether or not headers came: a stream that never opens shows as processing.
        self.http
            .phases
            .add_exchange(headers_at - started, Duration::ZERO);
        let mut resp = sent?;
        let status = resp.status().as_u16();
        if status == 401 || status == 403 {
            return Err(auth_error(&resp));
        }
        if !resp.status().is_success() {
            let body = read_excerpt(&mut resp, 512, deadline).await;
            return Err(McpError::HttpStatus {
                status,
                body_excerpt: String::from_utf8_lossy(&body).trim().to_string(),
            });
        }
        let content_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).to_ascii_lowercase())
            .unwrap_or_default();
        if !content_type.starts_with("text/event-stream") {
            return Err(McpError::protocol(format!(
                "GET {} answered content type {content_type:?}, not text/event-stream (is this an HTTP+SSE endpoint?)",
                self.http.url
            )));
        }
        let (tx, mut rx) = mpsc::channel(16);
        self.reader = Some(tokio::spawn(read_stream(
            resp,
            self.max_event,
            tx,
            self.http.counters.clone(),
        )));
        loop {
            let item = timeout_at(deadline, rx.recv())
                .await
                .map_err(|_| timeout_marker())?;
            match item {
                Some(StreamItem::Event(e)) if e.event == "endpoint" => {
                    let endpoint = self.http.url.join(e.data.trim()).map_err(|err| {
                        McpError::protocol(format!(
                            "endpoint event {:?} is not a URL: {err}",
                            e.data
                        ))
                    })?;
                    // Configured headers (credentials) must not travel to another origin.
                    if endpoint.origin() != self.http.url.origin() {
                        return Err(McpError::protocol(format!(
                            "endpoint event names {endpoint}, another origin than the SSE URL {}; refusing to send messages there",
                            self.http.url
                        )));
                    }
                    self.endpoint = Some(endpoint);
                    self.inbound = Some(rx);
                    self.http
                        .phases
                        .add_exchange(Duration::ZERO, headers_at.elapsed());
                    return Ok(());
                }
                Some(StreamItem::Event(e)) => {
                    tracing::debug!(event = %e.event, "SSE event before `endpoint` skipped");
                }
                Some(StreamItem::Oversize(limit)) => {
                    self.http.counters.count_oversize();
                    return Err(McpError::protocol(format!(
                        "SSE event exceeded {limit} bytes before the endpoint event"
                    )));
                }
                Some(StreamItem::End(detail)) => {
                    self.closed = true;
                    return Err(McpError::StreamClosed {
                        detail: format!("SSE stream ended before the endpoint event: {detail}"),
                    });
                }
                None => {
                    self.closed = true;
                    return Err(McpError::StreamClosed {
                        detail: "SSE stream reader stopped before the endpoint event".into(),
                    });
                }
            }
        }
    }

    async fn post(&mut self, msg: &Value, deadline: Instant) -> Result<(), McpError> {
        let Some(endpoint) = self.endpoint.clone() else {
            return Err(McpError::protocol("no endpoint event received yet"));
        };
        let body = serde_json::to_vec(msg)
            .map_err(|e| McpError::protocol(format!("cannot encode request: {e}")))?;
        let this = &*self;
        let sent = send_authorized(
            this.http.auth(),
            &this.http.client,
            &this.http.url,
            deadline,
            || async {
                let mut req = this
                    .http
                    .client
                    .post(endpoint.clone())
                    .headers(this.http.request_headers(reqwest::Method::POST, &endpoint))
                    .header(CONTENT_TYPE, "application/json")
                    .body(body.clone());
                if let Some(traceparent) = &this.http.traceparent {
                    req = req.header("traceparent", traceparent);
                }
                let resp = timeout_at(deadline, this.http.phases.scope(req.send()))
                    .await
                    .map_err(|_| timeout_marker())?
                    .map_err(|e| map_send_error(endpoint.as_str(), &e))?;
                this.http.tls.note(&resp);
                this.http.counters.sent.fetch_add(1, Ordering::Relaxed);
                Ok(resp)
            },
        )
        .await;
        let mut resp = match sent {
            Ok(resp) => resp,
            Err(e @ (McpError::Connect { .. } | McpError::StreamClosed { .. })) => {
                // Refused or reset: the server is gone, and with it the stream.
                self.close();
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        let status = resp.status().as_u16();
        if status == 401 || status == 403 {
            return Err(auth_error(&resp));
        }
        if !resp.status().is_success() {
            let body = read_excerpt(&mut resp, 512, deadline).await;
            return Err(McpError::HttpStatus {
                status,
                body_excerpt: String::from_utf8_lossy(&body).trim().to_string(),
            });
        }
        drain_in_background(resp);
        Ok(())
    }

    /// POSTs a notification (connecting first if needed).
    pub(crate) async fn notify(&mut self, msg: &Value, deadline: Instant) -> Result<(), McpError> {
        if self.endpoint.is_none() {
            self.connect(deadline).await?;
        }
        let started = Instant::now();
        let posted = self.post(msg, deadline).await;
        self.http
            .phases
            .add_exchange(started.elapsed(), Duration::ZERO);
        posted
    }

    /// POSTs a request and waits on the stream for the response with id `want`.
    pub(crate) async fn roundtrip(
        &mut self,
        msg: &Value,
        want: u64,
        deadline: Instant,
        inbox: &mut Inbox,
    ) -> Result<Result<Value, RpcErrorObject>, McpError> {
        if self.closed {
            return Err(McpError::StreamClosed {
                detail: "the SSE stream already ended".into(),
            });
        }
        if self.endpoint.is_none() {
            self.connect(deadline).await?;
        }
        let started = Instant::now();
        let posted = self.post(msg, deadline).await;
        let posted_at = Instant::now();
        if posted.is_err() {
            self.http
                .phases
                .add_exchange(posted_at - started, Duration::ZERO);
        }
        posted?;
        let outcome = self.await_response(want, deadline, inbox).await;
        self.http
            .phases
            .add_exchange(posted_at - started, posted_at.elapsed());
        outcome
    }

    /// Waits on the event stream for the response with id `want`, answering server requests.
    async fn await_response(
        &mut self,
        want: u64,
        deadline: Instant,
        inbox: &mut Inbox,
    ) -> Result<Result<Value, RpcErrorObject>, McpError> {
        loop {
            let Some(rx) = self.inbound.as_mut() else {
                return Err(McpError::protocol("SSE stream not connected"));
            };
            let item = timeout_at(deadline, rx.recv())
                .await
                .map_err(|_| timeout_marker())?;
            let event = match item {
                Some(StreamItem::Event(e)) => e,
                Some(StreamItem::Oversize(limit)) => {
                    self.http.counters.count_oversize();
                    return Err(McpError::protocol(format!(
                        "SSE event exceeded {limit} bytes (max_message_bytes); it was skipped"
                    )));
                }
                Some(StreamItem::End(detail)) => {
                    self.closed = true;
                    return Err(McpError::StreamClosed { detail });
                }
                None => {
                    self.closed = true;
                    return Err(McpError::StreamClosed {
                        detail: "SSE stream reader stopped".into(),
                    });
                }
            };
            if event.event != "message" {
                continue;
            }
            let Ok(routed) = inbox.route_bytes(event.data.as_bytes(), want) else {
                tracing::debug!("non-JSON SSE message skipped");
                continue;
            };
            for r in routed {
                match r {
                    Routed::Matched(outcome) => return Ok(outcome),
                    Routed::Reply(reply) => self.post(&reply, deadline).await?,
                    Routed::Skipped => {}
                }
            }
        }
    }

    /// POSTs without waiting (best-effort cancellation), bounded by a short timeout.
    pub(crate) fn notify_detached(&self, msg: &Value) {
        let (Some(endpoint), Ok(body)) = (self.endpoint.clone(), serde_json::to_vec(msg)) else {
            return;
        };
        let req = self
            .http
            .client
            .post(endpoint.clone())
            .headers(self.http.request_headers(reqwest::Method::POST, &endpoint))
            .header(CONTENT_TYPE, "application/json")
            .body(body);
        self.http.counters.sent.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(1), req.send()).await;
        });
    }

    /// Drops the stream.
    pub fn close(&mut self) {
        if let Some(r) = self.reader.take() {
            r.abort();
        }
        self.inbound = None;
        self.closed = true;
    }
}

impl Drop for SseTransport {
    fn drop(&mut self) {
        self.close();
    }
}

async fn read_stream(
    mut resp: reqwest::Response,
    max_event: usize,
    tx: mpsc::Sender<StreamItem>,
    counters: Arc<WireCounters>,
) {
    let mut parser = SseParser::new(max_event);
    let mut items = Vec::new();
    let end = loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                counters.count_bytes(chunk.len());
                parser.push(&chunk, &mut items);
                for item in items.drain(..) {
                    let out = match item {
                        SseItem::Event(e) => StreamItem::Event(e),
                        SseItem::Oversize { limit } => StreamItem::Oversize(limit),
                    };
                    if tx.send(out).await.is_err() {
                        return;
                    }
                }
            }
            Ok(None) => break "the server closed the SSE stream".to_string(),
            Err(e) => break format!("the SSE stream broke: {e}"),
        }
    };
    let _ = tx.send(StreamItem::End(end)).await;
}
