//! Restoring the history store from a backup: the backup is checked first
//! (`PRAGMA quick_check`, [`super::backup::verify`]), a store some process still holds open (a
//! running daemon) is never replaced, and the replaced files are kept beside it as
//! `<store>.before-restore` (with its `-wal` and `-shm`).

use std::path::{Path, PathBuf};

use super::backup::{BackupError, verify};

/// Suffix of the store moved aside by a restore.
pub const BEFORE_RESTORE: &str = ".before-restore";

/// Why a restore did not happen.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// The backup is missing, damaged or not a history store.
    #[error("the backup cannot be restored: {0}")]
    Backup(#[from] BackupError),
    /// Processes (the daemon) have the store open.
    #[error(
        "{path} is open in process(es) {pids:?} (a running `mcp-exporter serve`?); stop the daemon first (e.g. `systemctl stop mcp-exporter`), run restore again, then start it"
    )]
    InUse {
        /// The store.
        path: PathBuf,
        /// The processes holding it.
        pids: Vec<u32>,
    },
    /// Copying or renaming failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
}

/// What a restore did.
#[derive(Debug, Clone, PartialEq)]
pub struct Restored {
    /// The store written.
    pub store: PathBuf,
    /// Where the replaced store was moved, when there was one.
    pub previous: Option<PathBuf>,
    /// Bytes restored.
    pub bytes: u64,
}

/// Replaces the store at `store` with the backup `from`, after checking the backup and that no
/// process holds the store open.
pub async fn restore(from: &Path, store: &Path) -> Result<Restored, RestoreError> {
    verify(from).await?;
    let pids = holders(store);
    if !pids.is_empty() {
        return Err(RestoreError::InUse {
            path: store.to_path_buf(),
            pids,
        });
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| RestoreError::Io { path, source }
    };
    if let Some(dir) = store.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    let incoming = with_suffix(store, ".restoring");
    let bytes = std::fs::copy(from, &incoming).map_err(io(&incoming))?;
    std::fs::File::open(&incoming)
        .and_then(|f| f.sync_all())
        .map_err(io(&incoming))?;
    // The copy is checked too: the backup may have changed under us, or the disk failed.
    if let Err(err) = verify(&incoming).await {
        let _ = std::fs::remove_file(&incoming);
        return Err(err.into());
    }
    let previous = if store.exists() {
        let aside = with_suffix(store, BEFORE_RESTORE);
        std::fs::rename(store, &aside).map_err(io(store))?;
        Some(aside)
    } else {
        None
    };
    // The old write-ahead log and shared-memory files belong to the old database: SQLite would
    // replay them into the restored one.
    for side in ["-wal", "-shm"] {
        let file = with_suffix(store, side);
        if file.exists() {
            let aside = with_suffix(store, &format!("{BEFORE_RESTORE}{side}"));
            std::fs::rename(&file, &aside).map_err(io(&file))?;
        }
    }
    std::fs::rename(&incoming, store).map_err(io(store))?;
    Ok(Restored {
        store: store.to_path_buf(),
        previous,
        bytes,
    })
}

/// Processes other than this one that have `store` (or its `-wal`/`-shm`) open, found in
/// /proc; empty where /proc cannot be read.
pub fn holders(store: &Path) -> Vec<u32> {
    let Ok(canonical) = std::fs::canonicalize(store) else {
        return Vec::new();
    };
    let wanted: Vec<PathBuf> = ["", "-wal", "-shm"]
        .iter()
        .map(|side| with_suffix(&canonical, side))
        .collect();
    open_by(&wanted)
}

#[cfg(target_os = "linux")]
fn open_by(wanted: &[PathBuf]) -> Vec<u32> {
    use procfs::process::{FDTarget, all_processes};
    let me = std::process::id();
    let Ok(processes) = all_processes() else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = processes
        .flatten()
        .filter(|p| u32::try_from(p.pid).is_ok_and(|pid| pid != me))
        .filter(|p| {
            p.fd().is_ok_and(|fds| {
                fds.flatten().any(|fd| match fd.target {
                    FDTarget::Path(path) => wanted.contains(&path),
                    _ => false,
                })
            })
        })
        .filter_map(|p| u32::try_from(p.pid).ok())
        .collect();
    pids.sort_unstable();
    pids
}

#[cfg(not(target_os = "linux"))]
fn open_by(_wanted: &[PathBuf]) -> Vec<u32> {
    Vec::new()
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(suffix);
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::backup::backup_into;
    use crate::store::{LogRow, LogSource, Record, Store, writer::write_batch};

    async fn store_with(path: &Path, messages: &[&str]) -> Store {
        let store = Store::open(path).await.unwrap();
        let rows: Vec<Record> = messages
            .iter()
            .map(|m| {
                Record::Log(LogRow {
                    ts: 1.0,
                    server: "s".into(),
                    source: LogSource::Stderr,
                    level: crate::store::Level::Info,
                    logger: None,
                    message: (*m).into(),
                })
            })
            .collect();
        write_batch(&store, &rows).await.unwrap();
        store
    }

    async fn messages(path: &Path) -> Vec<String> {
        let store = Store::open_existing(path).await.unwrap();
        let rows = sqlx::query_scalar("SELECT message FROM log_lines ORDER BY id")
            .fetch_all(store.pool())
            .await
            .unwrap();
        store.close().await;
        rows
    }

    #[tokio::test]
    async fn a_closed_store_is_replaced_and_kept_aside() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("h.db");
        let backup = dir.path().join("b.db");
        let store = store_with(&live, &["before the backup"]).await;
        backup_into(&store, &backup).await.unwrap();
        write_batch(
            &store,
            &[Record::Log(LogRow {
                ts: 2.0,
                server: "s".into(),
                source: LogSource::Stderr,
                level: crate::store::Level::Info,
                logger: None,
                message: "after the backup".into(),
            })],
        )
        .await
        .unwrap();
        // While this process holds it, only another process would be refused: holders()
        // leaves out the caller itself.
        assert!(holders(&live).is_empty());
        store.close().await;
        let restored = restore(&backup, &live).await.expect("restore");
        assert_eq!(restored.previous, Some(with_suffix(&live, BEFORE_RESTORE)));
        assert_eq!(messages(&live).await, ["before the backup"]);
        assert_eq!(
            messages(&with_suffix(&live, BEFORE_RESTORE)).await,
            ["before the backup", "after the backup"]
        );
    }

    #[tokio::test]
    async fn a_damaged_backup_leaves_the_store_alone() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("h.db");
        store_with(&live, &["kept"]).await.close().await;
        let junk = dir.path().join("junk.db");
        std::fs::write(&junk, vec![7u8; 8192]).unwrap();
        assert!(matches!(
            restore(&junk, &live).await,
            Err(RestoreError::Backup(_))
        ));
        assert_eq!(messages(&live).await, ["kept"]);
        assert!(!with_suffix(&live, BEFORE_RESTORE).exists());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn another_process_holding_the_store_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("h.db");
        std::fs::write(&live, b"x").unwrap();
        // `sleep` with the file open on its stdin, as a daemon holds its database.
        let file = std::fs::File::open(&live).unwrap();
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .stdin(file)
            .spawn()
            .unwrap();
        let found = holders(&live);
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(found, vec![child.id()]);
    }
}
