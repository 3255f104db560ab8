//! Discovery without restarts: `serve --discovery.dir DIR` watches a directory of files that
//! each list servers, beside the configuration file's `[[servers]]`:
//!
//! - Prometheus `file_sd` target files (`*.json` holding a list, `*.yaml`, `*.yml`): targets
//!   become server URLs, labels become the entries' keys (src/discovery/file_sd.rs);
//! - MCP client configuration files (`*.json` holding an object with `mcpServers` or
//!   `servers`), read as `mcp-exporter import` reads them (src/cli/import.rs), liveness checks.
//!
//! The directory is polled ([`Directory::scan`]); a file whose content changed is parsed into
//! `[[servers]]` entries, validated by the configuration parser with the `[exporter]` defaults,
//! and the merged set goes to the scheduler's reconcile path (src/reconcile.rs): added servers
//! start, removed ones stop, unchanged ones keep their sessions. A file that does not parse
//! keeps its last good servers; the reason is logged and counted
//! (`mcp_exporter_discovery_file_errors_total`). A removed file removes its servers.

mod file_sd;
pub mod metrics;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::probe::ServerConfig;
use crate::probe::config::ServerDefaults;
use crate::settings::Config;

use self::metrics::DiscoveryMetrics;

/// Why a discovery file (or the directory) was not read.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// The directory or a file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// What could not be read.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// Not JSON / YAML of a known shape.
    #[error("not a file_sd target list nor an MCP client configuration: {0}")]
    Format(String),
    /// An entry cannot become a server.
    #[error("{0}")]
    Entry(String),
    /// The servers it lists do not pass the configuration's validation.
    #[error("{0}")]
    Invalid(String),
}

/// The file's servers as the last successful read left them, and the content they came from.
struct Loaded {
    content: Vec<u8>,
    servers: Vec<ServerConfig>,
    /// The reason the current content was refused (its servers are the last good ones).
    refused: Option<String>,
}

/// What one [`Directory::scan`] found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ScanReport {
    /// True when the merged set of servers may differ from the previous scan's.
    pub changed: bool,
    /// Files refused in this scan (new content that did not parse), with the reason.
    pub refused: Vec<(PathBuf, String)>,
}

/// The watched directory and the servers its files listed.
pub struct Directory {
    dir: PathBuf,
    defaults: ServerDefaults,
    files: BTreeMap<PathBuf, Loaded>,
}

impl Directory {
    /// A directory not scanned yet; entries take `defaults` (the `[exporter]` values).
    pub fn new(dir: PathBuf, defaults: ServerDefaults) -> Self {
        Directory {
            dir,
            defaults,
            files: BTreeMap::new(),
        }
    }

    /// Reads the files whose content changed since the last scan. An unreadable directory is
    /// an error and keeps every file's servers.
    pub fn scan(&mut self) -> Result<ScanReport, DiscoveryError> {
        let read_dir = |source| DiscoveryError::Read {
            path: self.dir.clone(),
            source,
        };
        let mut present = BTreeSet::new();
        for entry in std::fs::read_dir(&self.dir).map_err(read_dir)? {
            let path = entry.map_err(read_dir)?.path();
            if is_discovery_file(&path) && path.is_file() {
                present.insert(path);
            }
        }
        let mut report = ScanReport::default();
        let before = self.files.len();
        self.files.retain(|path, _| present.contains(path));
        report.changed |= self.files.len() != before;
        for path in present {
            let content = match std::fs::read(&path) {
                Ok(content) => content,
                // Removed between the listing and the read: the next scan drops it.
                Err(_) => continue,
            };
            if self.files.get(&path).is_some_and(|l| l.content == content) {
                continue;
            }
            match servers_of(&path, &content, &self.defaults) {
                Ok(servers) => {
                    self.files.insert(
                        path,
                        Loaded {
                            content,
                            servers,
                            refused: None,
                        },
                    );
                    report.changed = true;
                }
                Err(err) => {
                    let reason = err.to_string();
                    report.refused.push((path.clone(), reason.clone()));
                    let last_good = self
                        .files
                        .remove(&path)
                        .map(|l| l.servers)
                        .unwrap_or_default();
                    self.files.insert(
                        path,
                        Loaded {
                            content,
                            servers: last_good,
                            refused: Some(reason),
                        },
                    );
                }
            }
        }
        Ok(report)
    }

    /// The servers of every file, in file-name order; a name already listed (by an earlier
    /// file or by one of `taken`) is skipped and reported.
    pub fn servers(&self, taken: &BTreeSet<&str>) -> (Vec<ServerConfig>, Vec<String>) {
        let mut names: BTreeSet<String> = taken.iter().map(|s| s.to_string()).collect();
        let mut out = Vec::new();
        let mut clashes = Vec::new();
        for (path, loaded) in &self.files {
            for server in &loaded.servers {
                if names.insert(server.name.clone()) {
                    out.push(server.clone());
                } else {
                    clashes.push(format!(
                        "{}: server {:?} is already defined; this entry is ignored",
                        path.display(),
                        server.name
                    ));
                }
            }
        }
        (out, clashes)
    }

