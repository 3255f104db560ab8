//! The proxy's HTTP client to its upstream: hyper's connection pool (connections kept alive
//! for a minute; HTTP/1.1 on `http://`, HTTP/2 or HTTP/1.1 by ALPN on `https://`, verified as
//! the probes verify a server by default), `TCP_NODELAY` and a connect timeout.
//!
//! reqwest, which the proxy used before, wraps the same pool in redirect and retry layers the
//! proxy has no use for (it passes redirects to the client) and parsed each request's URL again
//! on the way: about a tenth of the proxy's CPU per small request (docs/benchmarks.md).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::tls::{ChainBook, TlsError, TlsSettings, client_config};

/// How long an idle upstream connection is kept for the next request.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// A pooled client sending request bodies of the proxy's own kind.
pub type UpstreamClient = Client<HttpsConnector<HttpConnector>, Body>;

/// A client whose TCP connections time out after `connect_timeout`.
pub fn upstream_client(connect_timeout: Duration) -> Result<UpstreamClient, TlsError> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout));
    let mut tls = client_config(&TlsSettings::default(), &Arc::new(ChainBook::default()))?;
    // The connector offers the protocols it is built for.
    tls.alpn_protocols.clear();
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new())
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .pool_timer(TokioTimer::new())
        .build(connector))
}
