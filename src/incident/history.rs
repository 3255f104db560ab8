//! What the history store holds for the incident's period: log lines (the security events among
//! them, which the daemon stores as log lines of source `security`), probe results, health
//! transitions, dependency checks and backup runs.

use serde::Serialize;

use crate::store::Store;
use crate::store::query::{self, LogQuery};

/// Most rows read from one table; the summary says when a table was cut.
pub const MAX_ROWS: i64 = 100_000;

/// The period and the servers asked for.
#[derive(Debug, Clone)]
pub struct Scope {
    /// Unix seconds the period starts.
    pub since: f64,
    /// Only this server (and the dependencies it lists), when set.
    pub server: Option<String>,
    /// The dependencies of `server` (empty: every dependency).
    pub dependencies: Vec<String>,
}

/// One log line, as `mcp-exporter logs` reads it.
pub use crate::store::query::LogEntry as LogLine;

/// One probe result.
#[derive(Debug, Clone, Serialize)]
pub struct Probe {
    /// Unix seconds.
    pub ts: f64,
    /// Server.
    pub server: String,
    /// `liveness` or `readiness`.
    pub check_type: String,
    /// The handshake or ping completed.
    pub up: bool,
    /// Every stage passed.
    pub success: bool,
    /// Health word after the probe.
    pub health: String,
    /// Duration, ms.
    pub duration_ms: f64,
    /// Failure class, when it failed.
    pub failure_class: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
}

/// One health transition.
#[derive(Debug, Clone, Serialize)]
pub struct Transition {
    /// Unix seconds.
    pub ts: f64,
    /// Server.
    pub server: String,
    /// `down`, `degraded`, `recovered`, `up`, `unknown`, `restart`.
    pub kind: String,
    /// Status before.
    pub from_status: String,
    /// Status after.
    pub to_status: String,
    /// Why.
    pub reason: String,
}

/// One dependency check.
#[derive(Debug, Clone, Serialize)]
pub struct DependencyCheck {
    /// Unix seconds.
    pub ts: f64,
    /// Dependency name.
    pub dependency: String,
    /// Kind.
    pub kind: String,
    /// Usable.
    pub up: bool,
    /// Health word.
    pub status: String,
    /// Why it failed.
    pub error: Option<String>,
}

/// Everything read from the store for the period.
#[derive(Debug, Clone, Default, Serialize)]
pub struct History {
    /// Log lines, oldest first (security events included).
    pub logs: Vec<LogLine>,
    /// Probe results, oldest first.
    pub probes: Vec<Probe>,
    /// Health transitions, oldest first.
    pub transitions: Vec<Transition>,
    /// Dependency checks, oldest first.
    pub dependencies: Vec<DependencyCheck>,
    /// Backup runs, oldest first (empty for a store without the table).
    pub backups: Vec<crate::store::backup::BackupRun>,
    /// Tables that held more than [`MAX_ROWS`] rows for the period (the oldest were kept, but
    /// of the log lines the newest).
    pub truncated: Vec<&'static str>,
}

impl History {
    /// The log lines that are security events.
    pub fn security_events(&self) -> impl Iterator<Item = &LogLine> {
        self.logs.iter().filter(|l| l.source == "security")
    }
}

