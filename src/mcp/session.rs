//! `McpSession`: the dual-era MCP protocol (legacy `initialize` / modern `server/discover`)
//! on top of the stdio, Streamable HTTP and legacy SSE transports.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::time::Instant;

use super::dispatch::Inbox;
use super::error::{Heard, McpError};
use super::handshake::{self, Negotiation, UNSUPPORTED_PROTOCOL_VERSION};
use super::http_endpoint::HttpEndpoint;
use super::jsonrpc::{self, IdCounter, RpcErrorObject};
use super::legacy_sse::SseTransport;
use super::mirrored_headers::{self, ParamHeader};
use super::stdio::StdioTransport;
use super::streamable_http::{HttpTransport, MessageHeaders};
use super::tools;
use super::{
    Era, HttpPhases, LEGACY_REQUEST_VERSION, Limits, MODERN_VERSION, Notification, RequestOutcome,
    RequestRecord, TransportSpec, WireCounters,
};
use crate::otel::TraceSpan;
use crate::tls::TlsObservation;

pub use super::handshake::Handshake;

/// The params of a paginated list request: the cursor of the page asked for, if not the first.
fn page_params(cursor: Option<&str>) -> Value {
    match cursor {
        Some(c) => json!({ "cursor": c }),
        None => json!({}),
    }
}

/// The items of a paginated list method ([`McpSession::list_items`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ItemListing {
    /// Every item of every page, in order.
    pub items: Vec<Value>,
    /// Pages fetched.
    pub pages: usize,
    /// A limit (items, pages, a repeated cursor) stopped the listing.
    pub truncated: bool,
}
pub use super::tools::{ToolCallOutcome, ToolCatalog};

/// Most request records kept between two `take_records` calls (oldest dropped).
const MAX_RECORDS_KEPT: usize = 4096;

#[derive(Debug)]
enum Transport {
    Stdio(StdioTransport),
    Http(HttpTransport),
    Sse(SseTransport),
}

impl Transport {
    /// The HTTP server of either HTTP transport; `None` for stdio.
    fn http(&self) -> Option<&HttpEndpoint> {
        match self {
            Transport::Http(t) => Some(&t.http),
            Transport::Sse(t) => Some(&t.http),
            Transport::Stdio(_) => None,
        }
    }

    /// [`Transport::http`], to change.
    fn http_mut(&mut self) -> Option<&mut HttpEndpoint> {
        match self {
            Transport::Http(t) => Some(&mut t.http),
            Transport::Sse(t) => Some(&mut t.http),
            Transport::Stdio(_) => None,
        }
    }
}

/// Keeps `in_flight` right even when a request future is dropped.
struct InFlight(Arc<WireCounters>);

