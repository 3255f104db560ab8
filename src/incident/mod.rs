//! Incident evidence (`mcp-exporter incident`): one tar.gz with what the history store holds for
//! a period (log lines, security events, probes, transitions, dependency checks, backups), each
//! configured server's processes as the daemon finds them (command line, environment variable
//! names, open files and connections), the daemon's current `/metrics`, the effective
//! configuration and a Markdown summary with the timeline, plus a `SHA256SUMS` manifest. Every
//! file passes through the redactor of src/security/redact.rs before it is hashed.

pub mod archive;
pub mod history;
pub mod processes;
pub mod timeline;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use self::archive::BundleFile;
use self::history::{History, Scope};
use self::processes::ProcessEvidence;
use crate::probe::ServerConfig;
use crate::process::backend::Backend;
use crate::process::config::Locator;
use crate::security::redact;
use crate::settings::Config;
use crate::store::Store;
use crate::wall_clock::unix_seconds;

/// Deadline of finding one server's processes (the `systemctl` call of a systemd unit).
const DISCOVERY_DEADLINE: Duration = Duration::from_secs(5);

/// What the incident covers and where it reads from.
#[derive(Debug, Clone)]
pub struct Request {
    /// The period: from `now - since` to now.
    pub since: Duration,
    /// Only this server (its dependencies included), when set.
    pub server: Option<String>,
    /// The configuration file, as given.
    pub config_path: PathBuf,
    /// The configuration, loaded.
    pub config: Config,
    /// The history database.
    pub store_path: PathBuf,
}

/// What the running daemon answered (or why it did not).
#[derive(Debug, Clone)]
pub struct DaemonView {
    /// The `/metrics` URL asked.
    pub metrics_url: String,
    /// The exposition, or why it could not be read.
    pub metrics: Result<String, String>,
    /// `/api/servers` (the pids the daemon found per server), or why it could not be read.
    pub servers: Result<serde_json::Value, String>,
}

/// One server's processes in the bundle.
#[derive(Debug, Clone, Serialize)]
pub struct ServerProcesses {
    /// Server name.
    pub server: String,
    /// How they were found (`stdio child, pids from the daemon`, `pid_file ...`).
    pub found_by: String,
    /// Why none were read, when none were.
    pub note: Option<String>,
    /// Each process.
    pub processes: Vec<ProcessEvidence>,
}

/// Collects the evidence; every file's text is redacted. Never fails: what cannot be read is
/// said in the summary and in the file that would have held it.
pub async fn collect(request: &Request, daemon: &DaemonView, now: SystemTime) -> Vec<BundleFile> {
    let since = unix_seconds(now) - request.since.as_secs_f64();
    let servers: Vec<&ServerConfig> = request
        .config
        .servers
        .iter()
        .filter(|s| request.server.as_ref().is_none_or(|name| &s.name == name))
        .collect();
    let scope = Scope {
        since,
        server: request.server.clone(),
        dependencies: servers
            .iter()
            .flat_map(|s| s.depends_on.iter().cloned())
            .collect(),
    };
    let history = read_history(&request.store_path, &scope).await;
    let mut processes = Vec::new();
    for server in &servers {
        processes.push(server_processes(server, &daemon.servers).await);
    }

    let mut files = Vec::new();
    let mut add = |path: String, text: String| {
        files.push(BundleFile {
            path,
            text: redact::redact_owned(text),
        })
    };
    let summary = summary(request, daemon, &history, &processes, since, now);
    add("summary.md".into(), summary);
    if let Ok(h) = &history {
        add("history/logs.jsonl".into(), json_lines(&h.logs));
        add(
            "history/security-events.jsonl".into(),
            json_lines(&h.security_events().collect::<Vec<_>>()),
        );
        add("history/probes.jsonl".into(), json_lines(&h.probes));
        add(
            "history/transitions.jsonl".into(),
            json_lines(&h.transitions),
        );
        add(
            "history/dependency-checks.jsonl".into(),
            json_lines(&h.dependencies),
        );
        add("history/backup-runs.jsonl".into(), json_lines(&h.backups));
    }
    for p in &processes {
        let name = file_name(&p.server);
        add(
            format!("processes/{name}.json"),
            serde_json::to_string_pretty(p).unwrap_or_default() + "\n",
        );
        let mut text = processes::render(&p.server, &p.processes);
        if let Some(note) = &p.note {
            let _ = writeln!(text, "\n{note}");
        }
        add(format!("processes/{name}.txt"), text);
    }
    match &daemon.metrics {
        Ok(text) => add("metrics/metrics.txt".into(), text.clone()),
        Err(why) => add(
            "metrics/UNAVAILABLE.txt".into(),
            format!(
                "The daemon's /metrics could not be read from {}: {why}\n",
                daemon.metrics_url
            ),
        ),
    }
    if let Ok(servers) = &daemon.servers {
        add(
            "daemon/api-servers.json".into(),
            serde_json::to_string_pretty(servers).unwrap_or_default() + "\n",
        );
    }
    let config_name = request
        .config_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "config.toml".into());
    match std::fs::read_to_string(&request.config_path) {
        Ok(text) => add(format!("config/{}", file_name(&config_name)), text),
        Err(err) => add(
            "config/UNAVAILABLE.txt".into(),
            format!("{}: {err}\n", request.config_path.display()),
        ),
    }
    add(
        "config/effective.txt".into(),
        format!(
            "# The configuration as the daemon applies it (defaults filled in), from {}\n{:#?}\n",
            request.config_path.display(),
            request.config
        ),
    );
    files
}

