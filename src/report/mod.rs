//! `mcp-exporter report` and `/reports`: the playbook's daily and weekly review of a period, per
//! server and for the fleet, from the history store. Every figure comes from the functions the
//! CLI and the pages use: availability and transitions from `query::history`
//! (src/store/query.rs, the same as `mcp-exporter history`), percentiles from
//! `histogram_quantile` (src/quantile.rs, the same as `mcp-exporter metrics`) over the period's
//! own observations in the buckets of `mcp_request_duration_seconds`, so a period's p99 is that
//! of the period and not of everything since start-up.
//!
//! Rendered as JSON (its schema: docs/report.schema.json), Markdown or HTML (src/report/render.rs).

pub mod alerts;
pub mod chart;
mod outages;
pub mod prometheus;
pub mod render;
pub mod resources;
pub mod review;
pub mod series;

use serde::Serialize;
use sqlx::Row;

use crate::quantile::{Bucket, histogram_quantile};
use crate::store::query::{self, History};
use crate::store::{Store, StoreError};

pub use alerts::{AlertFiring, AlertSource, Alerts};
pub use outages::{Cause, Outage, outages};
pub use resources::{ResourcePoint, ResourceSource, Resources};
pub use series::{ProbePoint, Series, SeriesComparison, Slot};

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Unix time the report was made.
    pub generated_at: f64,
    /// Start of the period (Unix seconds).
    pub since: f64,
    /// End of the period (Unix seconds).
    pub until: f64,
    /// The fleet as a whole.
    pub fleet: Fleet,
    /// One entry per server with rows in the period, by name.
    pub servers: Vec<ServerReport>,
    /// The history store's size and how long until it is full at this period's rate.
    pub capacity: Capacity,
    /// The alerts that fired in the period.
    pub alerts: Alerts,
    /// The history store's backups: the last good one and the runs of the period.
    pub backup: Backup,
    /// Each bundled alert's threshold against the period (src/report/review.rs).
    pub thresholds: Vec<review::ThresholdReview>,
    /// Why Prometheus (`[prometheus] url`) could not be read, when it could not: the figures
    /// it would have given come from the store instead.
    pub prometheus_error: Option<String>,
}

/// Fleet-wide figures of the period.
#[derive(Debug, Clone, Serialize)]
pub struct Fleet {
    /// Servers in the report.
    pub servers: usize,
    /// Probes in the period.
    pub probes: i64,
    /// Outages in the period, all servers.
    pub outages: usize,
    /// Security events in the period, all servers.
    pub security_events: usize,
    /// The lowest time-weighted availability among the servers, percent; `None` when no
    /// server has enough probes.
    pub worst_availability_percent: Option<f64>,
}

/// One server's review.
#[derive(Debug, Clone, Serialize)]
pub struct ServerReport {
    /// Server name.
    pub server: String,
    /// Probes, availability, restarts and transitions of the period (as `history` shows them).
    pub history: History,
    /// Periods the server was UNHEALTHY, oldest first.
    pub outages: Vec<Outage>,
    /// Probe latency of this period and of the one before it.
    pub latency: LatencyComparison,
    /// The period and the one before it cut into slots: latency percentiles and availability
    /// by time (the charts' numbers).
    pub series: SeriesComparison,
    /// CPU, memory, file descriptors and processes of the server's process tree by time.
    pub resources: Resources,
    /// Tools, prompts and resource templates added, removed or modified in the period
    /// (`tool_definition_changes`).
    pub tool_changes: Vec<query::DefinitionChange>,
    /// Security events of the period (redacted evidence, as the logs keep it).
    pub security_events: Vec<SecurityEvent>,
}

/// p50/p95/p99 of a period, milliseconds; `None` without observations.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Percentiles {
    /// Observations (probes with a latency).
    pub observations: u64,
    /// Median.
    pub p50_ms: Option<f64>,
    /// 95th percentile.
    pub p95_ms: Option<f64>,
    /// 99th percentile.
    pub p99_ms: Option<f64>,
}

