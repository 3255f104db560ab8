//! HTTP plumbing shared by the Streamable HTTP and legacy SSE transports: the client, configured
//! headers, error mapping and body reads bounded in size and time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, WWW_AUTHENTICATE};
use tokio::time::{Instant, timeout_at};

use super::WireCounters;
use super::error::{Heard, McpError};
use super::http_timing::{TimedResolver, TimingLayer};
use crate::tls::TlsSettings;
use crate::tls::chain::ChainBook;

/// How long a connection may wait unused in a client's pool and still serve a later request.
/// A server probed less often than this gets a new connection for every probe, as
/// blackbox_exporter's probes do: its accept path is exercised, the probe's `connect` phase is
/// timed, and the daemon keeps no idle connection (with its buffers, about 26 KB) per server
/// between probes; the requests of one probe, milliseconds apart, still share one. Servers
/// probed at least this often keep theirs (docs/probing.md#connections).
pub const IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(2);

/// What makes two HTTP clients differ. Servers whose settings are equal share one client: its
/// connection pools (one per host), resolver, TLS configuration and root certificates are made
/// once, not once per server. Every client setting a server entry may carry belongs here, so
/// servers that need different clients get them.
#[derive(Clone, Debug, Default, Hash, PartialEq, Eq)]
pub struct ClientSettings {
    /// The entry's `tls` key (trusted CAs, name to verify).
    pub tls: TlsSettings,
}

/// A shared client and the book its TLS verifier records chains in. The book is looked up by
/// each response's own leaf certificate (src/tls/observe.rs), so servers sharing a client
/// still read their own chain.
pub(crate) type SharedClient = (reqwest::Client, Arc<ChainBook>);

/// The HTTP clients of one daemon, one per distinct [`ClientSettings`], made on first use.
/// Cloning shares the registry.
#[derive(Clone, Default)]
pub struct HttpClients(Arc<Mutex<HashMap<ClientSettings, SharedClient>>>);

impl HttpClients {
    /// The client for `settings`, built the first time they are asked for.
    /// `url` names the first server that asks, for the error when the TLS settings cannot
    /// make a client (an unreadable CA file).
    pub(crate) fn client(
        &self,
        url: &url::Url,
        settings: &ClientSettings,
    ) -> Result<SharedClient, McpError> {
        let mut clients = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(shared) = clients.get(settings) {
            return Ok(shared.clone());
        }
        let book = Arc::new(ChainBook::default());
        let client = build_client(url, settings, &book)?;
        clients.insert(settings.clone(), (client.clone(), Arc::clone(&book)));
        Ok((client, book))
    }

    /// How many distinct clients were built.
    pub fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// True before the first client is built.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl std::fmt::Debug for HttpClients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HttpClients({})", self.len())
    }
}

/// The registry is shared state, not a bound: any two compare equal.
impl PartialEq for HttpClients {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for HttpClients {}

/// Builds a client (no overall timeout: every call carries its own deadline). Its lookups and
/// new connections are timed into the `PhaseRecorder` of the request that caused them
/// (src/mcp/http_timing.rs), so one client serves many servers; the certificate chains its TLS
/// connections verify (under `settings.tls`) are noted in `book`.
fn build_client(
    url: &url::Url,
    settings: &ClientSettings,
    book: &Arc<ChainBook>,
) -> Result<reqwest::Client, McpError> {
    let tls_config =
        crate::tls::client_config(&settings.tls, book).map_err(|e| McpError::Connect {
            url: url.to_string(),
            detail: e.to_string(),
        })?;
    // Redirects are not followed: a probe reports what the configured URL answers, and
    // configured credentials never travel to another URL.
    reqwest::Client::builder()
        .dns_resolver(Arc::new(TimedResolver))
        .connector_layer(TimingLayer)
        .connect_timeout(Duration::from_secs(10))
        .pool_idle_timeout(IDLE_CONNECTION_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .tls_backend_preconfigured(tls_config)
        .tls_info(true)
        .build()
        .map_err(|e| McpError::protocol(format!("cannot build the HTTP client: {e}")))
}

/// Validates configured headers once.
pub(crate) fn parse_headers(headers: &[(String, String)]) -> Result<HeaderMap, McpError> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let n = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
            McpError::protocol(format!(
                "configured header name {name:?} is not a valid HTTP header name"
            ))
        })?;
        let v = HeaderValue::from_str(value).map_err(|_| {
            McpError::protocol(format!(
                "configured value of header {name:?} is not a valid HTTP header value"
            ))
        })?;
        map.append(n, v);
    }
    Ok(map)
}

