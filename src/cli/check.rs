//! `mcp-exporter check`: probes the configured servers directly (no daemon) and prints one row
//! per server; the exit status follows the monitoring-plugin convention.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::assessment::ServerMemory;
use crate::deps::{DependencyBoard, DependencyConfig, DependencyState};
use crate::health::HealthStatus;
use crate::mcp::{Limits, WireCounters};
use crate::probe::{CheckType, ProbeOutcome, ServerConfig, ServerProbe, deadline};
use crate::settings::Config;

/// Exit status: all healthy.
pub const EXIT_OK: u8 = 0;
/// Exit status: the worst server is degraded.
pub const EXIT_WARNING: u8 = 1;
/// Exit status: a server is unhealthy.
pub const EXIT_CRITICAL: u8 = 2;
/// Exit status: unknown (no observation, or the check itself could not run).
pub const EXIT_UNKNOWN: u8 = 3;

/// `--check-type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CheckTypeArg {
    /// Handshake (when needed) and ping.
    Liveness,
    /// Handshake, ping, tools/list, expected tools, optional tool call.
    Readiness,
}

/// `--output` of `check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CheckOutput {
    /// Aligned columns.
    Table,
    /// One JSON document (one per round, one per line, with `--continuous`).
    Json,
}

/// Arguments of `check`.
#[derive(Debug, Clone, clap::Args)]
pub struct CheckArgs {
    /// Configuration file (same as `serve`).
    #[arg(long, short, env = "MCP_EXPORTER_CONFIG", default_value = super::DEFAULT_CONFIG)]
    pub config: PathBuf,
    /// Check only this server (repeatable).
    #[arg(long)]
    pub server: Vec<String>,
    /// Override each server's configured check type.
    #[arg(long, value_enum)]
    pub check_type: Option<CheckTypeArg>,
    /// Keep checking every --interval until interrupted.
    #[arg(long)]
    pub continuous: bool,
    /// Pause between rounds with --continuous (e.g. 30s).
    #[arg(long, default_value = "30s", value_parser = super::parse_duration_arg)]
    pub interval: Duration,
    /// Output format.
    #[arg(long, value_enum, default_value_t = CheckOutput::Table)]
    pub output: CheckOutput,
    /// With `--output json`, add each server's tool catalog as a client receives it with its
    /// bytes and o200k_base tokens (`tools_list`; loads the tokenizer, about 50 MB).
    #[arg(long)]
    pub tools_list: bool,
}

/// One server's result: the row of the table and the element of the JSON `servers` array.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckRow {
    /// Server name.
    pub server: String,
    /// HEALTHY, DEGRADED, UNHEALTHY, UNKNOWN.
    pub status: HealthStatus,
    /// 2, 1, 0, -1.
    pub code: i64,
    /// Ping (or handshake) latency, ms.
    pub latency_ms: Option<f64>,
    /// liveness or readiness.
    pub check: String,
    /// Dependencies whose checks failed.
    pub failing_dependencies: Vec<String>,
    /// Why it is not healthy; empty when healthy.
    pub reason: String,
    /// Where the probe's HTTP time went (HTTP transports; JSON output only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_phases: Option<crate::mcp::HttpPhases>,
    /// The listed tool catalog as a client receives it, with its cost (readiness, JSON output
    /// with `--tools-list`; docs/tool-integrity.md#catalog-bytes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tools_list: Option<ToolsListCost>,
}

/// The catalog bytes of a server and what they cost: `mcp_tools_list_bytes` and
/// `mcp_tools_list_tokens` of exactly `text`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolsListCost {
    /// Bytes of `text`.
    pub bytes: usize,
    /// o200k_base tokens of `text`.
    pub tokens: usize,
    /// SHA-256 of `text`, the fingerprint of the whole catalog.
    pub sha256: String,
    /// The catalog text: the canonical JSON array of every tool object, ordered by name.
    pub text: String,
}

/// A whole round.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckReport {
    /// RFC 3339 time the round started.
    pub checked_at: String,
    /// Worst status.
    pub status: HealthStatus,
    /// The exit status this round maps to.
    pub exit_code: u8,
    /// Rows, in config order.
    pub servers: Vec<CheckRow>,
}

/// Runs `check`; returns the exit status.
pub fn run(args: CheckArgs) -> u8 {
    let config = match Config::load(&args.config) {
        Ok(c) => c,
        Err(err) => {
            eprintln!("UNKNOWN: {err}");
            return EXIT_UNKNOWN;
        }
    };
    let unknown: Vec<&String> = args
        .server
        .iter()
        .filter(|name| !config.servers.iter().any(|s| &&s.name == name))
        .collect();
    if !unknown.is_empty() {
        let known: Vec<&str> = config.servers.iter().map(|s| s.name.as_str()).collect();
        eprintln!(
            "UNKNOWN: no server named {} in {} (servers: {})",
            unknown
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            args.config.display(),
            known.join(", ")
        );
        return EXIT_UNKNOWN;
    }
    let runtime = match super::runtime() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("UNKNOWN: {err}");
            return EXIT_UNKNOWN;
        }
    };
    runtime.block_on(run_async(args, config))
}

