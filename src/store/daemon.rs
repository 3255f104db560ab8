//! Starting the history store with the daemon.

use crate::metrics::Metrics;

use super::writer::{StoreHandle, StoreWriter};
use super::{Store, StoreConfig};

/// Opens the store and starts its writer when `[store] enabled`; a store that cannot be
/// opened is logged and the daemon monitors without history (monitoring matters more).
pub async fn start(config: &StoreConfig, metrics: &Metrics) -> Option<(StoreHandle, StoreWriter)> {
    if !config.enabled {
        tracing::info!("history store disabled (`[store] enabled = false`)");
        return None;
    }
    match Store::open(&config.path).await {
        Ok(store) => {
            metrics.store.init_kinds();
            metrics.store.set_size(store.size_on_disk());
            tracing::info!(path = %config.path.display(), "history store open");
            Some(StoreWriter::start(
                store,
                config,
                std::sync::Arc::clone(&metrics.store),
            ))
        }
        Err(err) => {
            tracing::error!(error = %err, "history store unavailable; probing continues without history");
            None
        }
    }
}
