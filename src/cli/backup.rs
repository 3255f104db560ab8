//! `mcp-exporter backup --out FILE`: a consistent copy of the history store, safe while the
//! daemon writes (src/store/backup.rs), recorded in the store's `backup_runs`.

use std::path::PathBuf;
use std::time::{Instant, SystemTime};

use crate::store::Store;
use crate::store::backup::{Trigger, backup_into, record_run};

/// Arguments of `backup`.
#[derive(Debug, Clone, clap::Args)]
pub struct BackupArgs {
    /// Configuration file; its `[store] path` names the database.
    #[arg(long, short, env = "MCP_EXPORTER_CONFIG", default_value = super::DEFAULT_CONFIG)]
    pub config: PathBuf,
    /// History database, overriding the config's `[store] path`.
    #[arg(long)]
    pub db: Option<PathBuf>,
    /// The backup file to write (must not exist).
    #[arg(long)]
    pub out: PathBuf,
}

/// Runs `backup`; returns the exit status (0 written and checked, 1 failed, 2 no usable store).
pub fn run(args: BackupArgs) -> u8 {
    let (path, runtime) = match super::store_and_runtime(&args.config, args.db.as_ref()) {
        Ok(ready) => ready,
        Err(status) => return status,
    };
    runtime.block_on(async move {
        let store = match Store::open_existing(&path).await {
            Ok(store) => store,
            Err(err) => {
                eprintln!("error: {err}");
                return 2;
            }
        };
        let started = SystemTime::now();
        let clock = Instant::now();
        let outcome = backup_into(&store, &args.out).await;
        if let Err(err) = record_run(
            &store,
            started,
            Trigger::Cli,
            &args.out,
            &outcome,
            clock.elapsed(),
        )
        .await
        {
            // A store the daemon has not migrated yet has no backup_runs table; the backup
            // itself is still good.
            eprintln!(
                "warning: the run is not recorded in {}: {err}",
                path.display()
            );
        }
        store.close().await;
        match outcome {
            Ok(done) => {
                println!(
                    "backed up {} to {} ({} bytes, quick_check ok, {:.1}s)",
                    path.display(),
                    done.file.display(),
                    done.bytes,
                    done.duration.as_secs_f64()
                );
                0
            }
            Err(err) => {
                eprintln!("error: backup failed: {err}");
                1
            }
        }
    })
}
