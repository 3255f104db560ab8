//! Reads of the history store used by the CLI: log search and health history.

use serde::Serialize;
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite};

use super::availability::{TimeWeighted, time_weighted_with_planned};
use super::maintenance::{self as windows, MaintenanceRow};
use super::{Level, Store};

/// Filters of a log search.
#[derive(Debug, Clone, Default)]
pub struct LogQuery {
    /// Full-text search (every word must occur; punctuation is ignored).
    pub search: Option<String>,
    /// This level and above.
    pub min_level: Option<Level>,
    /// Only this server.
    pub server: Option<String>,
    /// Only lines at or after this Unix time.
    pub since: Option<f64>,
    /// Only lines with an id above this (for `--follow`).
    pub after_id: Option<i64>,
    /// Only lines of the probe with this trace id (32 lowercase hex digits).
    pub trace_id: Option<String>,
    /// Most lines returned (the newest ones).
    pub limit: i64,
}

/// One stored log line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogEntry {
    /// Row id (increasing).
    pub id: i64,
    /// Unix seconds.
    pub ts: f64,
    /// Server name.
    pub server: String,
    /// stderr, notification or http.
    pub source: String,
    /// Level name.
    pub level: String,
    /// MCP logger, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logger: Option<String>,
    /// The text.
    pub message: String,
    /// The trace id of the probe the line belongs to ([`trace_of_line`]), `null` when that
    /// probe was not traced or the line belongs to none.
    pub trace_id: Option<String>,
}

/// How long after a probe's end a line of its server still belongs to it: stderr lines are
/// stored when the probe's outcome is (src/store/observe.rs), a moment after it ended.
pub const LINE_AFTER_PROBE_SECONDS: f64 = 1.0;

/// The SQL expression of the trace id of a `log_lines` row: that of its server's last probe
/// started at or before the line, when the line came while that probe ran or up to
/// [`LINE_AFTER_PROBE_SECONDS`] after (a notification or HTTP error of the probe, or the stderr
/// collected with it); a line between probes has none. One index seek per line
/// (`probe_results_server_ts`).
pub fn trace_of_line() -> String {
    format!(
        "(SELECT CASE WHEN log_lines.ts <= p.ts + p.duration_ms / 1000.0 + {LINE_AFTER_PROBE_SECONDS:?} THEN p.trace_id END \
         FROM probe_results p WHERE p.server = log_lines.server AND p.ts <= log_lines.ts ORDER BY p.ts DESC LIMIT 1)"
    )
}

/// Turns operator text into an FTS5 query: every word quoted (so punctuation and FTS operators
/// in the text are literal), words joined by AND. `None` when there is no word.
pub fn fts_query(text: &str) -> Option<String> {
    let terms: Vec<String> = text
        .split_whitespace()
        .map(|w| format!("\"{}\"", w.replace('"', "\"\"")))
        .collect();
    (!terms.is_empty()).then(|| terms.join(" AND "))
}

/// The matching lines, oldest first (the newest `limit` of them), each with its probe's trace
/// id ([`trace_of_line`]).
pub async fn logs(store: &Store, q: &LogQuery) -> Result<Vec<LogEntry>, sqlx::Error> {
    let mut b: QueryBuilder<Sqlite> = QueryBuilder::new("SELECT * FROM (");
    b.push("SELECT id, ts, server, source, level, logger, message, ")
        .push(trace_of_line())
        .push(" AS trace_id FROM log_lines WHERE 1 = 1");
    if let Some(fts) = q.search.as_deref().and_then(fts_query) {
        b.push(" AND id IN (SELECT rowid FROM log_lines_fts WHERE log_lines_fts MATCH ")
            .push_bind(fts)
            .push(")");
    }
    if let Some(level) = q.min_level {
        b.push(" AND level >= ").push_bind(level.rank());
    }
    if let Some(server) = &q.server {
        b.push(" AND server = ").push_bind(server.clone());
    }
    if let Some(since) = q.since {
        b.push(" AND ts >= ").push_bind(since);
    }
    if let Some(after) = q.after_id {
        b.push(" AND id > ").push_bind(after);
    }
    if let Some(trace) = &q.trace_id {
        // Only the lines of the servers and the period of the probes of that trace are looked
        // at; the outer filter keeps those the trace's probe owns.
        b.push(" AND server IN (SELECT server FROM probe_results WHERE trace_id = ")
            .push_bind(trace.clone())
            .push(") AND ts >= (SELECT min(ts) FROM probe_results WHERE trace_id = ")
            .push_bind(trace.clone())
            .push(format!(
                ") AND ts <= (SELECT max(ts + duration_ms / 1000.0) + {LINE_AFTER_PROBE_SECONDS:?} FROM probe_results WHERE trace_id = "
            ))
            .push_bind(trace.clone())
            .push(")) WHERE trace_id = ")
            .push_bind(trace.clone());
    } else {
        b.push(")");
    }
    b.push(" ORDER BY id DESC LIMIT ").push_bind(q.limit.max(1));
    let rows = b.build().fetch_all(store.pool()).await?;
    let mut out: Vec<LogEntry> = rows
        .iter()
        .map(|r| LogEntry {
            id: r.get("id"),
            ts: r.get("ts"),
            server: r.get("server"),
            source: r.get("source"),
            level: Level::from_rank(r.get("level")).as_str().to_string(),
            logger: r.get("logger"),
            message: r.get("message"),
            trace_id: r.get("trace_id"),
        })
        .collect();
    out.reverse();
    Ok(out)
}

