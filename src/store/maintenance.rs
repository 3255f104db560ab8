//! Maintenance windows in the history store (table `maintenance_windows`,
//! migrations/0002_maintenance_windows.sql), so a daemon restarted during a window still knows it,
//! and `history` can tell planned downtime from an outage. The window logic itself lives in
//! src/maintenance/.

use serde::Serialize;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::Store;

/// One stored maintenance window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MaintenanceRow {
    /// Row id, the window's id in the API and the CLI.
    pub id: i64,
    /// The server; `None` for every server (`--all`).
    pub server: Option<String>,
    /// Unix seconds the window starts.
    pub starts_at: f64,
    /// Unix seconds the window ends (the moment it was ended, when ended early).
    pub ends_at: f64,
    /// Why (free text from the operator).
    pub reason: String,
    /// Unix seconds the window was created.
    pub created_at: f64,
    /// Ended by `maintenance end` before its planned end.
    pub ended_early: bool,
    /// The Alertmanager silence made for it, if any.
    pub silence_id: Option<String>,
}

/// A window to store (its id is given by the store).
#[derive(Debug, Clone, PartialEq)]
pub struct NewMaintenance {
    /// The server; `None` for every server.
    pub server: Option<String>,
    /// Unix seconds the window starts.
    pub starts_at: f64,
    /// Unix seconds the window ends.
    pub ends_at: f64,
    /// Why.
    pub reason: String,
    /// Unix seconds it was created.
    pub created_at: f64,
}

/// The columns every read selects, in [`from_row`]'s order.
macro_rules! columns {
    () => {
        "id, server, starts_at, ends_at, reason, created_at, ended_early, silence_id"
    };
}

fn from_row(r: &SqliteRow) -> MaintenanceRow {
    MaintenanceRow {
        id: r.get("id"),
        server: r.get("server"),
        starts_at: r.get("starts_at"),
        ends_at: r.get("ends_at"),
        reason: r.get("reason"),
        created_at: r.get("created_at"),
        ended_early: r.get::<i64, _>("ended_early") != 0,
        silence_id: r.get("silence_id"),
    }
}

/// Stores a new window and returns it with its id.
pub async fn insert(store: &Store, new: &NewMaintenance) -> Result<MaintenanceRow, sqlx::Error> {
    let id: i64 = sqlx::query(
        "INSERT INTO maintenance_windows (server, starts_at, ends_at, reason, created_at) VALUES (?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(&new.server)
    .bind(new.starts_at)
    .bind(new.ends_at)
    .bind(&new.reason)
    .bind(new.created_at)
    .fetch_one(store.pool())
    .await?
    .get("id");
    Ok(MaintenanceRow {
        id,
        server: new.server.clone(),
        starts_at: new.starts_at,
        ends_at: new.ends_at,
        reason: new.reason.clone(),
        created_at: new.created_at,
        ended_early: false,
        silence_id: None,
    })
}

/// Records the Alertmanager silence of window `id`.
pub async fn set_silence(store: &Store, id: i64, silence_id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE maintenance_windows SET silence_id = ? WHERE id = ?")
        .bind(silence_id)
        .bind(id)
        .execute(store.pool())
        .await?;
    Ok(())
}

/// Ends window `id` at `at` (before its planned end).
pub async fn end_early(store: &Store, id: i64, at: f64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE maintenance_windows SET ends_at = ?, ended_early = 1 WHERE id = ?")
        .bind(at)
        .bind(id)
        .execute(store.pool())
        .await?;
    Ok(())
}

/// Windows that have not ended at `now` (running or still to come), oldest first.
pub async fn open_at(store: &Store, now: f64) -> Result<Vec<MaintenanceRow>, sqlx::Error> {
    let sql = concat!(
        "SELECT ",
        columns!(),
        " FROM maintenance_windows WHERE ends_at > ? ORDER BY id"
    );
    let rows = sqlx::query(sql).bind(now).fetch_all(store.pool()).await?;
    Ok(rows.iter().map(from_row).collect())
}

/// Windows covering `server` (its own and the `--all` ones) that overlap `[since, until]`,
/// oldest first.
pub async fn covering(
    store: &Store,
    server: &str,
    since: f64,
    until: f64,
) -> Result<Vec<MaintenanceRow>, sqlx::Error> {
    let sql = concat!(
        "SELECT ",
        columns!(),
        " FROM maintenance_windows WHERE (server = ? OR server IS NULL) AND ends_at > ? AND starts_at < ? ORDER BY starts_at, id"
    );
    let rows = sqlx::query(sql)
        .bind(server)
        .bind(since)
        .bind(until)
        .fetch_all(store.pool())
        .await?;
    Ok(rows.iter().map(from_row).collect())
}

/// Whether the store has the maintenance table (a database written by an older daemon that
/// the CLI opens without migrating has none).
pub async fn table_exists(store: &Store) -> Result<bool, sqlx::Error> {
    let n: i64 = sqlx::query(
        "SELECT count(*) AS n FROM sqlite_master WHERE type = 'table' AND name = 'maintenance_windows'",
    )
    .fetch_one(store.pool())
    .await?
    .get("n");
    Ok(n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(server: Option<&str>, starts_at: f64, ends_at: f64) -> NewMaintenance {
        NewMaintenance {
            server: server.map(String::from),
            starts_at,
            ends_at,
            reason: "kernel upgrade".into(),
            created_at: starts_at,
        }
    }

    #[tokio::test]
    async fn windows_survive_reopening_and_ending_early_moves_their_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.db");
        let store = Store::open(&path).await.unwrap();
        let a = insert(&store, &window(Some("a"), 100.0, 200.0))
            .await
            .unwrap();
        let all = insert(&store, &window(None, 150.0, 400.0)).await.unwrap();
        insert(&store, &window(Some("b"), 100.0, 120.0))
            .await
            .unwrap();
        set_silence(&store, a.id, "sil-1").await.unwrap();
        store.close().await;

        let store = Store::open(&path).await.unwrap();
        let open = open_at(&store, 130.0).await.unwrap();
        assert_eq!(
            open.iter().map(|w| w.id).collect::<Vec<_>>(),
            vec![a.id, all.id]
        );
        assert_eq!(open[0].silence_id.as_deref(), Some("sil-1"));
        assert_eq!(open[1].server, None);

        end_early(&store, a.id, 140.0).await.unwrap();
        let open = open_at(&store, 145.0).await.unwrap();
        assert_eq!(open.iter().map(|w| w.id).collect::<Vec<_>>(), vec![all.id]);

        let of_a = covering(&store, "a", 0.0, 1000.0).await.unwrap();
        assert_eq!(of_a.len(), 2, "{of_a:?}");
        assert!(of_a[0].ended_early && of_a[0].ends_at == 140.0);
        let of_b = covering(&store, "b", 130.0, 1000.0).await.unwrap();
        assert_eq!(of_b.iter().map(|w| w.id).collect::<Vec<_>>(), vec![all.id]);
        assert!(table_exists(&store).await.unwrap());
    }
}