async fn read_history(path: &Path, scope: &Scope) -> Result<History, String> {
    let store = Store::open_existing(path)
        .await
        .map_err(|e| e.to_string())?;
    let history = history::read(&store, scope)
        .await
        .map_err(|e| e.to_string());
    store.close().await;
    history
}

/// Finds the server's processes the way the daemon does (src/process/discover.rs); a stdio
/// child is known only to the daemon that spawned it, so its pids come from `/api/servers`.
async fn server_processes(
    server: &ServerConfig,
    daemon_servers: &Result<serde_json::Value, String>,
) -> ServerProcesses {
    let mut out = ServerProcesses {
        server: server.name.clone(),
        found_by: String::new(),
        note: None,
        processes: Vec::new(),
    };
    let Some(locator) = &server.process.locator else {
        out.found_by = "none".into();
        out.note = Some(
            "not sampled: the server has no process locator (set pid_file, systemd_unit or process_match)".into(),
        );
        return out;
    };
    let pids = match locator {
        Locator::Child => {
            out.found_by = "stdio child of the daemon (pids from its /api/servers)".into();
            match daemon_servers {
                Ok(list) => Ok(pids_from_api(list, &server.name)),
                Err(why) => Err(format!(
                    "the daemon could not be asked for its child's pids: {why}"
                )),
            }
        }
        other => {
            out.found_by = match other {
                Locator::PidFile(p) => format!("pid_file {}", p.display()),
                Locator::SystemdUnit(u) => format!("systemd_unit {u}"),
                Locator::Match(re) => format!("process_match {}", re.as_str()),
                Locator::Child => String::new(),
            };
            crate::process::discover::discover(Backend::selected(), other, None, DISCOVERY_DEADLINE)
                .await
                .map(|tree| tree.pids)
        }
    };
    match pids {
        Ok(pids) if pids.is_empty() => {
            out.note = Some("no process found (the server is down or not running here)".into());
        }
        Ok(pids) => {
            out.processes = tokio::task::spawn_blocking(move || processes::read_all(&pids))
                .await
                .unwrap_or_default();
        }
        Err(why) => out.note = Some(why),
    }
    out
}

fn pids_from_api(list: &serde_json::Value, server: &str) -> Vec<u32> {
    list.as_array()
        .into_iter()
        .flatten()
        .find(|s| s["name"] == server)
        .and_then(|s| s["process"]["pids"].as_array())
        .into_iter()
        .flatten()
        .filter_map(|p| p.as_u64().and_then(|p| u32::try_from(p).ok()))
        .collect()
}

