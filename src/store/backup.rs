//! Backups of the history store: `VACUUM INTO` a new file (a consistent snapshot, taken inside
//! one read transaction, so the daemon keeps writing meanwhile), checked with
//! `PRAGMA quick_check` before it gets its final name; every run is recorded in `backup_runs`.
//! [`spawn_schedule`] runs them on `[store] backup = { every, dir, keep }`.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};
use tokio::task::JoinHandle;

use super::{BackupSchedule, Store};
use crate::store::metrics::StoreMetrics;
use crate::wall_clock::unix_seconds;

/// File names of scheduled backups: `mcp-exporter-<UTC time>.db`.
const SCHEDULED_PREFIX: &str = "mcp-exporter-";
/// Extension of scheduled backups.
const SCHEDULED_SUFFIX: &str = ".db";
/// Wait before retrying a failed scheduled backup (or the schedule's period, if shorter).
const RETRY_AFTER: Duration = Duration::from_secs(300);

/// Why a backup failed or a file is not a usable backup.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The output already exists; a backup never overwrites.
    #[error("{0} already exists; choose another --out or remove it first")]
    Exists(PathBuf),
    /// The output path is not UTF-8 (SQLite takes the name as text).
    #[error("{0} is not a UTF-8 path")]
    NotUtf8(PathBuf),
    /// Creating the output directory, renaming or removing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// SQLite refused (`VACUUM INTO`, opening the copy, the check).
    #[error("{path}: {source}")]
    Sqlite {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: sqlx::Error,
    },
    /// `PRAGMA quick_check` found damage.
    #[error("{path} failed PRAGMA quick_check: {problems}")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What quick_check reported (first lines).
        problems: String,
    },
    /// The file is an SQLite database, but not an mcp-exporter history store.
    #[error("{0} is not an mcp-exporter history store (it has no probe_results table)")]
    NotAStore(PathBuf),
}

/// A backup written.
#[derive(Debug, Clone, PartialEq)]
pub struct BackupDone {
    /// The backup file.
    pub file: PathBuf,
    /// Its size.
    pub bytes: u64,
    /// How long `VACUUM INTO` and the check took.
    pub duration: Duration,
}

/// Who asked for a backup, as recorded in `backup_runs.trigger`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// The `[store] backup` schedule of the daemon.
    Schedule,
    /// `mcp-exporter backup`.
    Cli,
}

impl Trigger {
    /// The recorded word.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Schedule => "schedule",
            Trigger::Cli => "cli",
        }
    }
}

/// Writes a consistent copy of `store` to `out` (which must not exist): `VACUUM INTO` a
/// `.partial` file beside it, `PRAGMA quick_check` the copy, then rename it to `out`.
pub async fn backup_into(store: &Store, out: &Path) -> Result<BackupDone, BackupError> {
    let started = Instant::now();
    if out.exists() {
        return Err(BackupError::Exists(out.to_path_buf()));
    }
    if let Some(dir) = out.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir).map_err(|source| BackupError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    let partial = partial_path(out);
    remove_if_present(&partial)?;
    let name = partial
        .to_str()
        .ok_or_else(|| BackupError::NotUtf8(partial.clone()))?;
    let vacuumed = sqlx::query("VACUUM INTO ?")
        .bind(name)
        .execute(store.pool())
        .await;
    if let Err(source) = vacuumed {
        let _ = std::fs::remove_file(&partial);
        return Err(BackupError::Sqlite {
            path: partial,
            source,
        });
    }
    if let Err(err) = verify(&partial).await {
        let _ = std::fs::remove_file(&partial);
        return Err(err);
    }
    std::fs::rename(&partial, out).map_err(|source| BackupError::Io {
        path: out.to_path_buf(),
        source,
    })?;
    let bytes = std::fs::metadata(out).map(|m| m.len()).unwrap_or(0);
    Ok(BackupDone {
        file: out.to_path_buf(),
        bytes,
        duration: started.elapsed(),
    })
}

/// Checks that `path` is an intact history store: opened read-only, `PRAGMA quick_check`
/// answers `ok` and the `probe_results` table exists.
pub async fn verify(path: &Path) -> Result<(), BackupError> {
    let sqlite = |source| BackupError::Sqlite {
        path: path.to_path_buf(),
        source,
    };
    if !path.is_file() {
        return Err(BackupError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
        });
    }
    let mut conn = SqliteConnectOptions::from_str("sqlite://")
        .map_err(sqlite)?
        .filename(path)
        .read_only(true)
        .connect()
        .await
        .map_err(sqlite)?;
    let checked = async {
        let lines: Vec<String> = sqlx::query_scalar("PRAGMA quick_check")
            .fetch_all(&mut conn)
            .await?;
        let tables: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'probe_results'",
        )
        .fetch_one(&mut conn)
        .await?;
        Ok::<_, sqlx::Error>((lines, tables))
    }
    .await;
    let _ = conn.close().await;
    let (lines, tables) = checked.map_err(sqlite)?;
    if lines != ["ok"] {
        return Err(BackupError::Damaged {
            path: path.to_path_buf(),
            problems: lines.into_iter().take(5).collect::<Vec<_>>().join("; "),
        });
    }
    if tables == 0 {
        return Err(BackupError::NotAStore(path.to_path_buf()));
    }
    Ok(())
}

