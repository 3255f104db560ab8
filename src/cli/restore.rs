//! `mcp-exporter restore --from FILE`: replaces the history store with a checked backup
//! (src/store/restore.rs); refuses while a daemon holds the store.

use std::path::PathBuf;

use crate::store::restore::restore;

/// Arguments of `restore`.
#[derive(Debug, Clone, clap::Args)]
pub struct RestoreArgs {
    /// Configuration file; its `[store] path` names the database to replace.
    #[arg(long, short, env = "MCP_EXPORTER_CONFIG", default_value = super::DEFAULT_CONFIG)]
    pub config: PathBuf,
    /// History database to replace, overriding the config's `[store] path`.
    #[arg(long)]
    pub db: Option<PathBuf>,
    /// The backup to restore (written by `mcp-exporter backup` or the `[store] backup` schedule).
    #[arg(long)]
    pub from: PathBuf,
}

/// Runs `restore`; returns the exit status (0 restored, 1 refused or failed, 2 no usable
/// configuration).
pub fn run(args: RestoreArgs) -> u8 {
    let (path, runtime) = match super::store_and_runtime(&args.config, args.db.as_ref()) {
        Ok(ready) => ready,
        Err(status) => return status,
    };
    match runtime.block_on(restore(&args.from, &path)) {
        Ok(done) => {
            println!(
                "restored {} from {} ({} bytes, quick_check ok)",
                done.store.display(),
                args.from.display(),
                done.bytes
            );
            if let Some(previous) = done.previous {
                println!("the replaced store is kept as {}", previous.display());
            }
            0
        }
        Err(err) => {
            eprintln!("error: not restored: {err}");
            1
        }
    }
}