/// This period beside the previous one of the same length.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct LatencyComparison {
    /// The reported period.
    pub current: Percentiles,
    /// The period of the same length just before it.
    pub previous: Percentiles,
}

/// A security event as the store keeps it.
#[derive(Debug, Clone, Serialize)]
pub struct SecurityEvent {
    /// Unix time.
    pub ts: f64,
    /// The event kind (`auth_failure`, `pattern_match`, ...).
    pub kind: String,
    /// What was seen (redacted).
    pub message: String,
}

/// The history store's backups (src/store/backup.rs, table `backup_runs`).
#[derive(Debug, Clone, Serialize)]
pub struct Backup {
    /// Unix time of the newest successful backup; `None` when there is none.
    pub last_success: Option<f64>,
    /// Seconds from it to the end of the period.
    pub age_seconds: Option<f64>,
    /// Runs in the period.
    pub runs_in_period: usize,
    /// Of which failed.
    pub failed_in_period: usize,
}

async fn backup(store: &Store, since: f64, until: f64) -> Result<Backup, sqlx::Error> {
    let last_success = crate::store::backup::last_success(store).await?;
    let runs: Vec<_> = crate::store::backup::runs_since(store, since)
        .await?
        .into_iter()
        .filter(|r| r.ts < until)
        .collect();
    Ok(Backup {
        last_success,
        age_seconds: last_success.map(|ts| (until - ts).max(0.0)),
        runs_in_period: runs.len(),
        failed_in_period: runs.iter().filter(|r| !r.ok).count(),
    })
}

/// The store's capacity at this period's rate of growth.
#[derive(Debug, Clone, Serialize)]
pub struct Capacity {
    /// Probes per second over the period, all servers.
    pub probes_per_second: f64,
    /// Size of the store on disk, bytes.
    pub store_bytes: u64,
    /// The configured `[store] max_size`, bytes.
    pub store_max_bytes: u64,
    /// Rows written in the period (probes, dependency checks, transitions, log lines).
    pub rows_in_period: i64,
    /// Bytes per day at this period's rate (rows in the period times the store's average row
    /// size); an estimate, since SQLite reuses freed pages.
    pub bytes_per_day: f64,
    /// Days until `max_size` at that rate; `None` when the store does not grow.
    pub days_until_full: Option<f64>,
}

/// The buckets of a period's latencies: each observation counted in the buckets of
/// `mcp_request_duration_seconds` (src/probe/metrics.rs), cumulative, with `+Inf`.
fn buckets_of(latencies_seconds: &[f64]) -> Vec<Bucket> {
    let bounds = crate::probe::metrics::DURATION_BUCKETS;
    let mut buckets: Vec<Bucket> = bounds
        .iter()
        .chain(std::iter::once(&f64::INFINITY))
        .map(|le| Bucket {
            le: *le,
            count: latencies_seconds.iter().filter(|v| **v <= *le).count() as f64,
        })
        .collect();
    buckets.sort_by(|a, b| a.le.total_cmp(&b.le));
    buckets
}

/// The percentiles of `latencies_seconds`, through the buckets as Prometheus would compute
/// them from the histogram's increase over the period.
pub fn percentiles(latencies_seconds: &[f64]) -> Percentiles {
    let buckets = buckets_of(latencies_seconds);
    let at = |q: f64| {
        let v = histogram_quantile(q, &buckets);
        v.is_finite().then_some(v * 1e3)
    };
    Percentiles {
        observations: latencies_seconds.len() as u64,
        p50_ms: at(0.5),
        p95_ms: at(0.95),
        p99_ms: at(0.99),
    }
}

async fn latencies(
    store: &Store,
    server: &str,
    from: f64,
    to: f64,
) -> Result<Vec<f64>, sqlx::Error> {
    Ok(sqlx::query(
        "SELECT latency_ms FROM probe_results WHERE server = ? AND ts >= ? AND ts < ? AND latency_ms IS NOT NULL",
    )
    .bind(server)
    .bind(from)
    .bind(to)
    .fetch_all(store.pool())
    .await?
    .iter()
    .map(|r| r.get::<f64, _>("latency_ms") / 1e3)
    .collect())
}

