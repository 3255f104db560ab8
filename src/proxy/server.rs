//! One running proxy: its listener, its HTTP client to the upstream, and the task that passes
//! its counters to a [`TrafficSink`] every second. Stopping it ends open event streams, closes
//! its sessions and makes a last report.
//!
//! Each proxy runs on a thread of its own with a single-threaded runtime. On the daemon's
//! multi-threaded runtime every relayed request woke a parked worker that found nothing to do
//! (two futex calls per request): a fifth of the proxy's CPU per small request
//! (docs/benchmarks.md). One core relays tens of thousands of small requests a second, far
//! beyond what an MCP server answers, and the clients' traffic never queues behind the
//! daemon's probe rounds or scrapes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::handler::Handler;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};

use crate::nodelay::no_delay;
use crate::tls::TlsError;

use super::accounts::Accounts;
use super::config::ProxyConfig;
use super::forward::{Forwarder, forward};
use super::relay::stopped;
use super::sink::TrafficSink;
use super::upstream_client::upstream_client;

/// Time between reports of the counters.
pub const REPORT_INTERVAL: Duration = Duration::from_secs(1);
/// Longest wait for connections to finish after stop.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// Longest wait for a TCP connection to the upstream.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// Its address could not be bound.
    #[error("proxy {name}: cannot listen on {addr}: {source}")]
    Bind {
        /// The proxy.
        name: String,
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The HTTP client could not be built.
    #[error("proxy {name}: cannot build the HTTP client: {source}")]
    Client {
        /// The proxy.
        name: String,
        /// Why.
        source: TlsError,
    },
    /// Its thread or runtime could not be started.
    #[error("proxy {name}: cannot start its thread: {source}")]
    Thread {
        /// The proxy.
        name: String,
        /// Why.
        source: std::io::Error,
    },
}

/// A started proxy.
#[derive(Debug)]
pub struct ProxyHandle {
    local: SocketAddr,
    accounts: Arc<Accounts>,
    stop: watch::Sender<bool>,
    /// Closed when the proxy's thread ends.
    finished: oneshot::Receiver<()>,
}

impl ProxyHandle {
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Its counters (for tests and the CLI's summary).
    pub fn accounts(&self) -> &Arc<Accounts> {
        &self.accounts
    }

    /// Stops it: open streams end, sessions close, the last counters are reported.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        // An error only says the thread ended without a word: it ended either way.
        let _ = self.finished.await;
    }
}

/// Binds `config.listen` and starts forwarding to `config.upstream`, reporting to `sink`.
pub async fn start(config: &ProxyConfig, sink: TrafficSink) -> Result<ProxyHandle, ProxyError> {
    let bind_error = |source| ProxyError::Bind {
        name: config.name.clone(),
        addr: config.listen,
        source,
    };
    let listener = TcpListener::bind(config.listen).await.map_err(bind_error)?;
    let local = listener.local_addr().map_err(bind_error)?;
    let client = upstream_client(CONNECT_TIMEOUT).map_err(|source| ProxyError::Client {
        name: config.name.clone(),
        source,
    })?;
    // The proxy's own runtime takes the socket over on its thread.
    let listener = listener.into_std().map_err(bind_error)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| ProxyError::Thread {
            name: config.name.clone(),
            source,
        })?;
    let accounts = Arc::new(Accounts::default());
    let (stop, stop_rx) = watch::channel(false);
    let forwarder = Arc::new(Forwarder {
        upstream: config.upstream.clone(),
        client,
        timeout: config.timeout,
        accounts: accounts.clone(),
        stop: stop_rx.clone(),
    });
    let name = config.name.clone();
    let (finish, finished) = oneshot::channel();
    std::thread::Builder::new()
        .name("mcp-proxy".into())
        .spawn(move || {
            runtime.block_on(serve(listener, forwarder, sink, &name, stop_rx));
            let _ = finish.send(());
        })
        .map_err(|source| ProxyError::Thread {
            name: config.name.clone(),
            source,
        })?;
    tracing::info!(proxy = %config.name, listen = %local, upstream = %config.upstream.url(), "proxy listening");
    Ok(ProxyHandle {
        local,
        accounts,
        stop,
        finished,
    })
}

/// Serves `listener` until `stop_rx` turns true, reporting to `sink` every second and once
/// more at the end; runs on the proxy's own runtime.
async fn serve(
    listener: std::net::TcpListener,
    forwarder: Arc<Forwarder>,
    mut sink: TrafficSink,
    name: &str,
    stop_rx: watch::Receiver<bool>,
) {
    let counted = forwarder.accounts.clone();
    let listener = match TcpListener::from_std(listener) {
        Ok(listener) => listener,
        Err(err) => {
            tracing::error!(proxy = %name, error = %err, "proxy: cannot listen");
            return;
        }
    };
    // Every method and path goes to one handler: no router to match against.
    let app = forward.with_state(forwarder).into_make_service();
    let mut shutdown = stop_rx.clone();
    let server = axum::serve(no_delay(listener), app)
        .with_graceful_shutdown(async move { stopped(&mut shutdown).await })
        .into_future();
    tokio::pin!(server);
    let mut ticks = tokio::time::interval(REPORT_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut stopping = stop_rx.clone();
    loop {
        tokio::select! {
            result = &mut server => {
                if let Err(err) = result {
                    tracing::error!(proxy = %name, error = %err, "proxy: server failed");
                }
                break;
            }
            _ = ticks.tick() => {
                let (delta, state) = counted.flush(std::time::Instant::now());
                sink.report(&delta, &state).await;
            }
            _ = stopped(&mut stopping) => {
                // Open streams end on the same signal; give the rest a grace.
                if tokio::time::timeout(STOP_GRACE, &mut server).await.is_err() {
                    tracing::warn!(proxy = %name, "proxy: connections still open at stop; leaving them");
                }
                break;
            }
        }
    }
    counted.close_all(std::time::Instant::now());
    let (delta, state) = counted.flush(std::time::Instant::now());
    sink.report(&delta, &state).await;
    sink.detach().await;
    tracing::info!(proxy = %name, "proxy stopped");
}