/// Reads the period from `store`.
pub async fn read(store: &Store, scope: &Scope) -> Result<History, sqlx::Error> {
    let server = scope.server.as_deref();
    let mut history = History {
        logs: query::logs(
            store,
            &LogQuery {
                server: scope.server.clone(),
                since: Some(scope.since),
                limit: MAX_ROWS + 1,
                ..LogQuery::default()
            },
        )
        .await?,
        ..History::default()
    };
    // The newest lines are the ones kept: the incident is at the end of the period.
    let max = usize::try_from(MAX_ROWS).unwrap_or(usize::MAX);
    if history.logs.len() > max {
        let excess = history.logs.len() - max;
        history.logs.drain(..excess);
        history.truncated.push("log_lines");
    }

    type ProbeTuple = (
        f64,
        String,
        String,
        bool,
        bool,
        String,
        f64,
        Option<String>,
        Option<String>,
    );
    let rows: Vec<ProbeTuple> = sqlx::query_as(
        "SELECT ts, server, check_type, up, success, health, duration_ms, failure_class, error FROM probe_results WHERE ts >= ? AND (? IS NULL OR server = ?) ORDER BY ts, id LIMIT ?",
    )
    .bind(scope.since)
    .bind(server)
    .bind(server)
    .bind(MAX_ROWS + 1)
    .fetch_all(store.pool())
    .await?;
    history.probes = rows
        .into_iter()
        .map(
            |(ts, server, check_type, up, success, health, duration_ms, failure_class, error)| {
                Probe {
                    ts,
                    server,
                    check_type,
                    up,
                    success,
                    health,
                    duration_ms,
                    failure_class,
                    error,
                }
            },
        )
        .collect();
    cut(&mut history.probes, "probe_results", &mut history.truncated);

    let rows: Vec<(f64, String, String, String, String, String)> = sqlx::query_as(
        "SELECT ts, server, kind, from_status, to_status, reason FROM health_transitions WHERE ts >= ? AND (? IS NULL OR server = ?) ORDER BY ts, id LIMIT ?",
    )
    .bind(scope.since)
    .bind(server)
    .bind(server)
    .bind(MAX_ROWS + 1)
    .fetch_all(store.pool())
    .await?;
    history.transitions = rows
        .into_iter()
        .map(
            |(ts, server, kind, from_status, to_status, reason)| Transition {
                ts,
                server,
                kind,
                from_status,
                to_status,
                reason,
            },
        )
        .collect();
    cut(
        &mut history.transitions,
        "health_transitions",
        &mut history.truncated,
    );

    let rows: Vec<(f64, String, String, bool, String, Option<String>)> = sqlx::query_as(
        "SELECT ts, dependency, kind, up, status, error FROM dependency_results WHERE ts >= ? ORDER BY ts, id LIMIT ?",
    )
    .bind(scope.since)
    .bind(MAX_ROWS + 1)
    .fetch_all(store.pool())
    .await?;
    history.dependencies = rows
        .into_iter()
        .filter(|(_, dependency, ..)| {
            server.is_none() || scope.dependencies.iter().any(|d| d == dependency)
        })
        .map(
            |(ts, dependency, kind, up, status, error)| DependencyCheck {
                ts,
                dependency,
                kind,
                up,
                status,
                error,
            },
        )
        .collect();
    cut(
        &mut history.dependencies,
        "dependency_results",
        &mut history.truncated,
    );

    // A store written by an older daemon has no backup_runs table: no runs to report.
    history.backups = crate::store::backup::runs_since(store, scope.since)
        .await
        .unwrap_or_default();
    Ok(history)
}

fn cut<T>(rows: &mut Vec<T>, table: &'static str, truncated: &mut Vec<&'static str>) {
    let max = usize::try_from(MAX_ROWS).unwrap_or(usize::MAX);
    if rows.len() > max {
        rows.truncate(max);
        truncated.push(table);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::writer::write_batch;
    use crate::store::{Level, LogRow, LogSource, Record, TransitionRow};

    #[tokio::test]
    async fn the_period_and_the_server_select_the_rows() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("h.db")).await.unwrap();
        let log = |ts: f64, server: &str, source: LogSource, message: &str| {
            Record::Log(LogRow {
                ts,
                server: server.into(),
                source,
                level: Level::Error,
                logger: None,
                message: message.into(),
            })
        };
        write_batch(
            &store,
            &[
                log(10.0, "a", LogSource::Stderr, "too old"),
                log(100.0, "a", LogSource::Stderr, "in the period"),
                log(101.0, "b", LogSource::Stderr, "other server"),
                log(
                    102.0,
                    "a",
                    LogSource::Security,
                    "security event pattern_match",
                ),
                Record::Transition(TransitionRow {
                    ts: 103.0,
                    server: "a".into(),
                    kind: "down".into(),
                    from_status: "HEALTHY".into(),
                    to_status: "UNHEALTHY".into(),
                    reason: "probe_failed".into(),
                }),
            ],
        )
        .await
        .unwrap();
        let scope = Scope {
            since: 50.0,
            server: Some("a".into()),
            dependencies: Vec::new(),
        };
        let h = read(&store, &scope).await.unwrap();
        let messages: Vec<&str> = h.logs.iter().map(|l| l.message.as_str()).collect();
        assert_eq!(messages, ["in the period", "security event pattern_match"]);
        assert_eq!(h.security_events().count(), 1);
        assert_eq!(h.transitions.len(), 1);
        assert_eq!(h.logs[0].level, "error");
        let all = read(
            &store,
            &Scope {
                server: None,
                ..scope
            },
        )
        .await
        .unwrap();
        assert_eq!(all.logs.len(), 3);
        assert!(all.truncated.is_empty());
    }
}
