//! One client request through the proxy: its body is read (it is one JSON-RPC message; one
//! longer than [`MAX_HELD_REQUEST`] is streamed on as it arrives), accounted as it passes
//! ([`crate::traffic::scan`]) and sent upstream with
//! every end-to-end header; the upstream's status and headers come back as they are and its
//! body is streamed to the client chunk by chunk ([`super::relay`]). An upstream the proxy cannot
//! reach answers `502`, one that sends no headers in time `504`, each with a plain-text reason.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use tokio::sync::watch;

use crate::traffic::frame::MAX_FRAME_BYTES;
use crate::traffic::scan::FrameScanner;
use crate::traffic::totals::Peer;

use super::accounts::{Accounts, Ending, ExchangeId, Scope};
use super::headers::end_to_end;
use super::observe::{BodyKind, ResponseObserver};
use super::relay::{EndpointRewrite, relay};
use super::upstream::Upstream;
use super::upstream_client::UpstreamClient;

/// The header carrying a Streamable HTTP session.
pub const SESSION_HEADER: &str = "mcp-session-id";

/// What every request of one proxy shares.
#[derive(Debug)]
pub struct Forwarder {
    /// Where requests go.
    pub upstream: Upstream,
    /// The HTTP client (connection pool) to the upstream.
    pub client: UpstreamClient,
    /// Longest wait for the upstream's response headers.
    pub timeout: Duration,
    /// The proxy's counters.
    pub accounts: Arc<Accounts>,
    /// Turns true when the proxy stops: open streams end.
    pub stop: watch::Receiver<bool>,
}

/// Closes the exchange if the request ends before a response body takes it over.
struct ExchangeGuard {
    accounts: Arc<Accounts>,
    exchange: ExchangeId,
    ending: Ending,
    armed: bool,
}

impl Drop for ExchangeGuard {
    fn drop(&mut self) {
        if self.armed {
            self.accounts.close_exchange(self.exchange, self.ending);
        }
    }
}