async fn probe_points(
    store: &Store,
    server: &str,
    from: f64,
    to: f64,
) -> Result<Vec<ProbePoint>, sqlx::Error> {
    Ok(query::server_period_rows(
        store,
        "SELECT ts, up, latency_ms FROM probe_results WHERE server = ? AND ts >= ? AND ts < ? ORDER BY ts",
        server,
        from,
        to,
    )
    .await?
    .iter()
    .map(|r| ProbePoint {
        ts: r.get("ts"),
        up: r.get::<i64, _>("up") != 0,
        latency_seconds: r.get::<Option<f64>, _>("latency_ms").map(|ms| ms / 1e3),
    })
    .collect())
}

async fn security_events(
    store: &Store,
    server: &str,
    from: f64,
    to: f64,
) -> Result<Vec<SecurityEvent>, sqlx::Error> {
    Ok(query::server_period_rows(
        store,
        "SELECT ts, logger, message FROM log_lines WHERE server = ? AND source = 'security' AND ts >= ? AND ts < ? ORDER BY ts",
        server,
        from,
        to,
    )
    .await?
    .iter()
    .map(|r| SecurityEvent {
        ts: r.get("ts"),
        kind: r.get::<Option<String>, _>("logger").unwrap_or_default(),
        message: r.get("message"),
    })
    .collect())
}

/// The store's tables that grow with what the daemon observes.
#[derive(Clone, Copy)]
enum Table {
    Probes,
    Dependencies,
    Transitions,
    Logs,
}

async fn count(store: &Store, table: Table, from: f64, to: f64) -> Result<i64, sqlx::Error> {
    let sql = match table {
        Table::Probes => "SELECT count(*) AS n FROM probe_results WHERE ts >= ? AND ts < ?",
        Table::Dependencies => {
            "SELECT count(*) AS n FROM dependency_results WHERE ts >= ? AND ts < ?"
        }
        Table::Transitions => {
            "SELECT count(*) AS n FROM health_transitions WHERE ts >= ? AND ts < ?"
        }
        Table::Logs => "SELECT count(*) AS n FROM log_lines WHERE ts >= ? AND ts < ?",
    };
    Ok(sqlx::query(sql)
        .bind(from)
        .bind(to)
        .fetch_one(store.pool())
        .await?
        .get("n"))
}

async fn capacity(
    store: &Store,
    from: f64,
    to: f64,
    max_bytes: u64,
) -> Result<Capacity, sqlx::Error> {
    let mut rows_in_period = 0;
    let mut rows_total = 0;
    for table in [
        Table::Probes,
        Table::Dependencies,
        Table::Transitions,
        Table::Logs,
    ] {
        rows_in_period += count(store, table, from, to).await?;
        rows_total += count(store, table, f64::MIN, f64::MAX).await?;
    }
    let probes = count(store, Table::Probes, from, to).await?;
    let seconds = (to - from).max(1.0);
    let store_bytes = store.size_on_disk();
    let bytes_per_row = if rows_total > 0 {
        store_bytes as f64 / rows_total as f64
    } else {
        0.0
    };
    let bytes_per_day = rows_in_period as f64 * bytes_per_row * 86_400.0 / seconds;
    Ok(Capacity {
        probes_per_second: probes as f64 / seconds,
        store_bytes,
        store_max_bytes: max_bytes,
        rows_in_period,
        bytes_per_day,
        days_until_full: (bytes_per_day > 0.0)
            .then(|| (max_bytes.saturating_sub(store_bytes)) as f64 / bytes_per_day),
    })
}

/// What a report is read from besides the store.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// The store's configured `max_size`, bytes.
    pub max_bytes: u64,
    /// `[prometheus]`: resource trends and alerts from its range queries when set.
    pub prometheus: Option<crate::settings::PrometheusConfig>,
}