fn summary(
    request: &Request,
    daemon: &DaemonView,
    history: &Result<History, String>,
    processes: &[ServerProcesses],
    since: f64,
    now: SystemTime,
) -> String {
    let ts = |unix: f64| {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs_f64(unix.max(0.0));
        humantime::format_rfc3339_seconds(t).to_string()
    };
    let mut out = String::new();
    let subject = request
        .server
        .as_ref()
        .map_or_else(|| "all servers".to_string(), |s| format!("server {s}"));
    let _ = writeln!(
        out,
        "# Incident evidence: {subject}\n\nPeriod {} to {} ({}). Collected by mcp-exporter {} from {}.\n",
        ts(since),
        ts(unix_seconds(now)),
        humantime::format_duration(request.since),
        env!("CARGO_PKG_VERSION"),
        request.config_path.display(),
    );
    out.push_str("## Sources\n\n");
    match history {
        Ok(h) => {
            let _ = writeln!(
                out,
                "- History store {}: {} log lines ({} security events), {} probes, {} transitions, {} dependency checks, {} backup runs (history/).",
                request.store_path.display(),
                h.logs.len(),
                h.security_events().count(),
                h.probes.len(),
                h.transitions.len(),
                h.dependencies.len(),
                h.backups.len()
            );
            if !h.truncated.is_empty() {
                let _ = writeln!(
                    out,
                    "  Cut at {} rows (the oldest kept): {}.",
                    history::MAX_ROWS,
                    h.truncated.join(", ")
                );
            }
        }
        Err(why) => {
            let _ = writeln!(out, "- History store: NOT READ: {why}");
        }
    }
    match &daemon.metrics {
        Ok(text) => {
            let _ = writeln!(
                out,
                "- /metrics: read from the running daemon at {} ({} lines, metrics/metrics.txt).",
                daemon.metrics_url,
                text.lines().count()
            );
        }
        Err(why) => {
            let _ = writeln!(
                out,
                "- /metrics: NOT READ: the daemon at {} is not reachable ({why}); the bundle has no current metrics and no pids of stdio children (pass --url).",
                daemon.metrics_url
            );
        }
    }
    let _ = writeln!(
        out,
        "- Processes: {} server(s) (processes/); environment variables by name only.",
        processes.len()
    );
    let _ = writeln!(
        out,
        "- Configuration: the file and the effective settings (config/).\n- Every file is redacted: registered secret values read `{}`. `sha256sum -c SHA256SUMS` checks the files.",
        redact::MASK
    );
    let unresolved: Vec<&str> = request
        .config
        .servers
        .iter()
        .filter(|s| s.resolve_transport().is_err())
        .map(|s| s.name.as_str())
        .collect();
    if !unresolved.is_empty() {
        let _ = writeln!(
            out,
            "- WARNING: the secrets of {} reference environment variables that are not set here, so they could not be masked; collect with the daemon's environment.",
            unresolved.join(", ")
        );
    }

    out.push_str("\n## Timeline\n\n");
    match history {
        Ok(h) => {
            let (entries, left_out) = timeline::build(h);
            if entries.is_empty() {
                out.push_str("Nothing was recorded in the period.\n");
            } else {
                out.push_str(&timeline::markdown(&entries, ts));
            }
            if left_out > 0 {
                let _ = writeln!(
                    out,
                    "\n{left_out} later entries left out; see history/ for every row."
                );
            }
        }
        Err(_) => out.push_str("No timeline: the history store could not be read.\n"),
    }

    out.push_str("\n## Processes\n\n");
    for p in processes {
        let _ = writeln!(out, "### {}\n\nFound by: {}.", p.server, p.found_by);
        if let Some(note) = &p.note {
            let _ = writeln!(out, "{note}.");
        }
        for e in &p.processes {
            let tcp: Vec<String> = e
                .connections
                .iter()
                .filter(|c| c.protocol.starts_with("tcp"))
                .map(|c| format!("{} {} -> {}", c.state, c.local, c.remote))
                .collect();
            let _ = writeln!(
                out,
                "- pid {}: `{}`: {} open files, {} connections{}",
                e.pid,
                e.cmdline.join(" ").replace('`', "'"),
                e.open_files.len(),
                e.connections.len(),
                if tcp.is_empty() {
                    String::new()
                } else {
                    format!(" (TCP: {})", tcp.join(", "))
                }
            );
        }
        out.push('\n');
    }
    out
}

fn json_lines<T: Serialize>(rows: &[T]) -> String {
    rows.iter()
        .filter_map(|r| serde_json::to_string(r).ok())
        .map(|line| line + "\n")
        .collect()
}

/// A name safe as one path component.
fn file_name(name: &str) -> String {
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if safe.is_empty() || safe.chars().all(|c| c == '.') {
        "_".into()
    } else {
        safe
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pids_of_a_server_come_from_the_api_listing() {
        let list = serde_json::json!([
            {"name": "a", "process": {"pids": [10, 11]}},
            {"name": "b", "process": {"pids": []}},
        ]);
        assert_eq!(pids_from_api(&list, "a"), vec![10, 11]);
        assert!(pids_from_api(&list, "b").is_empty());
        assert!(pids_from_api(&list, "c").is_empty());
    }

    #[test]
    fn file_names_stay_one_component() {
        assert_eq!(file_name("srv-1.ok"), "srv-1.ok");
        assert_eq!(file_name("../etc/passwd"), ".._etc_passwd");
        assert_eq!(file_name(".."), "_");
        assert_eq!(file_name(""), "_");
    }
}