    /// Files whose current content was refused, with the reason.
    pub fn refused(&self) -> impl Iterator<Item = (&Path, &str)> {
        self.files
            .iter()
            .filter_map(|(p, l)| l.refused.as_deref().map(|r| (p.as_path(), r)))
    }
}

fn is_discovery_file(path: &Path) -> bool {
    let hidden = path
        .file_name()
        .and_then(|n| n.to_str())
        .is_none_or(|n| n.starts_with('.'));
    !hidden
        && matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("json" | "yaml" | "yml")
        )
}

/// The servers a file lists, validated with `defaults`.
fn servers_of(
    path: &Path,
    content: &[u8],
    defaults: &ServerDefaults,
) -> Result<Vec<ServerConfig>, DiscoveryError> {
    let text = std::str::from_utf8(content)
        .map_err(|_| DiscoveryError::Format("the file is not UTF-8".into()))?;
    let is_json = path.extension().and_then(|e| e.to_str()) == Some("json");
    let servers_toml = if is_json {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| DiscoveryError::Format(e.to_string()))?;
        if value.is_array() {
            file_sd_toml(
                serde_json::from_value(value).map_err(|e| DiscoveryError::Format(e.to_string()))?,
            )?
        } else {
            crate::cli::import::convert(text, path, "liveness")
                .map_err(|e| DiscoveryError::Entry(e.to_string()))?
                .toml
        }
    } else {
        file_sd_toml(
            serde_yaml_ng::from_str(text).map_err(|e| DiscoveryError::Format(e.to_string()))?,
        )?
    };
    let document = format!(
        "[exporter]\ninterval = \"{}ms\"\ntimeout = \"{}ms\"\ndegraded_latency = \"{}ms\"\n\n{servers_toml}",
        defaults.interval.as_millis(),
        defaults.timeout.as_millis(),
        defaults.degraded_latency.as_millis(),
    );
    Config::from_toml(&document, path)
        .map(|c| c.servers)
        .map_err(|e| DiscoveryError::Invalid(e.to_string()))
}

#[derive(serde::Serialize)]
struct Document<E> {
    servers: Vec<E>,
}

fn file_sd_toml(groups: Vec<file_sd::TargetGroup>) -> Result<String, DiscoveryError> {
    let servers = file_sd::entries(groups)?;
    toml::to_string(&Document { servers }).map_err(|e| DiscoveryError::Entry(e.to_string()))
}

/// How often the directory is polled: often enough that a change is probed within one interval
/// of the fastest default, at most every second.
pub fn poll_interval(defaults: &ServerDefaults) -> Duration {
    (defaults.interval / 3).clamp(Duration::from_secs(1), Duration::from_secs(5))
}

/// Polls `directory` every `every` until `stop`, publishing the merged servers on the
/// returned channel whenever they change (the first scan's set is there at once).
pub fn spawn(
    mut directory: Directory,
    every: Duration,
    metrics: DiscoveryMetrics,
    mut stop: watch::Receiver<bool>,
) -> (watch::Receiver<Arc<Vec<ServerConfig>>>, JoinHandle<()>) {
    let first = scan_once(&mut directory, &metrics).unwrap_or_default();
    let (tx, rx) = watch::channel(Arc::new(first));
    let task = tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                _ = tokio::time::sleep(every) => {}
            }
            if let Some(servers) = scan_once(&mut directory, &metrics) {
                let _ = tx.send(Arc::new(servers));
            }
        }
    });
    (rx, task)
}

/// One scan, logged and counted; `Some` with the merged servers when they may have changed.
fn scan_once(directory: &mut Directory, metrics: &DiscoveryMetrics) -> Option<Vec<ServerConfig>> {
    let report = match directory.scan() {
        Ok(report) => report,
        Err(err) => {
            tracing::error!(error = %err, "discovery: directory not read; keeping the servers found before");
            metrics.refused(&directory.dir.display().to_string());
            return None;
        }
    };
    for (path, reason) in &report.refused {
        tracing::error!(file = %path.display(), reason, "discovery: file refused; keeping its last good servers");
        metrics.refused(&path.display().to_string());
    }
    if !report.changed {
        return None;
    }
    let (servers, clashes) = directory.servers(&BTreeSet::new());
    for clash in clashes {
        tracing::warn!("discovery: {clash}");
    }
    metrics.set_servers(servers.len());
    tracing::info!(servers = servers.len(), dir = %directory.dir.display(), "discovery: servers found");
    Some(servers)
}

#[cfg(test)]
pub(crate) mod tests;
