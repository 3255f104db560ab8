//! The daemon's `[[proxies]]`: started with the daemon, reconciled at each reload (an entry
//! that did not change keeps running, with its sessions; a changed one is restarted; a removed
//! one stopped), stopped at shutdown. Their traffic goes to the daemon's traffic figures (src/traffic/metrics.rs).

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::traffic::book::LocalTraffic;

use super::config::ProxyConfig;
use super::server::{ProxyHandle, start};
use super::sink::TrafficSink;

/// The running proxies.
#[derive(Debug)]
pub struct ProxySet {
    book: Arc<dyn LocalTraffic>,
    running: BTreeMap<String, (ProxyConfig, ProxyHandle)>,
}

impl ProxySet {
    /// No proxies yet; their traffic will go to `book`.
    pub fn new(book: Arc<dyn LocalTraffic>) -> Self {
        ProxySet {
            book,
            running: BTreeMap::new(),
        }
    }

    /// Makes the running proxies those of `configs`. A proxy that cannot start is logged and
    /// left out (the others and the daemon carry on); the next reload tries it again.
    pub async fn apply(&mut self, configs: &[ProxyConfig]) {
        let stale: Vec<String> = self
            .running
            .iter()
            .filter(|(name, (running, _))| {
                !configs.iter().any(|c| &c.name == *name && c == running)
            })
            .map(|(name, _)| name.clone())
            .collect();
        for name in stale {
            if let Some((_, handle)) = self.running.remove(&name) {
                handle.stop().await;
            }
        }
        for config in configs {
            if self.running.contains_key(&config.name) {
                continue;
            }
            let sink = match TrafficSink::book(self.book.clone(), &config.name) {
                Ok(sink) => sink,
                Err(reason) => {
                    tracing::error!(proxy = %config.name, %reason, "proxy not started");
                    continue;
                }
            };
            match start(config, sink).await {
                Ok(handle) => {
                    self.running
                        .insert(config.name.clone(), (config.clone(), handle));
                }
                Err(err) => tracing::error!(error = %err, "proxy not started"),
            }
        }
    }

    /// The address each running proxy listens on.
    pub fn addresses(&self) -> BTreeMap<String, std::net::SocketAddr> {
        self.running
            .iter()
            .map(|(name, (_, handle))| (name.clone(), handle.local_addr()))
            .collect()
    }

    /// Stops every proxy.
    pub async fn shutdown(mut self) {
        self.apply(&[]).await;
    }
}