/// One stored health transition.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Transition {
    /// Unix seconds.
    pub ts: f64,
    /// down, degraded, recovered, up, unknown, restart.
    pub kind: String,
    /// Previous status word.
    pub from: String,
    /// New status word.
    pub to: String,
    /// Why.
    pub reason: String,
}

/// A failed probe and its trace.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailedProbe {
    /// Unix seconds the probe started.
    pub ts: f64,
    /// Its failure class, stage and reason (`class at stage: reason`).
    pub failure: String,
    /// Its OpenTelemetry trace id, when it was traced (docs/tracing.md).
    pub trace_id: Option<String>,
}

/// Failed probes `history` lists, newest ones.
pub const FAILED_PROBES_LISTED: i64 = 10;

/// A server's history over a period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct History {
    /// Server name.
    pub server: String,
    /// Start of the period (Unix seconds).
    pub since: f64,
    /// Probes in the period.
    pub probes: i64,
    /// Probes that found the server up (handshake/ping answered).
    pub probes_up: i64,
    /// Probes whose full check passed.
    pub probes_successful: i64,
    /// `probes_up / probes` in percent; `None` without probes.
    pub uptime_percent: Option<f64>,
    /// The share of observed time the server was up, each probe's result holding until the
    /// next (see [`availability`](super::availability)); `None` with fewer than two probes.
    pub availability: Option<TimeWeighted>,
    /// `probes_successful / probes` in percent.
    pub success_percent: Option<f64>,
    /// Restarts (sessions re-established) in the period.
    pub restarts: i64,
    /// Transitions, oldest first.
    pub transitions: Vec<Transition>,
    /// The last [`FAILED_PROBES_LISTED`] failed probes in the period, oldest first, with the
    /// traces that show them.
    pub failed_probes: Vec<FailedProbe>,
    /// Maintenance windows of the server (its own and `--all` ones) in the period: planned
    /// downtime, left out of `availability`.
    pub maintenance: Vec<MaintenanceRow>,
}

impl History {
    /// The maintenance window holding at `ts`, if any.
    pub fn planned_at(&self, ts: f64) -> Option<&MaintenanceRow> {
        self.maintenance
            .iter()
            .find(|w| w.starts_at <= ts && ts < w.ends_at)
    }
}

/// The history of `server` since `since` (Unix seconds).
pub async fn history(store: &Store, server: &str, since: f64) -> Result<History, sqlx::Error> {
    let counts = sqlx::query(
        "SELECT count(*) AS n, coalesce(sum(up), 0) AS up, coalesce(sum(success), 0) AS ok FROM probe_results WHERE server = ? AND ts >= ?",
    )
    .bind(server)
    .bind(since)
    .fetch_one(store.pool())
    .await?;
    let probes: i64 = counts.get("n");
    let probes_up: i64 = counts.get("up");
    let probes_successful: i64 = counts.get("ok");
    let samples: Vec<(f64, bool)> =
        sqlx::query("SELECT ts, up FROM probe_results WHERE server = ? AND ts >= ? ORDER BY ts")
            .bind(server)
            .bind(since)
            .fetch_all(store.pool())
            .await?
            .iter()
            .map(|r| (r.get::<f64, _>("ts"), r.get::<i64, _>("up") != 0))
            .collect();
    let now = crate::wall_clock::unix_seconds(std::time::SystemTime::now());
    let rows = sqlx::query(
        "SELECT ts, kind, from_status, to_status, reason FROM health_transitions WHERE server = ? AND ts >= ? ORDER BY id",
    )
    .bind(server)
    .bind(since)
    .fetch_all(store.pool())
    .await?;
    let transitions: Vec<Transition> = rows
        .iter()
        .map(|r| Transition {
            ts: r.get("ts"),
            kind: r.get("kind"),
            from: r.get("from_status"),
            to: r.get("to_status"),
            reason: r.get("reason"),
        })
        .collect();
    let mut failed_probes: Vec<FailedProbe> = sqlx::query(
        "SELECT ts, failure_class, failure_stage, error, trace_id FROM probe_results WHERE server = ? AND ts >= ? AND success = 0 ORDER BY ts DESC LIMIT ?",
    )
    .bind(server)
    .bind(since)
    .bind(FAILED_PROBES_LISTED)
    .fetch_all(store.pool())
    .await?
    .iter()
    .map(|r| FailedProbe {
        ts: r.get("ts"),
        failure: format!(
            "{} at {}: {}",
            r.get::<Option<String>, _>("failure_class").unwrap_or_default(),
            r.get::<Option<String>, _>("failure_stage").unwrap_or_default(),
            r.get::<Option<String>, _>("error").unwrap_or_default()
        ),
        trace_id: r.get("trace_id"),
    })
    .collect();
    failed_probes.reverse();
    let maintenance = if windows::table_exists(store).await? {
        windows::covering(store, server, since, now).await?
    } else {
        Vec::new()
    };
    let planned: Vec<(f64, f64)> = maintenance
        .iter()
        .map(|w| (w.starts_at, w.ends_at))
        .collect();
    let percent = |n: i64| (probes > 0).then(|| n as f64 * 100.0 / probes as f64);
    Ok(History {
        server: server.to_string(),
        since,
        probes,
        probes_up,
        probes_successful,
        uptime_percent: percent(probes_up),
        availability: time_weighted_with_planned(&samples, now, &planned),
        success_percent: percent(probes_successful),
        restarts: transitions.iter().filter(|t| t.kind == "restart").count() as i64,
        transitions,
        failed_probes,
        maintenance,
    })
}

