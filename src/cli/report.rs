//! `mcp-exporter report`: the review of a period (src/report/) from the history store, to
//! stdout as Markdown (the default, readable in a terminal), HTML or JSON.

use std::path::PathBuf;
use std::time::Duration;

pub use crate::report::render::ReportOutput;
use crate::report::{self, render};
use crate::settings::Config;
use crate::store::{Store, StoreConfig};

/// Arguments of `report`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReportArgs {
    /// Configuration file; its `[store]` names the database and its size limit.
    #[arg(long, short, env = "MCP_EXPORTER_CONFIG", default_value = super::DEFAULT_CONFIG)]
    pub config: PathBuf,
    /// History database, overriding the config's `[store] path`.
    #[arg(long)]
    pub db: Option<PathBuf>,
    /// Period up to now (e.g. 24h, 7d).
    #[arg(long, default_value = "24h", value_parser = super::parse_duration_arg)]
    pub since: Duration,
    /// Only this server.
    #[arg(long)]
    pub server: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ReportOutput::Markdown)]
    pub output: ReportOutput,
}

/// Runs `report`; returns the exit status.
pub fn run(args: ReportArgs) -> u8 {
    let (path, runtime) = match super::store_and_runtime(&args.config, args.db.as_ref()) {
        Ok(ready) => ready,
        Err(status) => return status,
    };
    let sources = match args.config.is_file().then(|| Config::load(&args.config)) {
        Some(Ok(c)) => report::Sources {
            max_bytes: c.store.max_size,
            prometheus: c.prometheus,
        },
        _ => report::Sources {
            max_bytes: StoreConfig::defaults_for(&args.config).max_size,
            prometheus: None,
        },
    };
    runtime.block_on(async move {
        let until = crate::wall_clock::unix_seconds(std::time::SystemTime::now());
        let since = until - args.since.as_secs_f64();
        let result = async {
            let store = Store::open_existing(&path).await?;
            let report =
                report::build(&store, since, until, args.server.as_deref(), &sources).await;
            store.close().await;
            report
        }
        .await;
        match result {
            Ok(report) => {
                print!("{}", render::rendered(&report, args.output));
                0
            }
            Err(err) => {
                eprintln!("error: {}: {err}", path.display());
                1
            }
        }
    })
}
