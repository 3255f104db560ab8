//! One running proxy: its listener, its HTTP client to the upstream, and the task that passes
//! its counters to a [`TrafficSink`] every second. Stopping it ends open event streams, closes
//! its sessions and makes a last report.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::nodelay::no_delay;

use super::accounts::Accounts;
use super::config::ProxyConfig;
use super::forward::{Forwarder, forward};
use super::relay::stopped;
use super::sink::TrafficSink;

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
        source: reqwest::Error,
    },
}

/// A started proxy.
#[derive(Debug)]
pub struct ProxyHandle {
    local: SocketAddr,
    accounts: Arc<Accounts>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
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
        if let Err(err) = self.task.await {
            tracing::error!(error = %err, "proxy task failed");
        }
    }
}

/// Binds `config.listen` and starts forwarding to `config.upstream`, reporting to `sink`.
pub async fn start(config: &ProxyConfig, mut sink: TrafficSink) -> Result<ProxyHandle, ProxyError> {
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| ProxyError::Bind {
            name: config.name.clone(),
            addr: config.listen,
            source,
        })?;
    let local = listener.local_addr().map_err(|source| ProxyError::Bind {
        name: config.name.clone(),
        addr: config.listen,
        source,
    })?;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(CONNECT_TIMEOUT)
        .pool_idle_timeout(Duration::from_secs(60))
        .tcp_nodelay(true)
        .build()
        .map_err(|source| ProxyError::Client {
            name: config.name.clone(),
            source,
        })?;
    let accounts = Arc::new(Accounts::default());
    let (stop, stop_rx) = watch::channel(false);
    let forwarder = Arc::new(Forwarder {
        upstream: config.upstream.clone(),
        targets: Default::default(),
        client,
        timeout: config.timeout,
        accounts: accounts.clone(),
        stop: stop_rx.clone(),
    });
    let app = Router::new().fallback(forward).with_state(forwarder);
    let name = config.name.clone();
    let counted = accounts.clone();
    let task = tokio::spawn(async move {
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
    });
    tracing::info!(proxy = %config.name, listen = %local, upstream = %config.upstream.url(), "proxy listening");
    Ok(ProxyHandle {
        local,
        accounts,
        stop,
        task,
    })
}