/// A tool added, removed or modified between two listings, as `tool_definition_changes` keeps
/// it (docs/tool-integrity.md).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DefinitionChange {
    /// Unix seconds of the probe that saw it.
    pub ts: f64,
    /// `tool`, `prompt` or `resource_template`.
    pub kind: String,
    /// The tool's (prompt's, template's) name.
    pub tool: String,
    /// `added`, `removed` or `modified`.
    pub change: String,
    /// The fields that differ (names only; the old and new texts stay in the store).
    pub fields: Vec<String>,
}

/// The rows of `sql` for one server and period: its three `?` are bound to `server`, `from`
/// and `to`, in that order (`WHERE server = ? AND ts >= ? AND ts < ?`).
pub async fn server_period_rows(
    store: &Store,
    sql: &'static str,
    server: &str,
    from: f64,
    to: f64,
) -> Result<Vec<SqliteRow>, sqlx::Error> {
    sqlx::query(sql)
        .bind(server)
        .bind(from)
        .bind(to)
        .fetch_all(store.pool())
        .await
}

/// The definition changes (tools, prompts, resource templates) of `server` in `[since, until)`,
/// oldest first.
pub async fn definition_changes(
    store: &Store,
    server: &str,
    since: f64,
    until: f64,
) -> Result<Vec<DefinitionChange>, sqlx::Error> {
    let rows = server_period_rows(
        store,
        "SELECT ts, kind, tool, change, fields FROM tool_definition_changes WHERE server = ? AND ts >= ? AND ts < ? ORDER BY id",
        server,
        since,
        until,
    )
    .await?;
    Ok(rows
        .iter()
        .map(|r| DefinitionChange {
            ts: r.get("ts"),
            kind: r.get("kind"),
            tool: r.get("tool"),
            change: r.get("change"),
            fields: serde_json::from_str::<Vec<serde_json::Value>>(&r.get::<String, _>("fields"))
                .unwrap_or_default()
                .iter()
                .filter_map(|f| f["field"].as_str().map(str::to_string))
                .collect(),
        })
        .collect())
}