/// The axum handler: every method, every path.
pub async fn forward(State(proxy): State<Arc<Forwarder>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let accounts = &proxy.accounts;
    let request_session = header_str(&parts.headers, SESSION_HEADER);
    // A POST to an endpoint a legacy SSE stream announced belongs to that stream's session.
    let legacy = parts.method == Method::POST && accounts.has_session(path_and_query);
    let session = if legacy {
        Some(path_and_query)
    } else {
        request_session
    };
    let exchange = accounts.open_exchange(session);
    let mut guard = ExchangeGuard {
        accounts: accounts.clone(),
        exchange,
        ending: Ending::Unanswered,
        armed: true,
    };
    let scope = Scope {
        exchange,
        session,
        session_only: legacy,
    };

    let mut headers = end_to_end(&parts.headers);
    let body = match read_body(body, accounts, scope).await {
        Ok(ReadBody::Whole(bytes)) => {
            headers.remove(header::CONTENT_LENGTH);
            Body::from(bytes)
        }
        Ok(ReadBody::Streamed(body)) => body,
        Err(err) => {
            return plain(
                StatusCode::BAD_REQUEST,
                format!("cannot read the request body: {err}"),
            );
        }
    };
    let target = proxy.upstream.target(path_and_query);
    let uri = match Uri::try_from(target.as_str()) {
        Ok(uri) => uri,
        Err(err) => {
            guard.ending = Ending::HttpStatus(StatusCode::BAD_GATEWAY.as_u16());
            return plain(
                StatusCode::BAD_GATEWAY,
                format!("mcp-exporter proxy: the upstream target {target} is not a URI: {err}\n"),
            );
        }
    };
    let mut request = axum::http::Request::new(body);
    *request.method_mut() = parts.method.clone();
    *request.uri_mut() = uri;
    *request.headers_mut() = headers;
    let response = match tokio::time::timeout(proxy.timeout, proxy.client.request(request)).await {
        Err(_) => {
            guard.ending = Ending::HttpStatus(StatusCode::GATEWAY_TIMEOUT.as_u16());
            tracing::warn!(upstream = %target, timeout = ?proxy.timeout, "proxy: upstream sent no response in time");
            return plain(
                StatusCode::GATEWAY_TIMEOUT,
                format!(
                    "mcp-exporter proxy: the upstream {target} sent no response within {}\n",
                    humantime::format_duration(proxy.timeout)
                ),
            );
        }
        Ok(Err(err)) => {
            guard.ending = Ending::HttpStatus(StatusCode::BAD_GATEWAY.as_u16());
            let reason = error_chain(&err);
            tracing::warn!(upstream = %target, %reason, "proxy: upstream unreachable");
            return plain(
                StatusCode::BAD_GATEWAY,
                format!("mcp-exporter proxy: cannot reach the upstream {target}: {reason}\n"),
            );
        }
        Ok(Ok(response)) => response,
    };
    let (response, upstream_body) = response.into_parts();

    let status = response.status;
    let now = Instant::now();
    let stream_session = follow_session(
        accounts,
        &parts.method,
        status,
        request_session,
        header_str(&response.headers, SESSION_HEADER),
        now,
    );
    let content_type = header_str(&response.headers, header::CONTENT_TYPE.as_str()).unwrap_or("");
    let kind = BodyKind::for_content_type(content_type);
    let is_stream = matches!(kind, BodyKind::Events(_));
    let expected = header_str(&response.headers, header::CONTENT_LENGTH.as_str())
        .and_then(|len| len.trim().parse::<u64>().ok());
    let mut observer = ResponseObserver::new(accounts.clone(), exchange, kind, expected);
    guard.armed = false;
    if !status.is_success() {
        observer.ending = Ending::HttpStatus(status.as_u16());
    }
    if legacy {
        observer.session = session.map(str::to_string);
        observer.session_only = true;
    } else {
        observer.session = stream_session;
        observer.session_only = parts.method == Method::GET && observer.session.is_some();
    }
    let mut response_headers = end_to_end(&response.headers);
    // A GET stream may be a legacy SSE stream: its `endpoint` event is rewritten.
    let rewrite = (parts.method == Method::GET && is_stream && status.is_success()).then(|| {
        response_headers.remove(header::CONTENT_LENGTH);
        EndpointRewrite::new(proxy.upstream.clone(), target)
    });
    let body = relay(
        http_body_util::BodyDataStream::new(upstream_body),
        observer,
        rewrite,
        proxy.stop.clone(),
    );
    let mut out = Response::new(Body::from_stream(body));
    *out.status_mut() = status;
    *out.headers_mut() = response_headers;
    out
}

/// Most bytes of a request body held before it is sent on: a body that is complete within
/// them (every MCP request in practice) goes upstream in one piece; a longer one is sent on as
/// its chunks arrive, read on the side as they pass.
pub const MAX_HELD_REQUEST: usize = 64 * 1024;

/// What the proxy read of a request body.
enum ReadBody {
    /// All of it.
    Whole(Bytes),
    /// Past [`MAX_HELD_REQUEST`]: what was read, then the rest as it comes.
    Streamed(Body),
}

/// Reads a request body as [`MAX_HELD_REQUEST`] says, accounting for it as it passes, and
/// returns what is sent upstream.
async fn read_body(
    mut body: Body,
    accounts: &Arc<Accounts>,
    scope: Scope<'_>,
) -> Result<ReadBody, axum::Error> {
    let mut side = RequestSide {
        accounts: accounts.clone(),
        exchange: scope.exchange,
        session: scope.session.map(str::to_string),
        session_only: scope.session_only,
        scanner: FrameScanner::new(),
        done: false,
    };
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut size = 0usize;
    while !body.is_end_stream() {
        let Some(chunk) = next_data(&mut body).await? else {
            break;
        };
        size += chunk.len();
        side.observe(&chunk);
        chunks.push(chunk);
        if size > MAX_HELD_REQUEST && !body.is_end_stream() {
            let tail = RequestTail { body, side };
            let all = futures_util::stream::iter(chunks.into_iter().map(Ok)).chain(tail);
            return Ok(ReadBody::Streamed(Body::from_stream(all)));
        }
    }
    side.finish(Instant::now());
    let whole = match chunks.len() {
        0 => Bytes::new(),
        1 => chunks.swap_remove(0),
        _ => {
            let mut joined = Vec::with_capacity(size);
            for chunk in &chunks {
                joined.extend_from_slice(chunk);
            }
            Bytes::from(joined)
        }
    };
    Ok(ReadBody::Whole(whole))
}