/// Records one run in `backup_runs`.
pub async fn record_run(
    store: &Store,
    started: SystemTime,
    trigger: Trigger,
    file: &Path,
    outcome: &Result<BackupDone, BackupError>,
    duration: Duration,
) -> Result<(), sqlx::Error> {
    let (ok, bytes, error) = match outcome {
        Ok(done) => (true, i64::try_from(done.bytes).ok(), None),
        Err(err) => (false, None, Some(err.to_string())),
    };
    sqlx::query(
        "INSERT INTO backup_runs (ts, trigger, file, ok, bytes, duration_ms, error) VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(unix_seconds(started))
    .bind(trigger.as_str())
    .bind(file.display().to_string())
    .bind(ok)
    .bind(bytes)
    .bind(duration.as_secs_f64() * 1000.0)
    .bind(error)
    .execute(store.pool())
    .await
    .map(|_| ())
}

/// Unix seconds of the newest successful backup recorded in the store.
pub async fn last_success(store: &Store) -> Result<Option<f64>, sqlx::Error> {
    sqlx::query_scalar("SELECT max(ts) FROM backup_runs WHERE ok = 1")
        .fetch_one(store.pool())
        .await
}

/// One recorded run, as `backup_runs` holds it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BackupRun {
    /// Unix seconds the run started.
    pub ts: f64,
    /// `schedule` or `cli`.
    pub trigger: String,
    /// The backup file.
    pub file: String,
    /// Whether it was written and checked.
    pub ok: bool,
    /// Its size, when written.
    pub bytes: Option<i64>,
    /// Why it failed.
    pub error: Option<String>,
}

/// A `backup_runs` row as read: ts, trigger, file, ok, bytes, error.
type RunRow = (f64, String, String, bool, Option<i64>, Option<String>);

/// The runs recorded since `since` (Unix seconds), oldest first.
pub async fn runs_since(store: &Store, since: f64) -> Result<Vec<BackupRun>, sqlx::Error> {
    let rows: Vec<RunRow> = sqlx::query_as(
        "SELECT ts, trigger, file, ok, bytes, error FROM backup_runs WHERE ts >= ? ORDER BY ts",
    )
    .bind(since)
    .fetch_all(store.pool())
    .await?;
    Ok(rows
        .into_iter()
        .map(|(ts, trigger, file, ok, bytes, error)| BackupRun {
            ts,
            trigger,
            file,
            ok,
            bytes,
            error,
        })
        .collect())
}

/// Starts the daemon's backup schedule: the first backup is due one period after the newest
/// recorded success (at once when there is none or it is overdue); each run is recorded and
/// counted, and only the newest `keep` scheduled backups stay in `dir`. A failed run is
/// retried after five minutes (or the period, if shorter).
pub fn spawn_schedule(
    store: Store,
    schedule: BackupSchedule,
    metrics: Arc<StoreMetrics>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        metrics.set_backup_interval(schedule.every);
        let last = match last_success(&store).await {
            Ok(last) => last,
            Err(err) => {
                tracing::warn!(error = %err, "cannot read the last backup from the history store");
                None
            }
        };
        if let Some(last) = last {
            metrics.set_last_backup(last);
        }
        let mut wait = first_wait(last, unix_seconds(SystemTime::now()), schedule.every);
        loop {
            tokio::time::sleep(wait).await;
            wait = match run_scheduled(&store, &schedule, &metrics).await {
                Ok(()) => schedule.every,
                Err(()) => schedule.every.min(RETRY_AFTER),
            };
        }
    })
}

/// The wait before the first scheduled backup: what is left of the period since `last`.
fn first_wait(last: Option<f64>, now: f64, every: Duration) -> Duration {
    match last {
        Some(last) => {
            let due = last + every.as_secs_f64();
            Duration::from_secs_f64((due - now).clamp(0.0, every.as_secs_f64()))
        }
        None => Duration::ZERO,
    }
}

