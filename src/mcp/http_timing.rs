//! Where the time of an HTTP probe goes: name resolution, connection set-up (TCP and TLS),
//! the server's processing until the response headers, and the transfer of the response.
//!
//! blackbox_exporter reports the same split as `probe_http_duration_seconds{phase}` for its one
//! request; a probe of ours makes several requests over pooled keep-alive connections, so the
//! phases are totals over the probe's requests, and resolve/connect are non-zero only for a
//! probe that opened a connection. reqwest hides its connector, so the split is measured from
//! the outside: a resolver that times lookups, a connector layer that times each new
//! connection (resolution included, so it is subtracted), and the transports' own clocks around
//! each request. TCP connect and the TLS handshake happen in one connector call and are
//! reported together as `connect`.
//!
//! One reqwest client serves every server with the same client settings (src/mcp/http_io.rs),
//! so its resolver and connector do not belong to a server: they time into the recorder of the
//! request being sent, which each transport sets around `send` with `PhaseRecorder::scope`
//! (a task-local, since reqwest polls the connector inside the request's future). A connection
//! that reqwest finishes in the background after the request took another one is not timed.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use tokio::time::Instant;

/// The phases of one probe's HTTP requests, summed over its requests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct HttpPhases {
    /// Host name lookups (zero for an IP literal or when every connection was reused).
    #[serde(serialize_with = "crate::serde_seconds::duration")]
    pub resolve: Duration,
    /// TCP connect plus TLS handshake of the connections this probe opened.
    #[serde(serialize_with = "crate::serde_seconds::duration")]
    pub connect: Duration,
    /// From sending each request until its response headers (or until it failed without
    /// any: a server that never answers shows its wait here), connection set-up excluded.
    #[serde(serialize_with = "crate::serde_seconds::duration")]
    pub processing: Duration,
    /// From the response headers until the JSON-RPC response was read (for the legacy SSE
    /// transport: until it arrived on the event stream).
    #[serde(serialize_with = "crate::serde_seconds::duration")]
    pub transfer: Duration,
    /// Connections opened (successfully) during the probe; 0 = all requests reused one.
    pub connections_opened: u32,
}