/// Server names that have rows in the store.
pub async fn servers(store: &Store) -> Result<Vec<String>, sqlx::Error> {
    let rows = sqlx::query("SELECT DISTINCT server FROM probe_results ORDER BY server")
        .fetch_all(store.pool())
        .await?;
    Ok(rows.iter().map(|r| r.get("server")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fts_query_quotes_every_word() {
        assert_eq!(fts_query("  "), None);
        assert_eq!(
            fts_query("Starting (STDIO) server..."),
            Some("\"Starting\" AND \"(STDIO)\" AND \"server...\"".into())
        );
        assert_eq!(fts_query("a\"b"), Some("\"a\"\"b\"".into()));
    }

    fn probe(ts: f64, up: bool) -> crate::store::Record {
        crate::store::Record::Probe(crate::store::ProbeRow {
            ts,
            server: "s".into(),
            check_type: "liveness".into(),
            up,
            success: up,
            health: if up { "HEALTHY" } else { "UNHEALTHY" }.into(),
            duration_ms: 1.0,
            latency_ms: None,
            failure_class: None,
            failure_stage: None,
            error: None,
            stages: "{}".into(),
            trace_id: Some("4bf92f3577b34da6a3ce929d0e0e4736".into()),
        })
    }

    #[tokio::test]
    async fn history_weighs_availability_by_time_not_by_probe_count() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("h.db")).await.unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        // 100 s up probed every 10 s, then 100 s down probed every 20 s (restart back-off),
        // ending now.
        let start = now - 200.0;
        let mut rows: Vec<_> = (0..10)
            .map(|i| probe(start + 10.0 * i as f64, true))
            .collect();
        rows.extend((0..5).map(|i| probe(start + 100.0 + 20.0 * i as f64, false)));
        crate::store::writer::write_batch(&store, &rows)
            .await
            .unwrap();
        let h = history(&store, "s", now - 3600.0).await.unwrap();
        assert_eq!((h.probes, h.probes_up), (15, 10));
        // The failed probes are listed with their traces (migrations/0005_probe_trace_id.sql).
        assert_eq!(h.failed_probes.len(), 5);
        assert!(
            h.failed_probes
                .iter()
                .all(|f| f.trace_id.as_deref() == Some("4bf92f3577b34da6a3ce929d0e0e4736")),
            "{:?}",
            h.failed_probes
        );
        assert!(h.failed_probes.windows(2).all(|w| w[0].ts < w[1].ts));
        let a = h.availability.expect("availability");
        assert!((a.percent - 50.0).abs() < 0.5, "{a:?}");
        assert!((a.observed_seconds - 200.0).abs() < 1.0, "{a:?}");

        // The down half was a maintenance window: planned, so availability is 100%.
        crate::store::maintenance::insert(
            &store,
            &crate::store::maintenance::NewMaintenance {
                server: Some("s".into()),
                starts_at: start + 100.0,
                ends_at: now + 60.0,
                reason: "upgrade".into(),
                created_at: start + 100.0,
            },
        )
        .await
        .unwrap();
        let h = history(&store, "s", now - 3600.0).await.unwrap();
        let a = h.availability.expect("availability");
        assert!((a.percent - 100.0).abs() < 1e-9, "{a:?}");
        assert!((a.planned_seconds - 100.0).abs() < 1.0, "{a:?}");
        assert_eq!(h.maintenance.len(), 1);
        assert!(h.planned_at(start + 150.0).is_some() && h.planned_at(start + 50.0).is_none());
    }

    #[tokio::test]
    async fn a_log_line_carries_the_trace_of_the_probe_it_came_with() {
        use crate::store::{LogRow, LogSource, ProbeRow, Record};
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("h.db")).await.unwrap();
        let (a, b) = (
            "4bf92f3577b34da6a3ce929d0e0e4736",
            "0af7651916cd43dd8448eb211c80319c",
        );
        let probe = |ts: f64, trace: Option<&str>| {
            Record::Probe(ProbeRow {
                ts,
                server: "s".into(),
                check_type: "readiness".into(),
                up: true,
                success: true,
                health: "HEALTHY".into(),
                duration_ms: 500.0,
                latency_ms: None,
                failure_class: None,
                failure_stage: None,
                error: None,
                stages: "{}".into(),
                trace_id: trace.map(str::to_string),
            })
        };
        let line = |ts: f64, server: &str, message: &str| {
            Record::Log(LogRow {
                ts,
                server: server.into(),
                source: LogSource::Stderr,
                level: crate::store::Level::Info,
                logger: None,
                message: message.into(),
            })
        };
        let rows = vec![
            probe(1000.0, Some(a)),
            probe(1010.0, None),
            probe(1020.0, Some(b)),
            line(1000.2, "s", "during a"),
            line(1000.9, "s", "collected after a"),
            line(1005.0, "s", "between probes"),
            line(1010.1, "s", "during the untraced probe"),
            line(1020.0, "s", "http error of b"),
            line(1000.2, "other", "another server"),
        ];
        crate::store::writer::write_batch(&store, &rows)
            .await
            .unwrap();
        let all = logs(
            &store,
            &LogQuery {
                limit: 100,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let traces: Vec<(&str, Option<&str>)> = all
            .iter()
            .map(|e| (e.message.as_str(), e.trace_id.as_deref()))
            .collect();
        assert_eq!(
            traces,
            [
                ("during a", Some(a)),
                ("collected after a", Some(a)),
                ("between probes", None),
                ("during the untraced probe", None),
                ("http error of b", Some(b)),
                ("another server", None),
            ]
        );
        let of_a = logs(
            &store,
            &LogQuery {
                limit: 100,
                trace_id: Some(a.into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let messages: Vec<&str> = of_a.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(messages, ["during a", "collected after a"]);
        let unknown = LogQuery {
            limit: 100,
            trace_id: Some("00000000000000000000000000000001".into()),
            ..Default::default()
        };
        assert!(logs(&store, &unknown).await.unwrap().is_empty());
    }
}
