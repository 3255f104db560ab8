//! `backup` and `restore` of the history store against a daemon that keeps writing: the backup
//! is taken mid-writes, `restore` refuses while the daemon holds the store, and after the
//! daemon stops the restored store is what `history` reads. The `[store] backup` schedule runs,
//! is recorded in `backup_runs` and sets `mcp_store_last_backup_timestamp_seconds`.

use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;

use crate::common::daemon::{Daemon, daemon_bin};
use crate::common::processes::run_bounded;
use crate::common::servers::everything_stdio_entry;
use crate::common::tools::{Tool, require};
use crate::common::wait::eventually;

const WAIT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(200);
const CLI_TIMEOUT: Duration = Duration::from_secs(60);

fn cli(args: &[&str]) -> Output {
    run_bounded(Command::new(daemon_bin()).args(args), CLI_TIMEOUT)
        .unwrap_or_else(|e| panic!("mcp-exporter {args:?}: {e}"))
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn probe_rows(db: &std::path::Path) -> i64 {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let store = mcp_exporter::store::Store::open_existing(db)
            .await
            .expect("open");
        let n = sqlx::query_scalar("SELECT count(*) FROM probe_results")
            .fetch_one(store.pool())
            .await
            .expect("count");
        store.close().await;
        n
    })
}

fn backup_runs(db: &std::path::Path) -> Vec<mcp_exporter::store::backup::BackupRun> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let store = mcp_exporter::store::Store::open_existing(db)
            .await
            .expect("open");
        let runs = mcp_exporter::store::backup::runs_since(&store, 0.0)
            .await
            .expect("runs");
        store.close().await;
        runs
    })
}

#[test]
fn a_backup_taken_while_the_daemon_writes_restores_to_a_store_history_reads() {
    if require(Tool::Node).is_none() {
        return;
    }
    let config = format!(
        "[store]\npath = \"{{dir}}/history.db\"\nbackup = {{ every = \"1h\", dir = \"{{dir}}/backups\", keep = 2 }}\n{}",
        everything_stdio_entry("busy", "200ms", "")
    );
    let mut daemon = Daemon::start(&config);
    let db = daemon.dir().join("history.db");
    let config_path = daemon.config_path().to_string_lossy().into_owned();

    // The schedule backs up at once (nothing recorded yet) and says so in /metrics.
    let scheduled_at = eventually(WAIT, POLL, || {
        let scrape = daemon.scrape();
        match (
            scrape.value("mcp_store_last_backup_timestamp_seconds", &[]),
            scrape.value("mcp_store_backup_interval_seconds", &[]),
        ) {
            (Some(at), Some(every)) if at > 0.0 && every == 3600.0 => Ok(at),
            other => Err(format!("not yet: {other:?}")),
        }
    });
    let scheduled: Vec<_> = std::fs::read_dir(daemon.dir().join("backups"))
        .expect("backup dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(scheduled.len(), 1, "{scheduled:?}");
    assert!(scheduled[0].starts_with("mcp-exporter-"), "{scheduled:?}");

    // Wait until the daemon has written probes, then back up while it goes on writing.
    let before = eventually(WAIT, POLL, || match probe_rows(&db) {
        n if n >= 5 => Ok(n),
        n => Err(format!("{n} probe rows")),
    });
    let backup = daemon.dir().join("out/manual.db");
    let backup_arg = backup.to_string_lossy().into_owned();
    let out = cli(&["backup", "--config", &config_path, "--out", &backup_arg]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("quick_check ok"), "{}", text(&out));
    let in_backup = probe_rows(&backup);
    assert!(in_backup >= before, "{in_backup} < {before}");
    // The daemon kept writing after the backup.
    eventually(WAIT, POLL, || match probe_rows(&db) {
        n if n > in_backup => Ok(()),
        n => Err(format!("{n} probe rows, {in_backup} in the backup")),
    });
    // A second backup to the same file is refused, never overwritten.
    let out = cli(&["backup", "--config", &config_path, "--out", &backup_arg]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("already exists"), "{}", text(&out));

    // Both runs (and the refused one) are recorded with the scheduled one.
    let runs = backup_runs(&db);
    let triggers: Vec<(&str, bool)> = runs.iter().map(|r| (r.trigger.as_str(), r.ok)).collect();
    assert_eq!(
        triggers,
        [("schedule", true), ("cli", true), ("cli", false)],
        "{runs:?}"
    );
    assert!((runs[0].ts - scheduled_at).abs() < 1e-3, "{runs:?}");

    // The daemon holds the store: restore refuses and says how.
    let out = cli(&["restore", "--config", &config_path, "--from", &backup_arg]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains(&daemon.pid().to_string()) && said.contains("stop the daemon"),
        "{said}"
    );

    // Stopped, the store is replaced by the backup and `history` reads it.
    let status = daemon.stop();
    assert!(status.success(), "{status}");
    let out = cli(&["restore", "--config", &config_path, "--from", &backup_arg]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(probe_rows(&db), in_backup);
    assert!(daemon.dir().join("history.db.before-restore").is_file());
    let out = cli(&[
        "history",
        "--config",
        &config_path,
        "--server",
        "busy",
        "--since",
        "1h",
        "--output",
        "json",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let h: Value = serde_json::from_slice(&out.stdout).expect("history json");
    assert_eq!(h["probes"].as_i64(), Some(in_backup), "{h}");
    assert_eq!(h["transitions"][0]["kind"], "up", "{h}");
}
