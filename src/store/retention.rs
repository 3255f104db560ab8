//! Retention: deletes rows older than `max_age`, then the oldest rows while the database is
//! larger than `max_size`; checkpoints the WAL and returns freed pages to the file system.
//! Maintenance windows go by age only, once they ended longer than `max_age` ago: a window
//! still open or to come is never pruned, whatever the size. Backup runs are kept (one row a
//! run, what `report` reads for the last backup).

use std::time::SystemTime;

use sqlx::AssertSqlSafe;

// Table names in these statements come from the `TABLES` constant, never from input.
use super::{Store, StoreConfig};
use crate::store::metrics::StoreMetrics;
use crate::wall_clock::unix_seconds;

/// Tables pruned by retention, by age (their `ts`) and by size.
const TABLES: [&str; 6] = [
    "probe_results",
    "dependency_results",
    "health_transitions",
    "log_lines",
    "tool_definition_changes",
    "process_samples",
];
/// Maintenance windows, pruned by age alone: those that ended before the cutoff.
const ENDED_WINDOWS: &str = "DELETE FROM maintenance_windows WHERE ends_at < ?";
/// Most size-driven pruning rounds per pass (each removes a quarter of every table).
const MAX_SIZE_ROUNDS: usize = 4;

/// One retention pass with its errors logged, then the size gauge updated.
pub async fn pass(store: &Store, config: &StoreConfig, metrics: &StoreMetrics) {
    if let Err(err) = enforce(store, config).await {
        tracing::warn!(error = %err, path = %store.path().display(), "history store retention failed");
    }
    metrics.set_size(store.size_on_disk());
}

/// One retention pass; returns the rows deleted.
pub async fn enforce(store: &Store, config: &StoreConfig) -> Result<u64, sqlx::Error> {
    let cutoff = unix_seconds(SystemTime::now()) - config.max_age.as_secs_f64();
    let mut deleted = 0;
    for table in TABLES {
        deleted += sqlx::query(AssertSqlSafe(format!("DELETE FROM {table} WHERE ts < ?")))
            .bind(cutoff)
            .execute(store.pool())
            .await?
            .rows_affected();
    }
    deleted += sqlx::query(ENDED_WINDOWS)
        .bind(cutoff)
        .execute(store.pool())
        .await?
        .rows_affected();
    if deleted > 0 {
        compact(store).await?;
    } else {
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(store.pool())
            .await?;
    }
    for _ in 0..MAX_SIZE_ROUNDS {
        if store.size_on_disk() <= config.max_size {
            break;
        }
        let mut round = 0;
        for table in TABLES {
            round += sqlx::query(AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE id <= (SELECT min(id) + (max(id) - min(id)) / 4 FROM {table})"
            )))
            .execute(store.pool())
            .await?
            .rows_affected();
        }
        compact(store).await?;
        deleted += round;
        if round == 0 {
            break;
        }
    }
    if deleted > 0 {
        tracing::debug!(
            deleted,
            size = store.size_on_disk(),
            "history store retention"
        );
    }
    Ok(deleted)
}

async fn compact(store: &Store) -> Result<(), sqlx::Error> {
    // FTS5 keeps deleted entries as tombstones until its segments merge: merge them now so the
    // index shrinks with the table.
    sqlx::query("INSERT INTO log_lines_fts (log_lines_fts) VALUES ('optimize')")
        .execute(store.pool())
        .await?;
    sqlx::query("PRAGMA incremental_vacuum")
        .execute(store.pool())
        .await?;
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(store.pool())
        .await?;
    Ok(())
}