/// Builds the report of `[since, until)` from `store` (and Prometheus, when `sources` names
/// one); `only` limits it to one server.
pub async fn build(
    store: &Store,
    since: f64,
    until: f64,
    only: Option<&str>,
    sources: &Sources,
) -> Result<Report, StoreError> {
    let max_bytes = sources.max_bytes;
    let prometheus = sources.prometheus.as_ref().map(prometheus::Prometheus::new);
    let mut prometheus_error: Option<String> = None;
    let names: Vec<String> = match only {
        Some(name) => vec![name.to_string()],
        None => query::servers(store).await?,
    };
    let length = until - since;
    let mut servers = Vec::new();
    for name in names {
        let history = query::history(store, &name, since).await?;
        if history.probes == 0 && history.transitions.is_empty() && only.is_none() {
            continue;
        }
        let current = percentiles(&latencies(store, &name, since, until).await?);
        let previous = percentiles(&latencies(store, &name, since - length, since).await?);
        let points = probe_points(store, &name, since - length, until).await?;
        let planned: Vec<(f64, f64)> = history
            .maintenance
            .iter()
            .map(|w| (w.starts_at, w.ends_at))
            .collect();
        let series = SeriesComparison {
            current: series::series(&points, since, until, &planned),
            previous: series::series(&points, since - length, since, &planned),
        };
        let from_prometheus = match &prometheus {
            Some(p) if prometheus_error.is_none() => match p.resources(&name, since, until).await {
                Ok(r) => Some(r),
                Err(e) => {
                    prometheus_error = Some(e.to_string());
                    None
                }
            },
            _ => None,
        };
        let resources = match from_prometheus {
            Some(r) => r,
            None => resources::from_store(store, &name, since, until).await?,
        };
        servers.push(ServerReport {
            tool_changes: query::definition_changes(store, &name, since, until).await?,
            series,
            resources,
            outages: outages(&history.transitions, since, until),
            security_events: security_events(store, &name, since, until).await?,
            latency: LatencyComparison { current, previous },
            server: name,
            history,
        });
    }
    let fleet = Fleet {
        servers: servers.len(),
        probes: servers.iter().map(|s| s.history.probes).sum(),
        outages: servers.iter().map(|s| s.outages.len()).sum(),
        security_events: servers.iter().map(|s| s.security_events.len()).sum(),
        worst_availability_percent: servers
            .iter()
            .filter_map(|s| s.history.availability.as_ref().map(|a| a.percent))
            .min_by(|a, b| a.total_cmp(b)),
    };
    let fired = match &prometheus {
        Some(p) if prometheus_error.is_none() => match p.alerts(since, until).await {
            Ok(fired) => Some(fired),
            Err(e) => {
                prometheus_error = Some(e.to_string());
                None
            }
        },
        _ => None,
    };
    let alerts = match fired {
        Some(fired) => Alerts {
            source: AlertSource::Prometheus,
            fired: fired
                .into_iter()
                .filter(|f| only.is_none() || f.server.as_deref() == only)
                .collect(),
        },
        None => {
            let mut fired: Vec<AlertFiring> = servers
                .iter()
                .flat_map(|s| alerts::from_transitions(&s.server, &s.history.transitions))
                .collect();
            fired.sort_by(|a, b| a.start.total_cmp(&b.start));
            Alerts {
                source: AlertSource::Store,
                fired,
            }
        }
    };
    Ok(Report {
        thresholds: review::review(&servers, crate::bundle::RULES_YML),
        backup: backup(store, since, until).await?,
        alerts,
        prometheus_error,
        generated_at: crate::wall_clock::unix_seconds(std::time::SystemTime::now()),
        since,
        until,
        fleet,
        servers,
        capacity: capacity(store, since, until, max_bytes).await?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::backup::{Trigger, backup_into, record_run};
    use crate::store::writer::write_batch;
    use crate::store::{DefinitionChangeRow, ProbeRow, Record};
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    fn probe(ts: f64, up: bool) -> Record {
        Record::Probe(ProbeRow {
            ts,
            server: "s".into(),
            check_type: "liveness".into(),
            up,
            success: up,
            health: if up { "HEALTHY" } else { "UNHEALTHY" }.into(),
            duration_ms: 30.0,
            latency_ms: Some(20.0),
            failure_class: None,
            failure_stage: None,
            error: None,
            stages: "{}".into(),
            trace_id: None,
        })
    }

    #[tokio::test]
    async fn a_report_holds_the_periods_tool_changes_backup_and_threshold_review() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("h.db")).await.expect("open");
        let now = crate::wall_clock::unix_seconds(SystemTime::now());
        let since = now - 600.0;
        let mut records: Vec<Record> = (0..60)
            .map(|i| probe(since + i as f64 * 10.0, true))
            .collect();
        for (ts, tool) in [(since - 5.0, "before"), (since + 100.0, "inside")] {
            records.push(Record::DefinitionChange(DefinitionChangeRow {
                ts,
                server: "s".into(),
                kind: "tool".into(),
                tool: tool.into(),
                change: "modified".into(),
                old_sha256: Some("a".into()),
                new_sha256: Some("b".into()),
                fields: r#"[{"field":"description","old":"x","new":"y"}]"#.into(),
            }));
        }
        write_batch(&store, &records).await.expect("write");
        let started = SystemTime::now() - Duration::from_secs(120);
        let file = dir.path().join("b.db");
        let done = backup_into(&store, &file).await;
        assert!(done.is_ok(), "{done:?}");
        record_run(
            &store,
            started,
            Trigger::Cli,
            &file,
            &done,
            Duration::from_secs(1),
        )
        .await
        .expect("record");
        let sources = Sources {
            max_bytes: 1 << 30,
            prometheus: None,
        };
        let r = build(&store, since, now, None, &sources)
            .await
            .expect("report");
        let s = &r.servers[0];
        let tools: Vec<(&str, &[String])> = s
            .tool_changes
            .iter()
            .map(|c| (c.tool.as_str(), c.fields.as_slice()))
            .collect();
        assert_eq!(tools, vec![("inside", &["description".to_string()][..])]);
        let started = started
            .duration_since(UNIX_EPOCH)
            .expect("epoch")
            .as_secs_f64();
        assert_eq!(r.backup.last_success, Some(started));
        let age = r.backup.age_seconds.expect("age");
        assert!((age - (now - started)).abs() < 1e-6, "{age}");
        assert_eq!((r.backup.runs_in_period, r.backup.failed_in_period), (1, 0));
        let slow = r
            .thresholds
            .iter()
            .find(|t| t.alert == "MCPSlowResponseTime")
            .expect("reviewed");
        // Every probe took 20 ms: the worst slot p95 is that of 20 ms in the buckets.
        let expected = percentiles(&[0.020]).p95_ms.map(|ms| ms / 1e3);
        assert_eq!(slow.observed, expected);
        assert_eq!((slow.threshold, slow.suggested), (Some(5.0), Some(0.1)));
        assert_eq!(r.alerts.source, AlertSource::Store);
        assert!(r.alerts.fired.is_empty());
        store.close().await;
    }

    #[test]
    fn percentiles_come_from_the_period_buckets_as_histogram_quantile_does() {
        // 100 observations: 90 at 20 ms, 10 at 3 s. Buckets 0.025 and 5 hold them.
        let mut latencies = vec![0.020; 90];
        latencies.extend(vec![3.0; 10]);
        let p = percentiles(&latencies);
        assert_eq!(p.observations, 100);
        // Rank 50 of 90 in (0.01, 0.025]: 10 + 15 * 50/90 ms.
        let p50 = p.p50_ms.expect("p50");
        assert!((p50 - (10.0 + 15.0 * 50.0 / 90.0)).abs() < 1e-9, "{p50}");
        // Rank 99 falls in (2.5, 5]: 2500 + 2500 * 9/10 ms.
        let p99 = p.p99_ms.expect("p99");
        assert!((p99 - 4750.0).abs() < 1e-9, "{p99}");
        assert_eq!(percentiles(&[]).p50_ms, None);
    }
}
