//! The history store: probe results, dependency checks, health transitions and log lines in an
//! embedded SQLite database (sqlx; migrations embedded; WAL). The daemon writes through a
//! bounded channel drained by one background task ([`writer`]); the CLI reads ([`query`]).

pub mod availability;
pub mod backup;
mod config;
pub mod daemon;
pub mod integrity;
mod level;
pub mod maintenance;
pub mod metrics;
pub mod observe;
pub mod query;
mod records;
pub mod restore;
mod retention;
pub mod writer;

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::SqlStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::sqlite::{
    SqliteAutoVacuum, SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};

pub use config::{BackupSchedule, RawStoreConfig, StoreConfig, parse_size};
pub use level::{Level, UnknownLevel};
pub use records::{
    DefinitionChangeRow, DependencyRow, LogRow, LogSource, ProbeRow, ProcessSampleRow, Record,
    TransitionRow,
};
pub use retention::enforce as retention_pass;

/// How long a connection waits on a lock held by another connection or process.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the store could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Opening or creating the database failed.
    #[error(
        "cannot open the history store {path}: {source} (check `[store] path` and that the directory is writable, or set `[store] enabled = false`)"
    )]
    Open {
        /// The database file.
        path: PathBuf,
        /// Cause.
        source: sqlx::Error,
    },
    /// The database does not exist (reader side).
    #[error(
        "no history store at {0}: the daemon creates it on its first run (`mcp-exporter serve` with `[store] enabled`); pass --config or --db to point elsewhere"
    )]
    Missing(PathBuf),
    /// Applying the embedded migrations failed.
    #[error("cannot migrate the history store {path}: {source}")]
    Migrate {
        /// The database file.
        path: PathBuf,
        /// Cause.
        source: sqlx::migrate::MigrateError,
    },
    /// A query failed.
    #[error("history store query failed: {0}")]
    Query(#[from] sqlx::Error),
}

/// The schema migrations, compiled into the binary so a deployed daemon needs no
/// `migrations/` folder. Built by hand rather than with `sqlx::migrate!`: that macro pulls
/// in sqlx's compile-time machinery (a second build of tokio, rustls and both database
/// drivers for the host), which doubled the build's size for one file. The checksum is
/// sqlx's own, so databases created by either way validate alike.
fn embedded_migrator() -> Migrator {
    Migrator::with_migrations(vec![
        Migration::new(
            1,
            Cow::Borrowed("history"),
            MigrationType::Simple,
            SqlStr::from_static(include_str!("../../migrations/0001_history.sql")),
            false,
        ),
        Migration::new(
            2,
            Cow::Borrowed("maintenance windows"),
            MigrationType::Simple,
            SqlStr::from_static(include_str!(
                "../../migrations/0002_maintenance_windows.sql"
            )),
            false,
        ),
        Migration::new(
            3,
            Cow::Borrowed("backup runs"),
            MigrationType::Simple,
            SqlStr::from_static(include_str!("../../migrations/0003_backup_runs.sql")),
            false,
        ),
        Migration::new(
            4,
            Cow::Borrowed("tool definition changes"),
            MigrationType::Simple,
            SqlStr::from_static(include_str!(
                "../../migrations/0004_tool_definition_changes.sql"
            )),
            false,
        ),
        Migration::new(
            5,
            Cow::Borrowed("probe trace id"),
            MigrationType::Simple,
            SqlStr::from_static(include_str!("../../migrations/0005_probe_trace_id.sql")),
            false,
        ),
        Migration::new(
            6,
            Cow::Borrowed("process samples"),
            MigrationType::Simple,
            SqlStr::from_static(include_str!("../../migrations/0006_process_samples.sql")),
            false,
        ),
        Migration::new(
            7,
            Cow::Borrowed("definition kinds"),
            MigrationType::Simple,
            SqlStr::from_static(include_str!("../../migrations/0007_definition_kinds.sql")),
            false,
        ),
    ])
}

/// An open history database.
#[derive(Debug, Clone)]
pub struct Store {
    pool: SqlitePool,
    path: PathBuf,
}

impl Store {
    /// Opens (creating if needed) the database at `path` and applies the embedded migrations.
    pub async fn open(path: &Path) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            let _ = std::fs::create_dir_all(dir);
        }
        let store = Store::connect(path, true).await?;
        embedded_migrator()
            .run(&store.pool)
            .await
            .map_err(|source| StoreError::Migrate {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(store)
    }

    /// Opens an existing database for the CLI (no creation, no migrations).
    pub async fn open_existing(path: &Path) -> Result<Store, StoreError> {
        if !path.is_file() {
            return Err(StoreError::Missing(path.to_path_buf()));
        }
        Store::connect(path, false).await
    }

    async fn connect(path: &Path, create: bool) -> Result<Store, StoreError> {
        let open_err = |source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        };
        let options = SqliteConnectOptions::from_str("sqlite://")
            .map_err(open_err)?
            .filename(path)
            .create_if_missing(create)
            .journal_mode(SqliteJournalMode::Wal)
            // In WAL mode NORMAL keeps every committed transaction across a process crash
            // (SIGKILL); only a power loss may lose the last commits.
            .synchronous(SqliteSynchronous::Normal)
            .auto_vacuum(SqliteAutoVacuum::Incremental)
            .busy_timeout(BUSY_TIMEOUT);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(BUSY_TIMEOUT * 2)
            .connect_with(options)
            .await
            .map_err(open_err)?;
        Ok(Store {
            pool,
            path: path.to_path_buf(),
        })
    }

    /// The connection pool.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes on disk: the database file plus its write-ahead log.
    pub fn size_on_disk(&self) -> u64 {
        let mut wal = self.path.clone().into_os_string();
        wal.push("-wal");
        [self.path.clone(), PathBuf::from(wal)]
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum()
    }

    /// Closes every connection (checkpointing the WAL).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A migration that has run on an operator's database must never change: sqlx refuses
    /// to open a database whose recorded checksum differs. Pinned to the SHA-384 of the file
    /// as first released; a schema change is a new migration file.
    #[test]
    fn released_migration_is_unchanged() {
        let migrator = embedded_migrator();
        let first = migrator.iter().next().expect("a first migration");
        assert_eq!(first.version, 1);
        let hex: String = first.checksum.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "83b8741f0912450049362a09f540ebb077967d79c2d264465f1a7df5d2440f4a\
             a9cffb0c0f79497f635928aa3cd4966c"
        );
    }

    #[tokio::test]
    async fn a_database_of_the_first_schema_takes_the_later_migrations() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.db");
        let old = Store::connect(&path, true).await.unwrap();
        let first_only =
            Migrator::with_migrations(embedded_migrator().iter().take(1).cloned().collect());
        first_only.run(old.pool()).await.unwrap();
        old.close().await;
        let store = Store::open(&path).await.expect("migrates forward");
        let versions: Vec<i64> =
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY version")
                .fetch_all(store.pool())
                .await
                .unwrap();
        assert_eq!(versions, [1, 2, 3, 4, 5, 6, 7]);
        for table in ["tool_definition_changes", "process_samples"] {
            let rows: i64 =
                sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
                    .fetch_one(store.pool())
                    .await
                    .unwrap();
            assert_eq!(rows, 0, "{table}");
        }
        let traced: i64 = sqlx::query_scalar("SELECT count(trace_id) FROM probe_results")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(traced, 0);
    }

    #[tokio::test]
    async fn reopening_a_migrated_database_validates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.db");
        drop(Store::open(&path).await.unwrap());
        Store::open(&path)
            .await
            .expect("second open accepts the recorded migration");
    }
}