/// Turns a reqwest error into a typed error (connect failures vs. broken streams).
pub(crate) fn map_send_error(url: &str, e: &reqwest::Error) -> McpError {
    let mut detail = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        detail.push_str(": ");
        detail.push_str(&s.to_string());
        source = s.source();
    }
    if e.is_connect() || e.is_builder() {
        McpError::Connect {
            url: url.to_string(),
            detail,
        }
    } else {
        McpError::StreamClosed { detail }
    }
}

/// The error for a 401/403 answer.
pub(crate) fn auth_error(resp: &reqwest::Response) -> McpError {
    McpError::AuthRequired {
        status: resp.status().as_u16(),
        www_authenticate: resp
            .headers()
            .get(WWW_AUTHENTICATE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
    }
}

/// Reads a body up to `limit` bytes; larger bodies are an oversize protocol error.
pub(crate) async fn read_body(
    resp: &mut reqwest::Response,
    limit: usize,
    deadline: Instant,
    counters: &WireCounters,
) -> Result<Vec<u8>, McpError> {
    let mut body = Vec::new();
    loop {
        let chunk = timeout_at(deadline, resp.chunk())
            .await
            .map_err(|_| timeout_marker())?
            .map_err(|e| map_send_error(resp.url().as_str(), &e))?;
        let Some(chunk) = chunk else {
            return Ok(body);
        };
        counters.count_bytes(chunk.len());
        if body.len() + chunk.len() > limit {
            counters.count_oversize();
            return Err(McpError::protocol(format!(
                "HTTP body exceeded {limit} bytes (max_message_bytes); reading stopped"
            )));
        }
        body.extend_from_slice(&chunk);
    }
}

/// Longest a background drain waits for the rest of a body.
const DRAIN_FOR: Duration = Duration::from_secs(2);
/// Most bytes a background drain reads before giving the connection up.
const DRAIN_BYTES: usize = 1 << 20;

/// Reads what is left of a response we are done with, off the probe's path, so its keep-alive
/// connection goes back to the pool instead of being closed (an SSE response stream the server
/// ends right after our message, a 202's "Accepted"). A body that does not end within
/// `DRAIN_FOR` or `DRAIN_BYTES` is dropped with its connection.
pub(crate) fn drain_in_background(mut resp: reqwest::Response) {
    tokio::spawn(async move {
        let until = Instant::now() + DRAIN_FOR;
        let mut read = 0usize;
        while read <= DRAIN_BYTES {
            match timeout_at(until, resp.chunk()).await {
                Ok(Ok(Some(chunk))) => read += chunk.len(),
                _ => break,
            }
        }
    });
}

/// Reads at most `limit` bytes of a body for an error message; never fails.
pub(crate) async fn read_excerpt(
    resp: &mut reqwest::Response,
    limit: usize,
    deadline: Instant,
) -> Vec<u8> {
    let mut body = Vec::new();
    while body.len() < limit {
        match timeout_at(deadline, resp.chunk()).await {
            Ok(Ok(Some(chunk))) => {
                let room = limit - body.len();
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            _ => break,
        }
    }
    body
}

/// A timeout whose method/duration the session fills in.
pub(crate) fn timeout_marker() -> McpError {
    McpError::Timeout {
        method: String::new(),
        after: Duration::ZERO,
        heard: Heard::Nothing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_with_equal_settings_share_one_client() {
        let clients = HttpClients::default();
        let url = url::Url::parse("http://127.0.0.1:9/mcp").expect("url");
        assert!(clients.is_empty());
        clients.client(&url, &ClientSettings::default()).unwrap();
        clients.client(&url, &ClientSettings::default()).unwrap();
        assert_eq!(clients.len(), 1);
        // A clone shares the registry.
        clients
            .clone()
            .client(&url, &ClientSettings::default())
            .unwrap();
        assert_eq!(clients.len(), 1);
    }

    #[test]
    fn rejects_invalid_configured_headers() {
        assert!(parse_headers(&[("Authorization".into(), "Bearer x".into())]).is_ok());
        assert!(parse_headers(&[("bad name".into(), "x".into())]).is_err());
        assert!(parse_headers(&[("x".into(), "line\nbreak".into())]).is_err());
    }
}
