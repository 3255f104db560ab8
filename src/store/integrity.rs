//! Data corruption detection: SQLite's `PRAGMA quick_check` on the history store, run when the
//! daemon opens it and then every [`CHECK_INTERVAL`], published as `mcp_store_integrity_ok`
//! (docs/metrics.md#history-store). The escalation alert MCPStoreCorrupted fires on 0
//! (docs/runbooks/MCPStoreCorrupted.md).

use std::time::Duration;

use prometheus_client::metrics::gauge::Gauge;
use sqlx::Row;
use tokio::task::JoinHandle;

use super::Store;
use crate::metric_registry::MetricsRegistry;

/// How often the check runs after the first one.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(15 * 60);

/// SQLite's primary result codes that mean the file itself is damaged.
const SQLITE_CORRUPT: &str = "11";
const SQLITE_NOTADB: &str = "26";

/// What one check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Integrity {
    /// `quick_check` answered `ok`.
    Ok,
    /// The database is damaged: the problems `quick_check` listed, or the error that said so.
    Corrupt(Vec<String>),
}

/// The check could not run (the database was busy, the file vanished...); nothing is known.
#[derive(Debug, thiserror::Error)]
#[error("history store integrity check did not run: {0}")]
pub struct CheckFailed(#[from] sqlx::Error);

/// Runs `PRAGMA quick_check` on `store`.
pub async fn quick_check(store: &Store) -> Result<Integrity, CheckFailed> {
    match sqlx::query("PRAGMA quick_check")
        .fetch_all(store.pool())
        .await
    {
        Ok(rows) => {
            let lines: Vec<String> = rows
                .iter()
                .filter_map(|r| r.try_get::<String, _>(0).ok())
                .collect();
            if lines.len() == 1 && lines[0] == "ok" {
                Ok(Integrity::Ok)
            } else {
                Ok(Integrity::Corrupt(lines))
            }
        }
        Err(err) if is_corruption(&err) => Ok(Integrity::Corrupt(vec![err.to_string()])),
        Err(err) => Err(CheckFailed(err)),
    }
}

fn is_corruption(err: &sqlx::Error) -> bool {
    let sqlx::Error::Database(db) = err else {
        return false;
    };
    // Extended result codes keep the primary code in their low byte.
    db.code().is_some_and(|code| {
        let primary = code
            .parse::<i64>()
            .map(|c| (c & 0xff).to_string())
            .unwrap_or_else(|_| code.to_string());
        primary == SQLITE_CORRUPT || primary == SQLITE_NOTADB
    })
}

/// `mcp_store_integrity_ok`.
#[derive(Clone, Debug)]
pub struct IntegrityMetrics {
    ok: Gauge,
}

impl IntegrityMetrics {
    /// Registers the family; absent from the exposition's point of view until the first check
    /// (it reads 1 before, like a store never found damaged).
    pub fn register(registry: &mut MetricsRegistry) -> Self {
        let ok = registry.register(
            "mcp_store_integrity_ok",
            "1 when the last PRAGMA quick_check of the history store found no damage, 0 when it found corruption",
            Gauge::default(),
        );
        ok.set(1);
        IntegrityMetrics { ok }
    }

    /// Publishes one check's finding.
    pub fn record(&self, integrity: &Integrity) {
        self.ok.set(i64::from(*integrity == Integrity::Ok));
    }
}

/// Checks `store` now and then every `interval` until aborted; findings are published and
/// corruption is logged as an error.
pub fn spawn_periodic(
    store: Store,
    interval: Duration,
    metrics: IntegrityMetrics,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match quick_check(&store).await {
                Ok(found) => {
                    if let Integrity::Corrupt(problems) = &found {
                        tracing::error!(path = %store.path().display(), problems = %problems.join("; "), "history store is corrupted (PRAGMA quick_check); see docs/runbooks/MCPStoreCorrupted.md");
                    }
                    metrics.record(&found);
                }
                Err(err) => tracing::warn!(error = %err, "history store integrity check skipped"),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn filled_store(path: &std::path::Path) -> Store {
        let store = Store::open(path).await.unwrap();
        let rows: Vec<_> = (0..2000)
            .map(|i| {
                crate::store::Record::Log(crate::store::LogRow {
                    ts: f64::from(i),
                    server: format!("server-{}", i % 7),
                    source: crate::store::LogSource::Stderr,
                    level: crate::store::Level::Info,
                    logger: None,
                    message: format!("line {i} with some text to fill the pages of the table"),
                })
            })
            .collect();
        crate::store::writer::write_batch(&store, &rows)
            .await
            .unwrap();
        store
    }

    #[tokio::test]
    async fn a_sound_store_checks_ok() {
        let dir = tempfile::tempdir().unwrap();
        let store = filled_store(&dir.path().join("h.db")).await;
        assert_eq!(quick_check(&store).await.unwrap(), Integrity::Ok);
        let mut registry = MetricsRegistry::default();
        let metrics = IntegrityMetrics::register(&mut registry);
        metrics.record(&Integrity::Corrupt(vec!["x".into()]));
        assert!(registry.encode().contains("mcp_store_integrity_ok 0"));
        metrics.record(&Integrity::Ok);
        assert!(registry.encode().contains("mcp_store_integrity_ok 1"));
    }

    #[tokio::test]
    async fn damaged_pages_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.db");
        let store = filled_store(&path).await;
        store.close().await;
        // Overwrite the middle of the file (b-tree pages of the tables and indexes, past the
        // 100-byte header and the schema page) with garbage.
        let mut bytes = std::fs::read(&path).unwrap();
        assert!(bytes.len() > 64 * 1024, "{} bytes", bytes.len());
        let page = 4096;
        for b in &mut bytes[page * 3..page * 12] {
            *b = 0xA5;
        }
        std::fs::write(&path, bytes).unwrap();
        let store = Store::open_existing(&path).await.unwrap();
        let found = quick_check(&store).await.expect("the check runs");
        assert!(
            matches!(&found, Integrity::Corrupt(p) if !p.is_empty()),
            "{found:?}"
        );
    }
}
