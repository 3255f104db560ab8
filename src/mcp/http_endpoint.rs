//! What the two HTTP transports share (src/mcp/streamable_http.rs, src/mcp/legacy_sse.rs):
//! the server's URL and configured headers, the shared client of its settings, the wire
//! counters, where the requests' time went, what their TLS showed, the OAuth client and the
//! `traceparent` of the request being sent.

use std::sync::Arc;

use reqwest::header::HeaderMap;

use super::WireCounters;
use super::error::McpError;
use super::http_auth::with_authorization;
use super::http_io::{ClientSettings, HttpClients, parse_headers};
use super::http_timing::{HttpPhases, PhaseRecorder};
use crate::tls::{TlsObservation, TlsSettings, TlsWatch};

/// One HTTP server as a transport talks to it; no request is made by building it.
#[derive(Debug)]
pub(crate) struct HttpEndpoint {
    /// The shared client of the server's client settings (src/mcp/http_io.rs).
    pub(crate) client: reqwest::Client,
    /// The configured URL.
    pub(crate) url: url::Url,
    /// The configured headers, validated once.
    pub(crate) headers: HeaderMap,
    /// Messages and bytes each way, in flight.
    pub(crate) counters: Arc<WireCounters>,
    /// Where the time of the requests since the last take went.
    pub(crate) phases: PhaseRecorder,
    /// What the TLS of the responses since the last take showed.
    pub(crate) tls: TlsWatch,
    /// The server's OAuth client, when it has one (src/auth/).
    auth: Option<crate::auth::Authorizer>,
    /// The W3C `traceparent` of the request being sent, when it is traced (docs/tracing.md).
    pub(crate) traceparent: Option<String>,
}

impl HttpEndpoint {
    /// Prepares `url` with the shared client of its settings (TLS under `tls` for https)
    /// from `clients`, requests authorized with `auth`'s tokens (src/mcp/http_auth.rs).
    pub(crate) fn new(
        url: &url::Url,
        headers: &[(String, String)],
        tls: &TlsSettings,
        counters: Arc<WireCounters>,
        clients: &HttpClients,
        auth: Option<crate::auth::Authorizer>,
    ) -> Result<Self, McpError> {
        let settings = ClientSettings { tls: tls.clone() };
        let (client, book) = clients.client(url, &settings)?;
        Ok(HttpEndpoint {
            client,
            url: url.clone(),
            headers: parse_headers(headers)?,
            counters,
            phases: PhaseRecorder::default(),
            tls: TlsWatch::with_book(book),
            auth,
            traceparent: None,
        })
    }

    /// `url` with no headers, default TLS settings, no OAuth and a client of its own (tests).
    #[cfg(test)]
    pub(crate) fn plain(url: &url::Url, counters: Arc<WireCounters>) -> Self {
        Self::new(
            url,
            &[],
            &TlsSettings::default(),
            counters,
            &HttpClients::default(),
            None,
        )
        .expect("a plain HTTP endpoint builds")
    }

    /// The server's OAuth client, when it has one.
    pub(crate) fn auth(&self) -> Option<&crate::auth::Authorizer> {
        self.auth.as_ref()
    }

    /// The configured headers and the OAuth token held, if any (with its DPoP proof for a
    /// `method` request to `url`).
    pub(crate) fn request_headers(&self, method: reqwest::Method, url: &url::Url) -> HeaderMap {
        with_authorization(&self.headers, self.auth.as_ref(), &method, url)
    }

    /// Sends `traceparent` on the requests that follow, until set again (`None`: none).
    pub(crate) fn set_traceparent(&mut self, traceparent: Option<String>) {
        self.traceparent = traceparent;
    }

    /// Where the time of the HTTP requests since the last call went (drains).
    pub(crate) fn take_phases(&self) -> HttpPhases {
        self.phases.take()
    }

    /// What the TLS of the responses since the last call showed (drains; `None` for plain
    /// HTTP).
    pub(crate) fn take_tls(&self) -> Option<TlsObservation> {
        self.tls.take()
    }
}