async fn run_async(args: CheckArgs, config: Config) -> u8 {
    let selected: Vec<ServerConfig> = config
        .servers
        .iter()
        .filter(|s| args.server.is_empty() || args.server.contains(&s.name))
        .cloned()
        .collect();
    if selected.is_empty() {
        eprintln!("UNKNOWN: {} configures no server", args.config.display());
        return EXIT_UNKNOWN;
    }
    let mut probes: Vec<ServerProbe> = selected
        .into_iter()
        .map(|s| {
            ServerProbe::new(
                Arc::new(s),
                Limits::default(),
                Arc::new(WireCounters::default()),
            )
        })
        .collect();
    let terminal = std::io::stdout().is_terminal();
    let mut exit;
    loop {
        let report = round(&config, &mut probes, args.check_type, args.tools_list).await;
        exit = report.exit_code;
        let text = match (args.output, args.continuous) {
            (CheckOutput::Json, _) => serde_json::to_string(&report).unwrap_or_default() + "\n",
            (CheckOutput::Table, false) => table(&report),
            (CheckOutput::Table, true) if terminal => format!(
                "\x1b[H\x1b[2J{} every {}s; Ctrl-C stops\n\n{}",
                report.checked_at,
                args.interval.as_secs_f64(),
                table(&report)
            ),
            (CheckOutput::Table, true) => lines(&report),
        };
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
        drop(out);
        if !args.continuous {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(args.interval) => {}
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    futures_util::future::join_all(probes.iter_mut().map(|p| p.shutdown())).await;
    exit
}

async fn round(
    config: &Config,
    probes: &mut [ServerProbe],
    check: Option<CheckTypeArg>,
    tools_list: bool,
) -> CheckReport {
    let started = SystemTime::now();
    // Each dependency the checked servers use is checked once, alongside the probes.
    let needed: Vec<DependencyConfig> = config
        .dependencies
        .iter()
        .filter(|d| {
            probes
                .iter()
                .any(|p| p.config().depends_on.contains(&d.name))
        })
        .cloned()
        .collect();
    let (outcomes, dependency_checks) = tokio::join!(
        futures_util::future::join_all(probes.iter_mut().map(|p| probe_one(p, check))),
        crate::deps::check_all(&needed)
    );
    // The same board the daemon's dependency runner fills, so a server's dependencies are
    // viewed and weighed exactly as the daemon does.
    let board = DependencyBoard::default();
    {
        let mut states = board.write().unwrap_or_else(|p| p.into_inner());
        for (dependency, check) in needed.iter().zip(dependency_checks) {
            states.insert(
                dependency.name.clone(),
                DependencyState {
                    name: dependency.name.clone(),
                    kind: dependency.spec.kind(),
                    critical: dependency.critical,
                    interval: dependency.period(),
                    last: Some(check),
                    backoff_until_unix: None,
                },
            );
        }
    }
    let servers: Vec<CheckRow> = probes
        .iter()
        .zip(outcomes)
        .map(|(p, (check_type, outcome))| {
            let server = Arc::clone(p.config());
            let view = crate::deps::server_view(&board, &server.depends_on);
            let failing = view
                .iter()
                .filter(|d| d.status != HealthStatus::Healthy)
                .map(|d| d.name.clone())
                .collect();
            let latency_ms = outcome
                .latency
                .map(|d| (d.as_secs_f64() * 1e6).round() / 1e3);
            let http_phases = outcome.http_phases;
            let assessment = ServerMemory::default().after_probe(
                server,
                outcome,
                view,
                None,
                Default::default(),
            );
            CheckRow {
                server: assessment.name().to_string(),
                status: assessment.health.status,
                code: assessment.health.status.code(),
                latency_ms,
                check: check_type.as_str().into(),
                failing_dependencies: failing,
                reason: assessment.health.reasons.join("; "),
                http_phases,
                tools_list: assessment
                    .catalog
                    .known
                    .as_ref()
                    .filter(|_| tools_list)
                    .map(|k| ToolsListCost {
                        bytes: k.cost().bytes,
                        tokens: k.cost().tokens,
                        sha256: k.definitions.sha256.clone(),
                        text: k.definitions.text.clone(),
                    }),
            }
        })
        .collect();
    let worst = worst(servers.iter().map(|r| r.status));
    CheckReport {
        checked_at: super::format_ts(crate::wall_clock::unix_seconds(started)),
        status: worst,
        exit_code: exit_code(worst),
        servers,
    }
}

async fn probe_one(
    probe: &mut ServerProbe,
    check: Option<CheckTypeArg>,
) -> (CheckType, ProbeOutcome) {
    let check_type = match check {
        Some(CheckTypeArg::Liveness) => CheckType::Liveness,
        Some(CheckTypeArg::Readiness) => CheckType::Readiness,
        None => probe.config().check,
    };
    let config = Arc::clone(probe.config());
    let outcome = deadline::within_deadline(&config, probe.probe_with(check_type)).await;
    (check_type, outcome)
}

/// The worst status: UNHEALTHY over UNKNOWN over DEGRADED over HEALTHY (a known failure is
/// more urgent than a server that could not be assessed).
pub fn worst(statuses: impl Iterator<Item = HealthStatus>) -> HealthStatus {
    let rank = |s: HealthStatus| match s {
        HealthStatus::Healthy => 0,
        HealthStatus::Degraded => 1,
        HealthStatus::Unknown => 2,
        HealthStatus::Unhealthy => 3,
    };
    statuses
        .max_by_key(|s| rank(*s))
        .unwrap_or(HealthStatus::Unknown)
}

/// Monitoring-plugin exit status of a status.
pub fn exit_code(status: HealthStatus) -> u8 {
    match status {
        HealthStatus::Healthy => EXIT_OK,
        HealthStatus::Degraded => EXIT_WARNING,
        HealthStatus::Unhealthy => EXIT_CRITICAL,
        HealthStatus::Unknown => EXIT_UNKNOWN,
    }
}

fn latency_text(ms: Option<f64>) -> String {
    ms.map(|m| format!("{m:.1}ms"))
        .unwrap_or_else(|| "-".into())
}

/// The report as aligned columns.
pub fn table(report: &CheckReport) -> String {
    let header = [
        "SERVER",
        "STATUS",
        "CODE",
        "LATENCY",
        "CHECK",
        "DEPENDENCIES",
        "REASON",
    ];
    let rows: Vec<[String; 7]> = report
        .servers
        .iter()
        .map(|r| {
            [
                r.server.clone(),
                r.status.word().to_string(),
                r.code.to_string(),
                latency_text(r.latency_ms),
                r.check.clone(),
                if r.failing_dependencies.is_empty() {
                    "-".into()
                } else {
                    r.failing_dependencies.join(",")
                },
                if r.reason.is_empty() {
                    "-".into()
                } else {
                    r.reason.clone()
                },
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut push = |cells: Vec<&str>| {
        let last = cells.len() - 1;
        for (i, cell) in cells.iter().enumerate() {
            if i == last {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            }
        }
        out.push('\n');
    };
    push(header.to_vec());
    for row in &rows {
        push(row.iter().map(String::as_str).collect());
    }
    out
}

/// The report as one plain line per server (for pipes and logs).
pub fn lines(report: &CheckReport) -> String {
    report
        .servers
        .iter()
        .map(|r| {
            format!(
                "{} {} {} {} latency={} check={}{}{}\n",
                report.checked_at,
                r.server,
                r.status,
                r.code,
                latency_text(r.latency_ms),
                r.check,
                if r.failing_dependencies.is_empty() {
                    String::new()
                } else {
                    format!(" dependencies={}", r.failing_dependencies.join(","))
                },
                if r.reason.is_empty() {
                    String::new()
                } else {
                    format!(" reason={:?}", r.reason)
                },
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_status_follows_the_worst_server() {
        use HealthStatus::*;
        let cases = [
            (vec![Healthy, Healthy], EXIT_OK),
            (vec![Healthy, Degraded], EXIT_WARNING),
            (vec![Degraded, Unhealthy, Healthy], EXIT_CRITICAL),
            (vec![Unknown, Degraded], EXIT_UNKNOWN),
            (vec![Unknown, Unhealthy], EXIT_CRITICAL),
        ];
        for (statuses, want) in cases {
            assert_eq!(
                exit_code(worst(statuses.clone().into_iter())),
                want,
                "{statuses:?}"
            );
        }
    }

    #[test]
    fn table_has_a_header_and_one_row_per_server() {
        let report = CheckReport {
            checked_at: "t".into(),
            status: HealthStatus::Unhealthy,
            exit_code: 2,
            servers: vec![CheckRow {
                server: "fs".into(),
                status: HealthStatus::Unhealthy,
                code: 0,
                latency_ms: None,
                check: "readiness".into(),
                failing_dependencies: vec![],
                reason: "down at connect: spawn failed".into(),
                http_phases: None,
                tools_list: None,
            }],
        };
        let t = table(&report);
        let rows: Vec<&str> = t.lines().collect();
        assert_eq!(rows.len(), 2);
        assert!(rows[0].starts_with("SERVER"));
        assert!(
            rows[1].contains("UNHEALTHY") && rows[1].ends_with("down at connect: spawn failed")
        );
    }
}