async fn run_scheduled(
    store: &Store,
    schedule: &BackupSchedule,
    metrics: &StoreMetrics,
) -> Result<(), ()> {
    let started = SystemTime::now();
    let clock = Instant::now();
    let file = schedule.dir.join(scheduled_name(started));
    let outcome = backup_into(store, &file).await;
    if let Err(err) = record_run(
        store,
        started,
        Trigger::Schedule,
        &file,
        &outcome,
        clock.elapsed(),
    )
    .await
    {
        tracing::warn!(error = %err, "cannot record the backup run in the history store");
    }
    match outcome {
        Ok(done) => {
            metrics.set_last_backup(unix_seconds(started));
            tracing::info!(file = %done.file.display(), bytes = done.bytes, "history store backed up");
            match prune(&schedule.dir, schedule.keep) {
                Ok(removed) => {
                    for path in removed {
                        tracing::info!(file = %path.display(), "old backup removed");
                    }
                }
                Err(err) => {
                    tracing::warn!(error = %err, dir = %schedule.dir.display(), "cannot remove old backups")
                }
            }
            Ok(())
        }
        Err(err) => {
            metrics.backup_failed();
            tracing::error!(error = %err, "scheduled backup of the history store failed");
            Err(())
        }
    }
}

/// `mcp-exporter-20261129T203341Z.db` for a start time (UTC, sortable).
pub fn scheduled_name(at: SystemTime) -> String {
    let stamp: String = humantime::format_rfc3339_seconds(at)
        .to_string()
        .chars()
        .filter(|c| *c != '-' && *c != ':')
        .collect();
    format!("{SCHEDULED_PREFIX}{stamp}{SCHEDULED_SUFFIX}")
}

fn is_scheduled_name(name: &str) -> bool {
    name.strip_prefix(SCHEDULED_PREFIX)
        .and_then(|rest| rest.strip_suffix(SCHEDULED_SUFFIX))
        .is_some_and(|stamp| {
            stamp.len() == "20261129T203341Z".len()
                && stamp.ends_with('Z')
                && stamp.as_bytes()[8] == b'T'
        })
}

/// Deletes all but the newest `keep` scheduled backups in `dir`, and the `.partial` files of
/// scheduled runs cut short (other files are left alone); returns the removed paths.
pub fn prune(dir: &Path, keep: usize) -> Result<Vec<PathBuf>, BackupError> {
    let io = |source| BackupError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map_err(io)?
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter(|name| is_scheduled_name(name.trim_end_matches(".partial")))
        .collect();
    names.sort();
    let (partials, names): (Vec<String>, Vec<String>) = names
        .into_iter()
        .partition(|name| name.ends_with(".partial"));
    let excess = names.len().saturating_sub(keep);
    let mut removed = Vec::new();
    for name in names.into_iter().take(excess).chain(partials) {
        let path = dir.join(name);
        std::fs::remove_file(&path).map_err(|source| BackupError::Io {
            path: path.clone(),
            source,
        })?;
        removed.push(path);
    }
    Ok(removed)
}

fn partial_path(out: &Path) -> PathBuf {
    let mut name = out.as_os_str().to_os_string();
    name.push(".partial");
    PathBuf::from(name)
}

