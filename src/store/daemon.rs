//! Starting the history store with the daemon.

use std::sync::Arc;

use super::metrics::StoreMetrics;
use super::writer::{StoreHandle, StoreWriter};
use super::{Store, StoreConfig};

/// Opens the store and starts its writer when `[store] enabled`; a store that cannot be
/// opened is logged and the daemon monitors without history (monitoring matters more).
pub async fn start(
    config: &StoreConfig,
    metrics: &Arc<StoreMetrics>,
) -> Option<(StoreHandle, StoreWriter)> {
    if !config.enabled {
        tracing::info!("history store disabled (`[store] enabled = false`)");
        return None;
    }
    match Store::open(&config.path).await {
        Ok(store) => {
            metrics.init_kinds();
            metrics.set_size(store.size_on_disk());
            tracing::info!(path = %config.path.display(), "history store open");
            Some(StoreWriter::start(store, config, Arc::clone(metrics)))
        }
        Err(err) => {
            tracing::error!(error = %err, "history store unavailable; probing continues without history");
            None
        }
    }
}

/// Copies every security event into the store as a log line (source `security`, logger = the
/// event kind), so `mcp-exporter logs --search security --level error` finds them with their
/// redacted evidence. Authentication failures and matched patterns are `error`, the rest
/// `warning`. Ends when the event channel closes.
pub fn forward_security_events(
    mut events: tokio::sync::broadcast::Receiver<crate::security::SecurityEvent>,
    store: StoreHandle,
) -> tokio::task::JoinHandle<()> {
    use crate::security::EventKind;
    use tokio::sync::broadcast::error::RecvError;
    tokio::spawn(async move {
        loop {
            let event = match events.recv().await {
                Ok(event) => event,
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(
                        missed,
                        "security events arrived faster than the store took them"
                    );
                    continue;
                }
                Err(RecvError::Closed) => break,
            };
            let level = match event.kind {
                EventKind::AuthFailure
                | EventKind::DependencyAuthFailure
                | EventKind::PatternMatch => super::Level::Error,
                _ => super::Level::Warning,
            };
            store.record(super::records::Record::Log(super::records::LogRow {
                ts: crate::wall_clock::unix_seconds(event.at),
                server: event.server.clone(),
                source: super::records::LogSource::Security,
                level,
                logger: Some(event.kind.as_str().to_string()),
                message: format!("security event {}: {}", event.kind.as_str(), event.evidence),
            }));
        }
    })
}