/// The next data chunk of `body` (trailers are skipped), `None` at its end.
async fn next_data(body: &mut Body) -> Result<Option<Bytes>, axum::Error> {
    std::future::poll_fn(|cx| poll_data(body, cx)).await
}

fn poll_data(body: &mut Body, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, axum::Error>> {
    loop {
        return match Pin::new(&mut *body).poll_frame(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => Poll::Ready(Ok(None)),
            Poll::Ready(Some(Err(err))) => Poll::Ready(Err(err)),
            Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                Ok(data) => Poll::Ready(Ok(Some(data))),
                Err(_trailers) => continue,
            },
        };
    }
}

/// The accounting of a request body, chunk by chunk.
struct RequestSide {
    accounts: Arc<Accounts>,
    exchange: ExchangeId,
    session: Option<String>,
    session_only: bool,
    scanner: FrameScanner,
    done: bool,
}

impl RequestSide {
    fn observe(&mut self, chunk: &[u8]) {
        self.accounts
            .record_bytes(self.exchange, Peer::Client, chunk.len());
        if self.scanner.size() <= MAX_FRAME_BYTES {
            self.scanner.push(chunk);
        }
    }

    /// The body ended at `at` (its last chunk was read, not yet sent on).
    fn finish(&mut self, at: Instant) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let scope = Scope {
            exchange: self.exchange,
            session: self.session.as_deref(),
            session_only: self.session_only,
        };
        if self.scanner.size() > MAX_FRAME_BYTES {
            self.accounts.record_oversized(scope, Peer::Client);
        } else {
            self.accounts
                .record_scanned(scope, Peer::Client, self.scanner.finish(), at);
        }
    }
}

/// The rest of a long request body, passed upstream as it arrives and accounted on the side.
struct RequestTail {
    body: Body,
    side: RequestSide,
}

impl futures_util::Stream for RequestTail {
    type Item = Result<Bytes, axum::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.side.done {
            return Poll::Ready(None);
        }
        match poll_data(&mut this.body, cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(err)) => Poll::Ready(Some(Err(err))),
            Poll::Ready(Ok(None)) => {
                this.side.finish(Instant::now());
                Poll::Ready(None)
            }
            Poll::Ready(Ok(Some(chunk))) => {
                let at = Instant::now();
                this.side.observe(&chunk);
                // A body of known length may not be polled past its last byte.
                if this.body.is_end_stream() {
                    this.side.finish(at);
                }
                Poll::Ready(Some(Ok(chunk)))
            }
        }
    }
}

/// Follows the Streamable HTTP session the exchange shows: opened when the upstream assigns
/// or honours one, closed by a successful `DELETE` or a `404` for it. Returns the session the
/// response's messages belong to.
fn follow_session(
    accounts: &Accounts,
    method: &Method,
    status: StatusCode,
    asked: Option<&str>,
    assigned: Option<&str>,
    at: Instant,
) -> Option<String> {
    if let Some(asked) = asked
        && ((*method == Method::DELETE && status.is_success()) || status == StatusCode::NOT_FOUND)
    {
        accounts.close_session(asked, at);
        return None;
    }
    let session = assigned.or(asked)?;
    if status.is_success() {
        accounts.open_session(session, at);
    }
    accounts.has_session(session).then(|| session.to_string())
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// An error's message with its causes (`connection refused` is usually a cause).
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// A plain-text answer of the proxy's own.
fn plain(status: StatusCode, text: String) -> Response {
    let mut response = (status, text).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