fn remove_if_present(path: &Path) -> Result<(), BackupError> {
    match std::fs::remove_file(path) {
        Err(source) if source.kind() != std::io::ErrorKind::NotFound => Err(BackupError::Io {
            path: path.to_path_buf(),
            source,
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metric_registry::MetricsRegistry;
    use crate::store::{LogRow, LogSource, Record, writer::write_batch};

    fn log(ts: f64, message: &str) -> Record {
        Record::Log(LogRow {
            ts,
            server: "s".into(),
            source: LogSource::Stderr,
            level: crate::store::Level::Info,
            logger: None,
            message: message.into(),
        })
    }

    #[tokio::test]
    async fn a_backup_is_a_checked_copy_that_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("h.db")).await.unwrap();
        write_batch(&store, &[log(1.0, "first line")])
            .await
            .unwrap();
        let out = dir.path().join("copies/b.db");
        let done = backup_into(&store, &out).await.expect("backup");
        assert_eq!(done.file, out);
        assert!(done.bytes > 0);
        assert!(!partial_path(&out).exists());
        verify(&out).await.expect("the copy passes quick_check");
        let copy = Store::open_existing(&out).await.unwrap();
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM log_lines")
            .fetch_one(copy.pool())
            .await
            .unwrap();
        assert_eq!(n, 1);
        assert!(matches!(
            backup_into(&store, &out).await,
            Err(BackupError::Exists(_))
        ));
    }

    #[tokio::test]
    async fn damaged_and_foreign_files_fail_verification() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.db");
        std::fs::write(&junk, b"this is not a database at all, just text").unwrap();
        assert!(verify(&junk).await.is_err());
        let foreign = dir.path().join("foreign.db");
        let mut conn = SqliteConnectOptions::from_str("sqlite://")
            .unwrap()
            .filename(&foreign)
            .create_if_missing(true)
            .connect()
            .await
            .unwrap();
        sqlx::query("CREATE TABLE t (x)")
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
        assert!(matches!(
            verify(&foreign).await,
            Err(BackupError::NotAStore(_))
        ));
    }

    #[tokio::test]
    async fn runs_are_recorded_and_the_last_success_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("h.db")).await.unwrap();
        assert_eq!(last_success(&store).await.unwrap(), None);
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let failed: Result<BackupDone, BackupError> = Err(BackupError::Exists(PathBuf::from("/x")));
        record_run(
            &store,
            at,
            Trigger::Cli,
            Path::new("/x"),
            &failed,
            Duration::ZERO,
        )
        .await
        .unwrap();
        assert_eq!(last_success(&store).await.unwrap(), None);
        let ok = Ok(BackupDone {
            file: PathBuf::from("/y"),
            bytes: 10,
            duration: Duration::ZERO,
        });
        let later = at + Duration::from_secs(5);
        record_run(
            &store,
            later,
            Trigger::Schedule,
            Path::new("/y"),
            &ok,
            Duration::ZERO,
        )
        .await
        .unwrap();
        assert_eq!(last_success(&store).await.unwrap(), Some(1005.0));
        let runs = runs_since(&store, 0.0).await.unwrap();
        assert_eq!(runs.len(), 2);
        assert!(!runs[0].ok && runs[0].error.as_deref().unwrap().contains("already exists"));
        assert_eq!(runs[1].trigger, "schedule");
    }

    #[test]
    fn the_first_backup_waits_for_what_is_left_of_the_period() {
        let day = Duration::from_secs(86_400);
        assert_eq!(first_wait(None, 5000.0, day), Duration::ZERO);
        assert_eq!(
            first_wait(Some(1000.0), 1000.0 + 3600.0, day),
            day - Duration::from_secs(3600)
        );
        assert_eq!(first_wait(Some(0.0), 200_000.0, day), Duration::ZERO);
        // A last backup in the future (clock stepped back) waits one period at most.
        assert_eq!(first_wait(Some(900_000.0), 0.0, day), day);
    }

    #[test]
    fn pruning_keeps_the_newest_scheduled_backups_only() {
        let dir = tempfile::tempdir().unwrap();
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let names: Vec<String> = (0..4)
            .map(|i| scheduled_name(t0 + Duration::from_secs(i * 86_400)))
            .collect();
        for name in &names {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        std::fs::write(dir.path().join("keep-me.db"), b"x").unwrap();
        let cut_short = format!("{}.partial", names[2]);
        std::fs::write(dir.path().join(&cut_short), b"x").unwrap();
        let removed = prune(dir.path(), 2).unwrap();
        assert_eq!(
            removed,
            vec![
                dir.path().join(&names[0]),
                dir.path().join(&names[1]),
                dir.path().join(&cut_short)
            ]
        );
        assert!(dir.path().join(&names[3]).exists());
        assert!(dir.path().join("keep-me.db").exists());
        assert_eq!(names[0], "mcp-exporter-20270115T080000Z.db");
    }

    #[tokio::test]
    async fn the_schedule_backs_up_at_once_records_and_sets_the_gauge() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("h.db")).await.unwrap();
        let mut registry = MetricsRegistry::default();
        let metrics = Arc::new(StoreMetrics::register(&mut registry));
        let schedule = BackupSchedule {
            every: Duration::from_secs(3600),
            dir: dir.path().join("backups"),
            keep: 2,
        };
        let task = spawn_schedule(store.clone(), schedule, metrics);
        let mut recorded = None;
        for _ in 0..600 {
            recorded = last_success(&store).await.unwrap();
            if recorded.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        task.abort();
        let recorded = recorded.expect("a scheduled backup is recorded");
        let files: Vec<_> = std::fs::read_dir(dir.path().join("backups"))
            .unwrap()
            .filter_map(|e| e.ok())
            .collect();
        assert_eq!(files.len(), 1);
        let text = registry.encode();
        assert!(
            text.contains("mcp_store_backup_interval_seconds 3600"),
            "{text}"
        );
        let gauge = text
            .lines()
            .find_map(|l| l.strip_prefix("mcp_store_last_backup_timestamp_seconds "))
            .and_then(|v| v.parse::<f64>().ok())
            .expect("gauge");
        assert!((gauge - recorded).abs() < 1e-3, "{gauge} vs {recorded}");
    }
}
