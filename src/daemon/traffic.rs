//! The daemon's traffic socket: bound at start as `[traffic]` says (docs/traffic.md), told the
//! configured stdio servers at start and at every reload, stopped with the daemon. Failing to
//! bind is logged and shown by `mcp_traffic_socket_up 0`; the probes go on regardless.

use std::sync::Arc;

use tokio::sync::watch;

use crate::probe::ServerConfig;
use crate::traffic::config::TrafficConfig;
use crate::traffic::metrics::TrafficMetrics;
use crate::traffic::{Receiver, ReceiverHandle, ReceiverOptions, SocketEnv, stdio_servers};

/// The running receiver (if the socket could be bound) and what it was started with.
pub struct TrafficSocket {
    config: TrafficConfig,
    running: Option<(ReceiverHandle, watch::Sender<bool>)>,
    metrics: Arc<TrafficMetrics>,
}

impl TrafficSocket {
    /// Binds the socket and starts receiving into `metrics`; never fails: a socket that cannot
    /// be bound is an error in the log and `mcp_traffic_socket_up 0`. Within a tokio runtime.
    pub fn start(
        config: &TrafficConfig,
        servers: &[ServerConfig],
        metrics: Arc<TrafficMetrics>,
    ) -> TrafficSocket {
        let mut socket = TrafficSocket {
            config: config.clone(),
            running: None,
            metrics,
        };
        if !config.enabled {
            tracing::info!("traffic: socket disabled ([traffic] enabled = false)");
            return socket;
        }
        let path = match SocketEnv::from_process(config.path.clone()).daemon_socket() {
            Ok(path) => path,
            Err(err) => {
                socket.metrics.receiver_down();
                tracing::error!(error = %err, "traffic: real traffic is not collected; probes go on");
                return socket;
            }
        };
        let options = ReceiverOptions {
            socket_mode: config.socket_mode,
            ..ReceiverOptions::new(&path)
        };
        match Receiver::bind(options) {
            Ok(receiver) => {
                let (stop_tx, stop_rx) = watch::channel(false);
                let consumer = Arc::clone(&socket.metrics);
                let handle = receiver.spawn(consumer, stop_rx);
                handle.set_servers(stdio_servers(servers));
                socket.metrics.receiver_started(handle.counters());
                tracing::info!(
                    socket = %path.display(),
                    mode = format!("{:o}", config.socket_mode),
                    "traffic: wrappers report on {}",
                    path.display()
                );
                socket.running = Some((handle, stop_tx));
            }
            Err(err) => {
                socket.metrics.receiver_down();
                tracing::error!(error = %err, "traffic: cannot bind the traffic socket; real traffic is not collected, probes go on");
            }
        }
        socket
    }

    /// Whether wrappers can report (the socket is bound).
    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }

    /// Applies a reloaded configuration: new wrappers join its stdio servers. The socket's
    /// own keys take effect at the next start; a change of them is logged.
    pub fn reload(&self, config: &TrafficConfig, servers: &[ServerConfig]) {
        if *config != self.config {
            tracing::warn!(
                "traffic: [traffic] changed; its path, mode and enabled take effect when the daemon restarts"
            );
        }
        if let Some((handle, _)) = &self.running {
            handle.set_servers(stdio_servers(servers));
        }
    }

    /// Stops accepting, ends the connections and removes the socket file.
    pub async fn stop(self) {
        if let Some((handle, stop_tx)) = self.running {
            let _ = stop_tx.send(true);
            handle.join().await;
            self.metrics.receiver_down();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;

    #[tokio::test]
    async fn a_socket_that_cannot_be_bound_is_a_metric_not_a_failure() {
        let dir = tempfile::tempdir().expect("tempdir");
        let taken = dir.path().join("file");
        std::fs::write(&taken, b"not a socket").expect("write");
        let metrics = Metrics::new();
        let config = TrafficConfig {
            path: Some(taken.clone()),
            ..TrafficConfig::default()
        };
        let socket = TrafficSocket::start(&config, &[], Arc::clone(&metrics.traffic));
        assert!(!socket.is_running());
        assert!(
            metrics
                .encode_prometheus()
                .contains("mcp_traffic_socket_up 0")
        );
        assert_eq!(std::fs::read(&taken).expect("left alone"), b"not a socket");
        socket.stop().await;
    }

    #[tokio::test]
    async fn a_bound_socket_is_up_and_removed_at_stop() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("traffic.sock");
        let metrics = Metrics::new();
        let config = TrafficConfig {
            path: Some(path.clone()),
            ..TrafficConfig::default()
        };
        let socket = TrafficSocket::start(&config, &[], Arc::clone(&metrics.traffic));
        assert!(socket.is_running());
        let text = metrics.encode_prometheus();
        assert!(text.contains("mcp_traffic_socket_up 1"), "{text}");
        assert!(text.contains("mcp_traffic_connections_total{outcome=\"accepted\"} 0"));
        socket.stop().await;
        assert!(!path.exists());
        assert!(
            metrics
                .encode_prometheus()
                .contains("mcp_traffic_socket_up 0")
        );
    }
}