impl HttpPhases {
    /// The phases with their label values, in the order a request goes through them.
    pub fn labelled(&self) -> [(&'static str, Duration); 4] {
        [
            ("resolve", self.resolve),
            ("connect", self.connect),
            ("processing", self.processing),
            ("transfer", self.transfer),
        ]
    }
}

#[derive(Debug, Default)]
struct Totals {
    resolve: Duration,
    /// Whole connector calls: resolution, TCP connect and TLS handshake.
    connecting: Duration,
    until_headers: Duration,
    transfer: Duration,
    opened: u32,
}

/// Collects the phase clocks of one transport's HTTP client between two [`take`](Self::take)s.
#[derive(Clone, Debug, Default)]
pub(crate) struct PhaseRecorder(Arc<Mutex<Totals>>);

impl PhaseRecorder {
    fn with<R>(&self, f: impl FnOnce(&mut Totals) -> R) -> R {
        f(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn add_resolve(&self, took: Duration) {
        self.with(|t| t.resolve += took);
    }

    fn add_connection(&self, took: Duration, opened: bool) {
        self.with(|t| {
            t.connecting += took;
            t.opened += u32::from(opened);
        });
    }

    /// One request: `until_headers` from sending it (connection set-up included, as reqwest's
    /// `send` does it) to its response headers; `transfer` from there to the response.
    pub(crate) fn add_exchange(&self, until_headers: Duration, transfer: Duration) {
        self.with(|t| {
            t.until_headers += until_headers;
            t.transfer += transfer;
        });
    }

    /// The phases since the last call, and a fresh start.
    pub(crate) fn take(&self) -> HttpPhases {
        let t = self.with(std::mem::take);
        HttpPhases {
            resolve: t.resolve,
            connect: t.connecting.saturating_sub(t.resolve),
            processing: t.until_headers.saturating_sub(t.connecting),
            transfer: t.transfer,
            connections_opened: t.opened,
        }
    }

    /// Runs `sending` (a request's `send`) with this recorder as the one its lookups and new
    /// connections are timed into.
    pub(crate) async fn scope<F: Future>(&self, sending: F) -> F::Output {
        CURRENT.scope(self.clone(), sending).await
    }
}

tokio::task_local! {
    /// The recorder of the request being sent, set by [`PhaseRecorder::scope`].
    static CURRENT: PhaseRecorder;
}

/// The recorder of the request being sent, if any.
fn current() -> Option<PhaseRecorder> {
    CURRENT.try_with(PhaseRecorder::clone).ok()
}

/// System resolution (getaddrinfo on a blocking thread, as reqwest's default), timed into the
/// recorder of the request that needed it.
#[derive(Debug)]
pub(crate) struct TimedResolver;

impl Resolve for TimedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            // Read when first polled: reqwest polls the lookup inside the request's future.
            let recorder = current();
            let started = Instant::now();
            let found = tokio::net::lookup_host((host.as_str(), 0)).await;
            if let Some(recorder) = recorder {
                recorder.add_resolve(started.elapsed());
            }
            let addrs: Vec<SocketAddr> = found?.collect();
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// `tower` layer wrapping reqwest's connector service in [`TimedConnector`].
#[derive(Clone, Debug)]
pub(crate) struct TimingLayer;

impl<S> tower_layer::Layer<S> for TimingLayer {
    type Service = TimedConnector<S>;

    fn layer(&self, inner: S) -> TimedConnector<S> {
        TimedConnector { inner }
    }
}

/// reqwest's connector (resolution, TCP, TLS) with a clock around each connection it makes.
#[derive(Clone, Debug)]
pub(crate) struct TimedConnector<S> {
    inner: S,
}

impl<S, Req> tower_service::Service<Req> for TimedConnector<S>
where
    S: tower_service::Service<Req>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let started = Instant::now();
        let recorder = current();
        let connecting = self.inner.call(req);
        Box::pin(async move {
            let result = connecting.await;
            if let Some(recorder) = recorder {
                recorder.add_connection(started.elapsed(), result.is_ok());
            }
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn connection_setup_is_split_out_of_the_request_clocks() {
        let r = PhaseRecorder::default();
        // A probe that opened one connection (2 ms lookup, 5 ms connector call in all) and
        // sent two requests over it.
        r.add_resolve(2 * MS);
        r.add_connection(5 * MS, true);
        r.add_exchange(9 * MS, MS);
        r.add_exchange(3 * MS, 2 * MS);
        assert_eq!(
            r.take(),
            HttpPhases {
                resolve: 2 * MS,
                connect: 3 * MS,
                processing: 7 * MS,
                transfer: 3 * MS,
                connections_opened: 1,
            }
        );
        // take() starts afresh: the next probe reused the connection.
        r.add_exchange(4 * MS, MS);
        let next = r.take();
        assert_eq!(
            (next.resolve, next.connect),
            (Duration::ZERO, Duration::ZERO)
        );
        assert_eq!((next.processing, next.connections_opened), (4 * MS, 0));
    }

    #[test]
    fn a_failed_connection_is_timed_but_not_counted_as_opened() {
        let r = PhaseRecorder::default();
        r.add_connection(4 * MS, false);
        let p = r.take();
        assert_eq!((p.connect, p.connections_opened), (4 * MS, 0));
        // No request got headers: processing never goes below zero.
        assert_eq!(p.processing, Duration::ZERO);
    }

    #[tokio::test]
    async fn the_resolver_times_the_lookup_into_the_recorder_in_scope() {
        let r = PhaseRecorder::default();
        let name: Name = "localhost".parse().unwrap();
        let addrs: Vec<SocketAddr> = r
            .scope(TimedResolver.resolve(name))
            .await
            .unwrap()
            .collect();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");
        assert!(!addrs.is_empty());
        assert!(r.take().resolve > Duration::ZERO);
        // Outside any scope a lookup is not timed anywhere.
        let other = PhaseRecorder::default();
        let name: Name = "localhost".parse().unwrap();
        assert!(TimedResolver.resolve(name).await.is_ok());
        assert_eq!(other.take().resolve, Duration::ZERO);
    }
}
