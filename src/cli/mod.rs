//! The operator's subcommands beyond `serve` and `validate`: `check`, `metrics`, `logs`,
//! `history`, `report`, `maintenance`, `import`, `wrap`, `pin`, `diff`, `backup`, `restore`, `incident` and `login`. `main.rs` parses arguments and calls each module's `run`, which
//! returns the exit status.

pub mod backup;
pub mod check;
pub mod diff;
pub mod history;
pub mod import;
pub mod incident;
pub mod login;
pub mod logs;
pub mod maintenance;
pub mod metrics;
pub mod pin;
pub mod proxy;
pub mod report;
pub mod restore;
pub mod wrap;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::settings::Config;
use crate::store::StoreConfig;

/// Default config file of every subcommand (same as `serve`).
pub const DEFAULT_CONFIG: &str = "mcp-exporter.toml";

/// Builds the runtime the subcommands run on.
pub fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))
}

/// Parses `--since` / `--interval` values such as `1h`, `30m`, `24h`, `7d`; a bare number is
/// seconds, as in the playbook's `--continuous --interval 30`.
pub fn parse_duration_arg(text: &str) -> Result<Duration, String> {
    match text.trim().parse::<u64>() {
        Ok(0) => Err("duration must be greater than zero".to_string()),
        Ok(seconds) => Ok(Duration::from_secs(seconds)),
        Err(_) => crate::config::parse_duration(text).map_err(|e| e.to_string()),
    }
}

/// The database a reading subcommand opens: `--db`, else the config's `[store] path`, else the
/// default beside the config file (even when the config file does not exist here).
pub fn store_path(config: &Path, db: Option<&PathBuf>) -> Result<PathBuf, String> {
    if let Some(db) = db {
        return Ok(db.clone());
    }
    if config.is_file() {
        return Config::load(config)
            .map(|c| c.store.path)
            .map_err(|e| e.to_string());
    }
    Ok(StoreConfig::defaults_for(config).path)
}

/// What `logs` and `history` need before they read the store: its file and a runtime. On
/// failure the error is printed and the exit status returned (2: the config names no usable
/// store, 1: the runtime cannot start).
pub fn store_and_runtime(
    config: &Path,
    db: Option<&PathBuf>,
) -> Result<(PathBuf, tokio::runtime::Runtime), u8> {
    let path = store_path(config, db).map_err(|err| {
        eprintln!("error: {err}");
        2
    })?;
    let runtime = runtime().map_err(|err| {
        eprintln!("error: {err}");
        1
    })?;
    Ok((path, runtime))
}

/// Unix seconds `ago` before now.
pub fn unix_ago(ago: Duration) -> f64 {
    crate::wall_clock::unix_seconds(SystemTime::now()) - ago.as_secs_f64()
}

/// `2026-11-28T16:33:12Z` (UTC, seconds) for a Unix time.
pub fn format_ts(unix: f64) -> String {
    crate::wall_clock::format_rfc3339(unix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_units_or_bare_seconds() {
        assert_eq!(parse_duration_arg("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration_arg("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration_arg("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration_arg("0").is_err());
        assert!(parse_duration_arg("soon").is_err());
    }
}
