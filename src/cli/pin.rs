//! `mcp-exporter pin`: lists the configured servers' tools now and writes their fingerprints to
//! a lock file (docs/tool-integrity.md#lock-file) that `tools_lock` then approves.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::mcp::{Limits, WireCounters};
use crate::probe::catalog::{CatalogDefinitions, ContextCost};
use crate::probe::tools_lock::LockFile;
use crate::probe::{CheckType, ServerConfig, ServerProbe, deadline};
use crate::settings::Config;

/// Exit status: the lock was written.
const EXIT_OK: u8 = 0;
/// Exit status: a server could not be listed; nothing was written.
const EXIT_FAILED: u8 = 1;
/// Exit status: invalid configuration or arguments.
const EXIT_CONFIG: u8 = 2;

/// Arguments of `pin`.
#[derive(Debug, Clone, clap::Args)]
pub struct PinArgs {
    /// Configuration file (same as `serve`).
    #[arg(long, short, env = "MCP_EXPORTER_CONFIG", default_value = super::DEFAULT_CONFIG)]
    pub config: PathBuf,
    /// Pin only this server (repeatable); all servers when absent.
    #[arg(long)]
    pub server: Vec<String>,
    /// The lock file to write; other servers' entries already in it are kept.
    #[arg(long)]
    pub out: PathBuf,
}

/// Runs `pin`; returns the exit status.
pub fn run(args: PinArgs) -> u8 {
    let (config, selected) = match selected_servers(&args.config, &args.server) {
        Ok(found) => found,
        Err(err) => {
            eprintln!("error: {err}");
            return EXIT_CONFIG;
        }
    };
    let runtime = match super::runtime() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: {err}");
            return EXIT_FAILED;
        }
    };
    drop(config);
    let listed = runtime.block_on(list_all(&selected));
    let mut catalogs: Vec<(String, Arc<CatalogDefinitions>)> = Vec::new();
    let mut failed = false;
    for (server, result) in selected.iter().zip(listed) {
        match result {
            Ok(catalog) => catalogs.push((server.name.clone(), catalog)),
            Err(err) => {
                eprintln!("error: server {}: {err}", server.name);
                failed = true;
            }
        }
    }
    if failed {
        eprintln!("nothing written to {}", args.out.display());
        return EXIT_FAILED;
    }
    match write_lock(&args.out, &catalogs) {
        Ok(()) => {
            for (server, catalog) in &catalogs {
                let cost = ContextCost::of(catalog);
                println!(
                    "pinned {} tool(s) of server {server} ({} bytes, {} o200k_base tokens) to {}",
                    catalog.tools.len(),
                    cost.bytes,
                    cost.tokens,
                    args.out.display()
                );
            }
            EXIT_OK
        }
        Err(err) => {
            eprintln!("error: {err}");
            EXIT_FAILED
        }
    }
}

/// Loads `config` and picks the `names` servers (all when empty); a name not configured, or a
/// server that does not list tools (`check = "liveness"` is fine: `pin` lists anyway), is an
/// error in words.
pub(super) fn selected_servers(
    config: &Path,
    names: &[String],
) -> Result<(Config, Vec<ServerConfig>), String> {
    let config_file = Config::load(config).map_err(|e| e.to_string())?;
    let known: Vec<&str> = config_file
        .servers
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    if let Some(unknown) = names.iter().find(|n| !known.contains(&n.as_str())) {
        return Err(format!(
            "no server named {unknown} in {} (servers: {})",
            config.display(),
            known.join(", ")
        ));
    }
    let selected: Vec<ServerConfig> = config_file
        .servers
        .iter()
        .filter(|s| names.is_empty() || names.contains(&s.name))
        .cloned()
        .collect();
    if selected.is_empty() {
        return Err(format!("{} configures no server", config.display()));
    }
    Ok((config_file, selected))
}

/// Lists the tools of each server once (a readiness probe), concurrently.
pub(super) async fn list_all(
    servers: &[ServerConfig],
) -> Vec<Result<Arc<CatalogDefinitions>, String>> {
    futures_util::future::join_all(servers.iter().map(list_one)).await
}

async fn list_one(server: &ServerConfig) -> Result<Arc<CatalogDefinitions>, String> {
    let config = Arc::new(server.clone());
    let mut probe = ServerProbe::new(
        Arc::clone(&config),
        Limits::default(),
        Arc::new(WireCounters::default()),
    );
    let outcome = deadline::within_deadline(&config, probe.probe_with(CheckType::Readiness)).await;
    probe.shutdown().await;
    match (outcome.catalog, outcome.failure) {
        // A listed catalog is pinned even when a later stage (expected tools, the tool call)
        // failed: the lock approves definitions, not behaviour.
        (Some(catalog), _) => Ok(catalog.definitions),
        (None, Some(failure)) => Err(format!("tools could not be listed: {failure}")),
        (None, None) => Err("the probe listed no tools".to_string()),
    }
}

/// Writes the lock of `catalogs` to `out`, keeping the entries of other servers already there
/// (replaced atomically: a temporary file beside it, then a rename).
fn write_lock(out: &Path, catalogs: &[(String, Arc<CatalogDefinitions>)]) -> Result<(), String> {
    let mut lock = LockFile::of(catalogs.iter().map(|(s, c)| (s.as_str(), c.as_ref())));
    if out.is_file() {
        let old = LockFile::read(out)
            .map_err(|e| format!("{e}; remove it or choose another --out to write a new lock"))?;
        for (server, entry) in old.servers {
            lock.servers.entry(server).or_insert(entry);
        }
    }
    let mut tmp = out.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, lock.to_text())
        .and_then(|()| std::fs::rename(&tmp, out))
        .map_err(|e| format!("cannot write {}: {e}", out.display()))
}