impl InFlight {
    fn new(counters: &Arc<WireCounters>) -> Self {
        counters.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(counters.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One conversation with one MCP server.
#[derive(Debug)]
pub struct McpSession {
    transport: Transport,
    limits: Limits,
    counters: Arc<WireCounters>,
    ids: IdCounter,
    inbox: Inbox,
    records: VecDeque<RequestRecord>,
    handshake: Option<Handshake>,
    /// Sessions re-established after the server lost one, since the last take.
    reinitializations: u64,
    /// What the last `tools/list` of a modern server over HTTP said about its tools'
    /// `x-mcp-header` annotations, for the `Mcp-Param-*` headers of later calls.
    tool_headers: ToolHeaders,
    /// The span the requests of the running probe are children of (docs/tracing.md).
    trace_parent: Option<TraceSpan>,
}

/// The mirrored-header view of the last tool catalog (modern HTTP only).
#[derive(Debug, Default)]
struct ToolHeaders {
    /// Annotated parameters of each valid tool.
    params: HashMap<String, Vec<ParamHeader>>,
    /// Tools whose definitions were rejected, and why: they must not be called.
    rejected: HashMap<String, String>,
}

/// Most `tools/call` retries of one call whose `input_required` answer asks only for its
/// `requestState` to be echoed (docs/probing.md#mrtr).
const MAX_STATE_ROUNDS: usize = 3;

fn client_info() -> Value {
    json!({"name": "mcp-exporter", "version": env!("CARGO_PKG_VERSION")})
}

/// Adds the modern-era `_meta` envelope to request params.
fn with_modern_meta(params: Option<Value>) -> Value {
    let mut obj = match params {
        Some(Value::Object(o)) => o,
        _ => Map::new(),
    };
    let mut meta = match obj.remove("_meta") {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };
    meta.insert(
        "io.modelcontextprotocol/protocolVersion".into(),
        json!(MODERN_VERSION),
    );
    meta.insert("io.modelcontextprotocol/clientInfo".into(), client_info());
    meta.insert(
        "io.modelcontextprotocol/clientCapabilities".into(),
        json!({}),
    );
    obj.insert("_meta".into(), Value::Object(meta));
    Value::Object(obj)
}

/// Adds the W3C `traceparent` to the `_meta` of request params (the OpenTelemetry MCP semantic
/// conventions' propagation, docs/tracing.md#propagation).
fn with_traceparent(params: Option<Value>, traceparent: &str) -> Value {
    let mut obj = match params {
        Some(Value::Object(o)) => o,
        _ => Map::new(),
    };
    let meta = obj
        .entry("_meta")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(meta) = meta {
        meta.insert("traceparent".into(), json!(traceparent));
    }
    Value::Object(obj)
}

/// Replaces the placeholder of a transport-level timeout with the method, the call's timeout
/// and what the server sent meanwhile.
fn fill_timeout(e: McpError, method: &str, after: Duration, heard: Heard) -> McpError {
    match e {
        McpError::Timeout { .. } => McpError::Timeout {
            method: method.to_string(),
            after,
            heard,
        },
        other => other,
    }
}

fn rpc_error(method: &str, e: RpcErrorObject) -> McpError {
    McpError::Rpc {
        method: method.to_string(),
        code: e.code,
        message: e.message,
    }
}

/// Errors after which trying `initialize` instead of `server/discover` is pointless.
fn ends_dual_era_probe(e: &McpError) -> bool {
    matches!(
        e,
        McpError::Spawn { .. }
            | McpError::Connect { .. }
            | McpError::Exited { .. }
            | McpError::AuthRequired { .. }
            | McpError::Authorization { .. }
            | McpError::StreamClosed { .. }
            | McpError::NoCommonVersion { .. }
    )
}

impl McpSession {
    /// Creates the transport: spawns the child (stdio) or builds the HTTP client. Does not handshake.
    pub async fn open(
        spec: &TransportSpec,
        limits: Limits,
        counters: Arc<WireCounters>,
    ) -> Result<Self, McpError> {
        let transport = match spec {
            TransportSpec::Stdio {
                command,
                args,
                env,
                cwd,
            } => Transport::Stdio(StdioTransport::spawn(
                command,
                args,
                env,
                cwd.as_ref(),
                &limits,
                counters.clone(),
            )?),
            TransportSpec::Http { url, headers, tls } => Transport::Http(HttpTransport::new(
                HttpEndpoint::new(
                    url,
                    headers,
                    tls,
                    counters.clone(),
                    &limits.http_clients,
                    limits.auth.clone(),
                )?,
                limits.max_message_bytes,
            )),
            TransportSpec::Sse { url, headers, tls } => Transport::Sse(SseTransport::new(
                HttpEndpoint::new(
                    url,
                    headers,
                    tls,
                    counters.clone(),
                    &limits.http_clients,
                    limits.auth.clone(),
                )?,
                limits.max_message_bytes,
            )),
        };
        Ok(McpSession {
            transport,
            inbox: Inbox::new(counters.clone(), limits.max_notifications_kept)
                .with_rate_limit(limits.max_notifications_per_second),
            limits,
            counters,
            ids: IdCounter::default(),
            records: VecDeque::new(),
            handshake: None,
            reinitializations: 0,
            tool_headers: ToolHeaders::default(),
            trace_parent: None,
        })
    }

    /// Makes each request that follows a child span of `parent` (its probe's span), with the
    /// W3C `traceparent` sent in `params._meta` and, over HTTP, as a header; `None` stops it.
    pub fn set_trace_parent(&mut self, parent: Option<TraceSpan>) {
        self.trace_parent = parent;
    }

    /// The span of one request, and the `traceparent` it travels with.
    fn request_span(
        &mut self,
        method: &str,
        tool: Option<&str>,
        id: u64,
        modern: bool,
    ) -> Option<(TraceSpan, String)> {
        use opentelemetry::KeyValue;
        let parent = self.trace_parent.as_ref()?;
        let version = if modern {
            MODERN_VERSION.to_string()
        } else {
            match &self.handshake {
                Some(h) => h.protocol_version.clone(),
                None => LEGACY_REQUEST_VERSION.to_string(),
            }
        };
        let mut attributes = vec![
            KeyValue::new("mcp.method.name", method.to_string()),
            KeyValue::new("jsonrpc.request.id", id.to_string()),
            KeyValue::new("mcp.protocol.version", version),
            KeyValue::new(
                "network.transport",
                match self.transport {
                    Transport::Stdio(_) => "pipe",
                    Transport::Http(_) | Transport::Sse(_) => "tcp",
                },
            ),
        ];
        let name = match tool {
            Some(tool) => {
                attributes.push(KeyValue::new("gen_ai.tool.name", tool.to_string()));
                attributes.push(KeyValue::new("gen_ai.operation.name", "execute_tool"));
                format!("{method} {tool}")
            }
            None => method.to_string(),
        };
        if let Some(session) = self.handshake.as_ref().and_then(|h| h.session_id.clone()) {
            attributes.push(KeyValue::new("mcp.session.id", session));
        }
        let span = parent.child(name, opentelemetry::trace::SpanKind::Client, attributes);
        let traceparent = span.traceparent();
        if let Some(http) = self.transport.http_mut() {
            http.set_traceparent(Some(traceparent.clone()));
        }
        Some((span, traceparent))
    }

    /// Ends a request's span with how the request ended.
    fn end_request_span(
        &mut self,
        span: TraceSpan,
        outcome: &Result<Result<Value, RpcErrorObject>, McpError>,
    ) {
        match outcome {
            Ok(Ok(result)) if result.get("isError").and_then(Value::as_bool) == Some(true) => {
                span.fail("tool_error", "the tool reported an error (isError)");
            }
            Ok(Ok(_)) => {}
            Ok(Err(rpc)) => span.fail(rpc.code.to_string(), rpc.message.clone()),
            Err(err) => span.fail(err.error_type(), err.to_string()),
        }
        span.end();
        if let Some(http) = self.transport.http_mut() {
            http.set_traceparent(None);
        }
    }

    /// True when tool definitions' `x-mcp-header` annotations apply: a modern server over
    /// Streamable HTTP (other transports may ignore them).
    fn mirrors_params(&self) -> bool {
        self.modern() && matches!(self.transport, Transport::Http(_))
    }

    fn modern(&self) -> bool {
        self.handshake
            .as_ref()
            .is_some_and(|h| h.era == Era::Modern)
    }

    /// The era probe's `server/discover` was refused and `initialize` then succeeded: the
    /// refusal was the server being legacy, not failing, so its record says `unsupported`.
    fn mark_discover_unsupported(&mut self) {
        if let Some(record) = self
            .records
            .iter_mut()
            .rev()
            .find(|r| r.method == "server/discover")
            && record.outcome == RequestOutcome::Error
        {
            record.outcome = RequestOutcome::Unsupported;
        }
    }

    fn push_record(&mut self, record: RequestRecord) {
        if self.records.len() >= MAX_RECORDS_KEPT {
            self.records.pop_front();
        }
        self.records.push_back(record);
    }

    /// One request/response exchange without session recovery. `Ok(Err(..))` = JSON-RPC error.
    async fn exchange(
        &mut self,
        method: &str,
        params: Option<Value>,
        tool: Option<&str>,
        modern: bool,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<Result<Value, RpcErrorObject>, McpError> {
        let id = self.ids.next_id();
        let span = self.request_span(method, tool, id, modern);
        let params = if modern {
            Some(with_modern_meta(params))
        } else {
            params
        };
        let params = match &span {
            Some((_, traceparent)) => Some(with_traceparent(params, traceparent)),
            None => params,
        };
        let mirrored = match (tool, &params) {
            (Some(tool), Some(params)) if modern && method == "tools/call" => {
                let annotated = self.tool_headers.params.get(tool);
                let arguments = params.get("arguments").unwrap_or(&Value::Null);
                annotated.map_or_else(Vec::new, |a| mirrored_headers::param_headers(a, arguments))
            }
            _ => Vec::new(),
        };
        let msg = jsonrpc::request(id, method, params);
        let headers = MessageHeaders {
            modern,
            method,
            name: tool,
            params: &mirrored,
        };
        let before_handshake = self.handshake.is_none();
        let started = Instant::now();
        let heard_before = self.counters.heard_mark();
        let outcome = {
            let _in_flight = InFlight::new(&self.counters);
            match &mut self.transport {
                Transport::Stdio(t) => {
                    t.roundtrip(&msg, id, deadline, &mut self.inbox, before_handshake)
                        .await
                }
                Transport::Http(t) => {
                    t.roundtrip(&msg, id, headers, deadline, &mut self.inbox)
                        .await
                }
                Transport::Sse(t) => t.roundtrip(&msg, id, deadline, &mut self.inbox).await,
            }
        }
        .map_err(|e| {
            let heard = Heard::since(heard_before, self.counters.heard_mark());
            fill_timeout(e, method, timeout, heard)
        });
        let ok = match &outcome {
            Ok(Ok(result)) => {
                method != "tools/call"
                    || result.get("isError").and_then(Value::as_bool) != Some(true)
            }
            _ => false,
        };
        self.push_record(RequestRecord {
            method: method.to_string(),
            tool: tool.map(str::to_string),
            duration: started.elapsed(),
            outcome: if ok {
                RequestOutcome::Ok
            } else {
                RequestOutcome::Error
            },
        });
        if let Some((span, _)) = span {
            self.end_request_span(span, &outcome);
        }
        if matches!(outcome, Err(McpError::Timeout { .. })) {
            self.inbox.abandon(id);
            if method != "initialize" {
                self.cancel(id, headers, timeout).await;
            }
        }
        outcome
    }

    /// Best-effort `notifications/cancelled` after a timeout (never blocks the caller long).
    async fn cancel(&mut self, id: u64, headers: MessageHeaders<'_>, timeout: Duration) {
        let note = jsonrpc::notification(
            "notifications/cancelled",
            Some(json!({"requestId": id, "reason": format!("no response within {timeout:?}")})),
        );
        let headers = MessageHeaders {
            method: "notifications/cancelled",
            name: None,
            params: &[],
            ..headers
        };
        match &mut self.transport {
            Transport::Stdio(t) => t.send_best_effort(&note).await,
            // Modern HTTP cancels by closing the response stream, which already happened.
            Transport::Http(_) if headers.modern => {}
            Transport::Http(t) => t.notify_detached(&note, headers),
            Transport::Sse(t) => t.notify_detached(&note),
        }
    }

    /// A request whose JSON-RPC error becomes `McpError::Rpc`; over legacy HTTP a lost session is
    /// re-initialized once (within the same deadline) and the request retried.
    async fn request(
        &mut self,
        method: &str,
        params: Option<Value>,
        tool: Option<&str>,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<Value, McpError> {
        let modern = self.modern();
        let first = self
            .exchange(method, params.clone(), tool, modern, deadline, timeout)
            .await;
        let outcome = match first {
            Err(McpError::SessionLost { detail }) if !modern => {
                tracing::info!(%detail, "HTTP session lost; re-initializing once");
                let mut notes = vec![format!("session re-initialized after: {detail}")];
                if let Some(previous) = &self.handshake {
                    let earlier = previous.notes.iter();
                    notes.extend(
                        earlier
                            .filter(|n| !n.starts_with("session re-initialized"))
                            .cloned(),
                    );
                }
                self.reinitializations += 1;
                self.legacy_initialize(deadline, timeout, notes).await?;
                self.exchange(method, params, tool, modern, deadline, timeout)
                    .await
            }
            other => other,
        };
        outcome?.map_err(|e| rpc_error(method, e))
    }

    async fn notify(&mut self, method: &str, deadline: Instant) -> Result<(), McpError> {
        let msg = jsonrpc::notification(method, None);
        let headers = MessageHeaders {
            modern: false,
            method,
            name: None,
            params: &[],
        };
        match &mut self.transport {
            Transport::Stdio(t) => t.send(&msg, deadline, true).await,
            Transport::Http(t) => t.notify(&msg, headers, deadline).await,
            Transport::Sse(t) => t.notify(&msg, deadline).await,
        }
    }

    /// Dual-era handshake (docs/probing.md#dual-era). `era_hint` = the era remembered from an earlier probe:
    /// `Some(Legacy)` => initialize directly; `Some(Modern)` => server/discover directly; `None` =>
    /// discover first with `limits.discover_timeout`, fall back to initialize on anything non-modern.
    pub async fn handshake(
        &mut self,
        era_hint: Option<Era>,
        timeout: Duration,
    ) -> Result<Handshake, McpError> {
        // The era probe may spend the whole deadline on a trickling `server/discover`
        // answer, leaving `initialize` no time to hear anything itself: a timeout then
        // reports what arrived while discover was awaited.
        let mut discover_heard = Heard::Nothing;
        self.handshake_in_time(era_hint, timeout, &mut discover_heard)
            .await
            .map_err(|e| match e {
                McpError::Timeout {
                    method,
                    after,
                    heard: Heard::Nothing,
                } => McpError::Timeout {
                    method,
                    after,
                    heard: discover_heard,
                },
                other => other,
            })
    }

    async fn handshake_in_time(
        &mut self,
        era_hint: Option<Era>,
        timeout: Duration,
        discover_heard: &mut Heard,
    ) -> Result<Handshake, McpError> {
        let deadline = Instant::now() + timeout;
        let mut notes = Vec::new();
        self.handshake = None;
        if let Transport::Http(t) = &mut self.transport {
            t.reset_session();
        }
        let sse = matches!(self.transport, Transport::Sse(_));
        let mut discover_refused = false;
        if sse && era_hint == Some(Era::Modern) {
            notes.push("HTTP+SSE is legacy-only; the remembered modern era was ignored".into());
        }
        if !sse && era_hint != Some(Era::Legacy) {
            let (discover_deadline, window) = if era_hint == Some(Era::Modern) {
                (deadline, timeout)
            } else {
                let window = self.limits.discover_timeout.min(timeout);
                (Instant::now() + window, window)
            };
            match self.discover(discover_deadline, window).await {
                Ok(handshake) => {
                    self.handshake = Some(handshake.clone());
                    return Ok(handshake);
                }
                Err(e) if ends_dual_era_probe(&e) => return Err(e),
                Err(e) => {
                    discover_refused = true;
                    if let McpError::Timeout { heard, .. } = &e {
                        *discover_heard = *heard;
                    }
                    if era_hint == Some(Era::Modern) {
                        notes.push(format!("remembered era was modern, but {e}"));
                    }
                    notes.push(format!(
                        "discover unanswered, fell back to initialize ({e})"
                    ));
                }
            }
        }
        match self
            .legacy_initialize(deadline, timeout, notes.clone())
            .await
        {
            // A modern server that answered discover late (slow start, load) now refuses
            // initialize with a modern error (over HTTP typically -32020: the modern headers are
            // missing): it is modern after all, so ask again with the time left.
            Err(McpError::Rpc { code, message, .. })
                if handshake::is_modern_error(code) && !sse =>
            {
                notes.push(format!(
                    "initialize refused ({message}); server/discover retried"
                ));
                let mut handshake = self.discover(deadline, timeout).await?;
                notes.append(&mut handshake.notes);
                handshake.notes = notes;
                self.handshake = Some(handshake.clone());
                Ok(handshake)
            }
            Ok(handshake) => {
                if discover_refused {
                    self.mark_discover_unsupported();
                }
                Ok(handshake)
            }
            other => other,
        }
    }

    /// `server/discover`; succeeds only for a server that supports the modern version. A
    /// refusal of our version (`-32022`) is negotiated from the versions the server lists: it is
    /// asked once more when it lists ours, and the probe ends when it lists none we speak.
    async fn discover(
        &mut self,
        deadline: Instant,
        window: Duration,
    ) -> Result<Handshake, McpError> {
        let mut outcome = self
            .exchange("server/discover", None, None, true, deadline, window)
            .await?;
        let mut notes = Vec::new();
        if let Err(refusal) = &outcome
            && refusal.code == UNSUPPORTED_PROTOCOL_VERSION
        {
            match handshake::negotiate(refusal) {
                Negotiation::RetryModern => {
                    notes.push(format!(
                        "server/discover: {MODERN_VERSION} refused ({}) though the server lists it; asked again",
                        refusal.message
                    ));
                    outcome = self
                        .exchange("server/discover", None, None, true, deadline, window)
                        .await?;
                }
                Negotiation::NoCommonVersion(supported) => {
                    return Err(McpError::NoCommonVersion { supported });
                }
                // `from_discover` reports it and the caller falls back to `initialize`.
                Negotiation::Legacy => {}
            }
        }
        let mut handshake = handshake::from_discover(outcome)?;
        notes.append(&mut handshake.notes);
        handshake.notes = notes;
        Ok(handshake)
    }

    /// `initialize` + `notifications/initialized` (legacy era).
    async fn legacy_initialize(
        &mut self,
        deadline: Instant,
        timeout: Duration,
        notes: Vec<String>,
    ) -> Result<Handshake, McpError> {
        if let Transport::Http(t) = &mut self.transport {
            t.reset_session();
        }
        self.handshake = None;
        let params = json!({
            "protocolVersion": LEGACY_REQUEST_VERSION,
            "capabilities": {},
            "clientInfo": client_info(),
        });
        let result = self
            .exchange("initialize", Some(params), None, false, deadline, timeout)
            .await?
            .map_err(|e| rpc_error("initialize", e))?;
        let mut handshake = handshake::from_initialize(&result, notes)?;
        let session_id = match &mut self.transport {
            Transport::Http(t) => {
                t.set_protocol_version(&handshake.protocol_version);
                t.session_id().map(str::to_string)
            }
            _ => None,
        };
        self.notify("notifications/initialized", deadline)
            .await
            .map_err(|e| fill_timeout(e, "notifications/initialized", timeout, Heard::Nothing))?;
        handshake.session_id = session_id;
        self.handshake = Some(handshake.clone());
        Ok(handshake)
    }

    /// Liveness: ping (legacy) or server/discover (modern). Returns the round-trip time.
    pub async fn ping(&mut self, timeout: Duration) -> Result<Duration, McpError> {
        let deadline = Instant::now() + timeout;
        let started = Instant::now();
        let method = if self.modern() {
            "server/discover"
        } else {
            "ping"
        };
        let result = self.request(method, None, None, deadline, timeout).await?;
        if !result.is_object() {
            return Err(McpError::protocol(format!(
                "{method} result is not an object: {result}"
            )));
        }
        Ok(started.elapsed())
    }

    /// tools/list following nextCursor (modern: with _meta + Mcp-Method headers; over HTTP the
    /// tools with invalid `x-mcp-header` annotations are rejected, and the annotations of the
    /// others kept for the `Mcp-Param-*` headers of their calls).
    pub async fn list_tools(&mut self, timeout: Duration) -> Result<ToolCatalog, McpError> {
        let deadline = Instant::now() + timeout;
        let mut pages =
            tools::PageCollector::new(self.limits.max_tools, self.limits.max_tool_pages);
        if self.mirrors_params() {
            pages = pages.with_param_headers();
        }
        let mut cursor: Option<String> = None;
        loop {
            let params = page_params(cursor.as_deref());
            let result = self
                .request("tools/list", Some(params), None, deadline, timeout)
                .await?;
            match pages.add_page(&result, cursor.as_deref())? {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        let catalog = pages.finish();
        self.tool_headers = ToolHeaders {
            params: catalog
                .param_headers
                .iter()
                .map(|(name, params)| (name.clone(), params.clone()))
                .collect(),
            rejected: catalog
                .rejected
                .iter()
                .map(|r| (r.name.clone(), r.reason.clone()))
                .collect(),
        };
        Ok(catalog)
    }

    /// Whether the server's handshake listed `capability` (`prompts`, `resources`, ...) among
    /// its capabilities.
    pub fn offers(&self, capability: &str) -> bool {
        self.handshake
            .as_ref()
            .is_some_and(|h| h.capabilities.get(capability).is_some_and(|c| !c.is_null()))
    }

    /// Every page of a paginated list method (`prompts/list`, `resources/templates/list`): the
    /// items of each page's `key` array, in order, within the limits of `tools/list` (at most
    /// `max_tools` items and `max_tool_pages` pages; a repeated cursor stops). `truncated` says
    /// a limit stopped the listing.
    pub async fn list_items(
        &mut self,
        method: &str,
        key: &str,
        timeout: Duration,
    ) -> Result<ItemListing, McpError> {
        let deadline = Instant::now() + timeout;
        let mut listing = ItemListing::default();
        let mut cursor: Option<String> = None;
        loop {
            let params = page_params(cursor.as_deref());
            let result = self
                .request(method, Some(params), None, deadline, timeout)
                .await?;
            let items = result.get(key).and_then(Value::as_array).ok_or_else(|| {
                McpError::protocol(format!("{method} result has no `{key}` array"))
            })?;
            listing.pages += 1;
            let room = self.limits.max_tools.saturating_sub(listing.items.len());
            listing.truncated |= items.len() > room;
            listing.items.extend(items.iter().take(room).cloned());
            let next = result
                .get("nextCursor")
                .and_then(Value::as_str)
                .filter(|c| !c.is_empty());
            match next {
                _ if listing.truncated => break,
                None => break,
                Some(c)
                    if Some(c) == cursor.as_deref()
                        || listing.pages >= self.limits.max_tool_pages =>
                {
                    listing.truncated = true;
                    break;
                }
                Some(c) => cursor = Some(c.to_string()),
            }
        }
        Ok(listing)
    }

    /// tools/call name+arguments. A JSON-RPC error is `Err(McpError::Rpc{..})`; isError:true is
    /// `Ok(is_error=true)`. A tool the last `tools/list` rejected is not called
    /// (`Err(McpError::ToolRejected{..})`). An `input_required` answer (docs/probing.md#mrtr) is
    /// retried with its `requestState` echoed when it asks for nothing else, and is
    /// `Ok(needs_input=Some(methods))` when it asks for input a prober cannot give.
    pub async fn call_tool(
        &mut self,
        name: &str,
        arguments: Value,
        timeout: Duration,
    ) -> Result<ToolCallOutcome, McpError> {
        let deadline = Instant::now() + timeout;
        if self.mirrors_params()
            && let Some(reason) = self.tool_headers.rejected.get(name)
        {
            return Err(McpError::ToolRejected {
                tool: name.to_string(),
                reason: reason.clone(),
            });
        }
        let mut params = json!({"name": name, "arguments": arguments});
        let mut rounds = 0;
        loop {
            let result = self
                .request(
                    "tools/call",
                    Some(params.clone()),
                    Some(name),
                    deadline,
                    timeout,
                )
                .await?;
            let Some(asked) = tools::input_required(&result)? else {
                return tools::call_outcome(&result);
            };
            match asked.request_state {
                Some(state) if asked.methods.is_empty() && rounds < MAX_STATE_ROUNDS => {
                    rounds += 1;
                    params = json!({"name": name, "arguments": params["arguments"].take(), "requestState": state});
                }
                _ => {
                    let methods = if asked.methods.is_empty() {
                        vec![format!(
                            "requestState echoed {rounds} times, still input_required"
                        )]
                    } else {
                        asked.methods
                    };
                    return Ok(ToolCallOutcome {
                        is_error: false,
                        text: String::new(),
                        structured: None,
                        needs_input: Some(methods),
                    });
                }
            }
        }
    }

    /// False once the child exited / the SSE stream closed / the transport is known broken. HTTP: true.
    pub fn is_alive(&mut self) -> bool {
        match &mut self.transport {
            Transport::Stdio(t) => t.is_alive(),
            Transport::Http(_) => true,
            Transport::Sse(t) => t.is_alive(),
        }
    }

    /// The handshake result once done.
    pub fn handshake_info(&self) -> Option<&Handshake> {
        self.handshake.as_ref()
    }

    /// How many times a lost HTTP session was re-established since the last call (drains).
    pub fn take_reinitializations(&mut self) -> u64 {
        std::mem::take(&mut self.reinitializations)
    }

    /// Request records since the last call (drains).
    pub fn take_records(&mut self) -> Vec<RequestRecord> {
        self.records.drain(..).collect()
    }

    /// What the TLS of the HTTP responses since the last call showed (drains); `None` for
    /// stdio and plain HTTP.
    pub fn take_tls(&self) -> Option<TlsObservation> {
        self.transport.http().and_then(HttpEndpoint::take_tls)
    }

    /// Where the time of the HTTP requests since the last call went (drains); `None` for stdio.
    pub fn take_http_phases(&self) -> Option<HttpPhases> {
        self.transport.http().map(HttpEndpoint::take_phases)
    }

    /// Notifications received since the last call (drains; bounded by
    /// `limits.max_notifications_kept`, oldest dropped).
    pub fn take_notifications(&mut self) -> Vec<Notification> {
        self.inbox.take_notifications()
    }

    /// Complete stderr lines the child wrote since the last call (stdio; bounded, see
    /// `StdioTransport::take_stderr_lines`); empty for HTTP.
    pub fn take_stderr_lines(&self) -> Vec<String> {
        match &self.transport {
            Transport::Stdio(t) => t.take_stderr_lines(),
            _ => Vec::new(),
        }
    }

    /// Last `max_bytes` of the child's stderr (stdio), lossy UTF-8; empty for HTTP.
    pub fn stderr_tail(&self, max_bytes: usize) -> String {
        match &self.transport {
            Transport::Stdio(t) => t.stderr_tail(max_bytes),
            _ => String::new(),
        }
    }

    /// Child PID (stdio) for process sampling/tests.
    pub fn pid(&self) -> Option<u32> {
        match &self.transport {
            Transport::Stdio(t) => t.pid(),
            _ => None,
        }
    }

    /// Ends the session: stdio = close stdin, wait grace, SIGTERM the process group, wait grace,
    /// SIGKILL the group; reap the child. HTTP legacy = DELETE with Mcp-Session-Id (ignore 405).
    /// SSE = drop the stream. Bounded in time.
    pub async fn shutdown(self) {
        let grace = self.limits.shutdown_grace;
        match self.transport {
            Transport::Stdio(t) => t.shutdown(grace).await,
            Transport::Http(mut t) => t.delete_session(Instant::now() + grace).await,
            Transport::Sse(mut t) => t.close(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_joins_the_meta_of_params() {
        const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let p = with_traceparent(Some(with_modern_meta(Some(json!({"cursor": "c"})))), TP);
        assert_eq!(p["_meta"]["traceparent"], TP);
        assert_eq!(
            p["_meta"]["io.modelcontextprotocol/protocolVersion"],
            MODERN_VERSION
        );
        assert_eq!(p["cursor"], "c");
        assert_eq!(
            with_traceparent(None, TP),
            json!({"_meta": {"traceparent": TP}}),
            "a ping without params gets them"
        );
    }

    #[test]
    fn modern_meta_is_merged_into_params() {
        let p = with_modern_meta(Some(json!({"cursor": "c", "_meta": {"x": 1}})));
        assert_eq!(p["cursor"], "c");
        assert_eq!(p["_meta"]["x"], 1);
        assert_eq!(
            p["_meta"]["io.modelcontextprotocol/protocolVersion"],
            MODERN_VERSION
        );
        assert_eq!(
            p["_meta"]["io.modelcontextprotocol/clientInfo"]["name"],
            "mcp-exporter"
        );
        assert_eq!(
            with_modern_meta(None)["_meta"]["io.modelcontextprotocol/clientCapabilities"],
            json!({})
        );
    }

    #[test]
    fn timeouts_get_method_and_duration() {
        let e = fill_timeout(
            McpError::Timeout {
                method: String::new(),
                after: Duration::ZERO,
                heard: Heard::Nothing,
            },
            "ping",
            Duration::from_secs(2),
            Heard::Partial { bytes: 7 },
        );
        let text = e.to_string();
        assert!(text.contains("`ping` within 2s"), "{text}");
        assert!(
            text.contains("7 bytes arrived but no complete message"),
            "{text}"
        );
    }

    mod against_a_scripted_server {
        use super::super::super::test_server::{
            json_response, rpc_error_response, scripted_server,
        };
        use super::*;

        const WITHIN: Duration = Duration::from_secs(5);

        async fn open(url: &url::Url) -> McpSession {
            let spec = TransportSpec::Http {
                url: url.clone(),
                headers: Vec::new(),
                tls: Default::default(),
            };
            McpSession::open(&spec, Limits::default(), Arc::default())
                .await
                .expect("session opens")
        }

        fn result(id: u64, result: Value) -> String {
            json_response(&json!({"jsonrpc": "2.0", "id": id, "result": result}))
        }

        fn discovered(id: u64) -> String {
            result(
                id,
                json!({"resultType": "complete", "supportedVersions": [MODERN_VERSION],
                       "capabilities": {"tools": {}},
                       "_meta": {"io.modelcontextprotocol/serverInfo": {"name": "s", "version": "1"}}}),
            )
        }

        fn methods(seen: &[super::super::super::test_server::Seen]) -> Vec<String> {
            seen.iter()
                .map(|s| s.body["method"].as_str().unwrap_or_default().to_string())
                .collect()
        }

        #[tokio::test]
        async fn a_refused_version_the_server_lists_is_asked_for_again() {
            let refusal = json!({"supported": [MODERN_VERSION], "requested": MODERN_VERSION});
            let (url, seen) = scripted_server(vec![
                rpc_error_response(400, 1, -32022, refusal),
                discovered(2),
            ])
            .await;
            let handshake = open(&url).await.handshake(None, WITHIN).await;
            let handshake = handshake.expect("modern after the retry");
            assert_eq!(handshake.era, Era::Modern);
            assert!(
                handshake.notes.iter().any(|n| n.contains("asked again")),
                "{:?}",
                handshake.notes
            );
            let seen = seen.lock().expect("log");
            assert_eq!(methods(&seen), ["server/discover", "server/discover"]);
            for request in seen.iter() {
                assert_eq!(request.header("mcp-protocol-version"), Some(MODERN_VERSION));
                let meta = &request.body["params"]["_meta"];
                assert_eq!(
                    meta["io.modelcontextprotocol/protocolVersion"],
                    MODERN_VERSION
                );
                assert!(meta["io.modelcontextprotocol/clientCapabilities"].is_object());
                assert!(meta["io.modelcontextprotocol/clientInfo"].is_object());
            }
        }

        #[tokio::test]
        async fn no_version_in_common_ends_the_handshake_without_initialize() {
            let refusal = json!({"supported": ["2099-01-01"]});
            let (url, seen) =
                scripted_server(vec![rpc_error_response(400, 1, -32022, refusal)]).await;
            let outcome = open(&url).await.handshake(None, WITHIN).await;
            assert!(
                matches!(&outcome, Err(McpError::NoCommonVersion { supported }) if supported == &["2099-01-01"]),
                "{outcome:?}"
            );
            assert_eq!(seen.lock().expect("log").len(), 1);
        }

        #[tokio::test]
        async fn initialize_refused_with_a_modern_error_means_the_server_is_modern_after_all() {
            let not_json =
                "HTTP/1.1 400 Bad Request\r\ncontent-length: 2\r\nconnection: close\r\n\r\nno";
            let (url, seen) = scripted_server(vec![
                not_json.to_string(),
                rpc_error_response(400, 2, -32020, Value::Null),
                discovered(3),
            ])
            .await;
            let handshake = open(&url).await.handshake(None, WITHIN).await;
            assert_eq!(handshake.map(|h| h.era).ok(), Some(Era::Modern));
            assert_eq!(
                methods(&seen.lock().expect("log")),
                ["server/discover", "initialize", "server/discover"]
            );
        }

        /// A session past a modern handshake (request id 1) with `script` after it.
        async fn modern(
            script: Vec<String>,
        ) -> (
            McpSession,
            Arc<std::sync::Mutex<Vec<super::super::super::test_server::Seen>>>,
        ) {
            let mut all = vec![discovered(1)];
            all.extend(script);
            let (url, seen) = scripted_server(all).await;
            let mut session = open(&url).await;
            let handshake = session.handshake(Some(Era::Modern), WITHIN).await;
            assert_eq!(handshake.map(|h| h.era).ok(), Some(Era::Modern));
            (session, seen)
        }

        #[tokio::test]
        async fn an_answer_asking_only_for_its_state_is_retried_with_that_state() {
            let (mut session, seen) = modern(vec![
                result(2, json!({"resultType": "input_required", "requestState": "opaque \"1\""})),
                result(3, json!({"resultType": "complete", "content": [{"type": "text", "text": "done"}]})),
            ])
            .await;
            let outcome = session.call_tool("t", json!({"x": 1}), WITHIN).await;
            let outcome = outcome.expect("the retry completes");
            assert_eq!((outcome.text.as_str(), outcome.needs_input), ("done", None));
            let seen = seen.lock().expect("log");
            let (first, retry) = (&seen[1].body, &seen[2].body);
            assert_ne!(first["id"], retry["id"]);
            assert_eq!(first["params"].get("requestState"), None);
            assert_eq!(retry["params"]["requestState"], "opaque \"1\"");
            assert_eq!(retry["params"]["arguments"], json!({"x": 1}));
            assert_eq!(retry["params"].get("inputResponses"), None);
        }

        #[tokio::test]
        async fn input_a_prober_cannot_give_ends_the_call_as_needing_input() {
            let (mut session, seen) = modern(vec![result(
                2,
                json!({"resultType": "input_required", "requestState": "s",
                       "inputRequests": {"confirm": {"method": "elicitation/create", "params": {}}}}),
            )])
            .await;
            let outcome = session.call_tool("t", json!({}), WITHIN).await;
            assert_eq!(
                outcome.ok().and_then(|o| o.needs_input),
                Some(vec!["elicitation/create".to_string()])
            );
            assert_eq!(seen.lock().expect("log").len(), 2, "no retry");
        }

        #[tokio::test]
        async fn rejected_tools_are_never_called_and_annotated_parameters_are_mirrored() {
            let tools = json!({"resultType": "complete", "tools": [
                {"name": "valid_tool", "inputSchema": {"type": "object", "properties": {
                    "region": {"type": "string", "x-mcp-header": "Region"},
                    "query": {"type": "string"}}}},
                {"name": "bad", "inputSchema": {"type": "object", "properties": {
                    "v": {"type": "string", "x-mcp-header": ""}}}}]});
            let (mut session, seen) = modern(vec![
                result(2, tools),
                result(3, json!({"resultType": "complete", "content": []})),
            ])
            .await;
            let catalog = session.list_tools(WITHIN).await.expect("tools/list");
            assert_eq!(catalog.names, ["valid_tool"]);
            let refused = session.call_tool("bad", json!({"v": "x"}), WITHIN).await;
            assert!(
                matches!(&refused, Err(McpError::ToolRejected { tool, .. }) if tool == "bad"),
                "{refused:?}"
            );
            let args = json!({"region": "us-west1", "query": "SELECT 1"});
            session
                .call_tool("valid_tool", args, WITHIN)
                .await
                .expect("tools/call");
            let seen = seen.lock().expect("log");
            assert_eq!(
                methods(&seen),
                ["server/discover", "tools/list", "tools/call"],
                "the rejected tool was never sent"
            );
            let call = &seen[2];
            assert_eq!(call.header("mcp-name"), Some("valid_tool"));
            assert_eq!(call.header("mcp-param-region"), Some("us-west1"));
            assert_eq!(call.header("mcp-param-query"), None);
        }
    }
}
