//! `kind = "postgres"`: connect with sqlx, run `SELECT 1`, read the server version. Tells apart
//! refused, timed out, authentication failed and database missing. After a passing `SELECT 1`
//! it reads the server's own figures ([`PostgresStats`]): client connections by state from
//! `pg_stat_activity` against `max_connections`, active queries older than the threshold, and
//! `pg_stat_database.checksum_failures` where data checksums are on. Those reads never fail
//! the check: a role without `pg_monitor` sees other users' sessions without a state (counted
//! as `unknown`).

use std::str::FromStr;
use std::time::{Duration, SystemTime};

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection};

use tokio::time::Instant;

use serde::Serialize;

use super::{DependencyCheck, DependencyFailure, ms};
use crate::config::secret::{SecretSource, read_secret};

/// The `state` label values of `mcp_dependency_postgres_connections`: `pg_stat_activity.state`
/// with spaces and parentheses turned into underscores, and `unknown` for sessions whose state
/// the monitoring role may not see. Every one is reported, at 0 when no session is in it.
pub const CONNECTION_STATES: [&str; 7] = [
    "active",
    "idle",
    "idle_in_transaction",
    "idle_in_transaction_aborted",
    "fastpath_function_call",
    "disabled",
    "unknown",
];

/// What PostgreSQL reports about its own load, read by one check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PostgresStats {
    /// Client backends by state (every state of [`CONNECTION_STATES`], 0 included); the
    /// checker's own connection counts as `active`.
    pub connections: Vec<(&'static str, u64)>,
    /// The server's `max_connections`.
    pub max_connections: u64,
    /// Active client queries running longer than the dependency's `long_query_threshold`.
    pub long_running_queries: u64,
    /// Sum of `pg_stat_database.checksum_failures` (cumulative, since the statistics were
    /// reset); `None` when data checksums are off or the server is older than PostgreSQL 12.
    pub checksum_failures: Option<u64>,
}

/// One check: connect (timed), `SELECT 1` (timed), `SHOW server_version`, the server's
/// figures ([`PostgresStats`]), close.
pub(super) async fn check(
    dsn: &SecretSource,
    password: Option<&SecretSource>,
    long_query_threshold: Duration,
    timeout: Duration,
    started_at: SystemTime,
) -> DependencyCheck {
    let mut result = DependencyCheck::healthy(started_at);
    let options = match options(dsn, password) {
        Ok(o) => o,
        Err(reason) => {
            result.fail(DependencyFailure::Misconfigured, reason);
            return result;
        }
    };
    let deadline = Instant::now() + timeout;
    let connect_start = Instant::now();
    let connected = tokio::time::timeout_at(deadline, options.connect()).await;
    let mut conn: PgConnection = match connected {
        Err(_) => {
            result.fail(
                DependencyFailure::TimedOut,
                format!("timed out after {} connecting", ms(timeout)),
            );
            return result;
        }
        Ok(Err(err)) => {
            let (failure, reason) = classify(&err);
            result.fail(failure, reason);
            return result;
        }
        Ok(Ok(conn)) => conn,
    };
    result.details.insert(
        "connect_ms",
        format!("{:.1}", connect_start.elapsed().as_secs_f64() * 1000.0),
    );
    let query_start = Instant::now();
    let queried = tokio::time::timeout_at(deadline, async {
        let one: i32 = sqlx::query_scalar("SELECT 1").fetch_one(&mut conn).await?;
        let version: String = sqlx::query_scalar("SHOW server_version")
            .fetch_one(&mut conn)
            .await?;
        Ok::<_, sqlx::Error>((one, version))
    })
    .await;
    match queried {
        Err(_) => result.fail(
            DependencyFailure::TimedOut,
            format!("timed out after {} running SELECT 1", ms(timeout)),
        ),
        Ok(Err(err)) => {
            let (failure, reason) = classify(&err);
            result.fail(failure, format!("SELECT 1 failed: {reason}"));
        }
        Ok(Ok((one, version))) => {
            result.details.insert(
                "query_ms",
                format!("{:.1}", query_start.elapsed().as_secs_f64() * 1000.0),
            );
            result.details.insert("server_version", version);
            if one != 1 {
                result.fail(DependencyFailure::Error, format!("SELECT 1 returned {one}"));
            }
            match tokio::time::timeout_at(deadline, stats(&mut conn, long_query_threshold)).await {
                Ok(Ok(stats)) => result.postgres = Some(stats),
                Ok(Err(err)) => {
                    tracing::debug!(error = %err, "cannot read PostgreSQL statistics");
                }
                Err(_) => tracing::debug!("reading PostgreSQL statistics timed out"),
            }
        }
    }
    // Closing politely is best effort and bounded; dropping the connection closes the socket.
    let _ = tokio::time::timeout(Duration::from_secs(1), conn.close()).await;
    result
}

/// Reads [`PostgresStats`] on an open connection.
async fn stats(
    conn: &mut PgConnection,
    long_query_threshold: Duration,
) -> Result<PostgresStats, sqlx::Error> {
    let rows: Vec<(Option<String>, i64)> = sqlx::query_as(
        "SELECT state, count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' GROUP BY state",
    )
    .fetch_all(&mut *conn)
    .await?;
    let max_connections: String = sqlx::query_scalar("SHOW max_connections")
        .fetch_one(&mut *conn)
        .await?;
    let long_running: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND state = 'active' AND pid <> pg_backend_pid() AND query_start < now() - make_interval(secs => $1)",
    )
    .bind(long_query_threshold.as_secs_f64())
    .fetch_one(&mut *conn)
    .await?;
    // The column exists from PostgreSQL 12 and is NULL where data checksums are off; an older
    // server's error leaves the figure out.
    let checksum_failures: Option<i64> =
        sqlx::query_scalar("SELECT sum(checksum_failures)::bigint FROM pg_stat_database")
            .fetch_one(&mut *conn)
            .await
            .unwrap_or(None);
    Ok(PostgresStats {
        connections: by_state(&rows),
        max_connections: max_connections.trim().parse().unwrap_or(0),
        long_running_queries: u64::try_from(long_running).unwrap_or(0),
        checksum_failures: checksum_failures.and_then(|n| u64::try_from(n).ok()),
    })
}

/// Counts per label value of [`CONNECTION_STATES`] from `(state, count)` rows.
fn by_state(rows: &[(Option<String>, i64)]) -> Vec<(&'static str, u64)> {
    let mut counts: Vec<(&'static str, u64)> = CONNECTION_STATES.iter().map(|s| (*s, 0)).collect();
    for (state, n) in rows {
        let label = state
            .as_deref()
            .map(|s| {
                s.replace(['(', ')'], "")
                    .trim()
                    .replace(' ', "_")
                    .to_ascii_lowercase()
            })
            .unwrap_or_default();
        let slot = CONNECTION_STATES
            .iter()
            .position(|s| *s == label)
            .unwrap_or(CONNECTION_STATES.len() - 1);
        counts[slot].1 += u64::try_from(*n).unwrap_or(0);
    }
    counts
}

fn options(
    dsn: &SecretSource,
    password: Option<&SecretSource>,
) -> Result<PgConnectOptions, String> {
    let env = |name: &str| std::env::var(name).ok();
    let dsn = read_secret(dsn, env).map_err(|e| e.to_string())?;
    let mut options = PgConnectOptions::from_str(&dsn).map_err(|e| {
        // The DSN may contain a password: never echo it.
        let kind = match e {
            sqlx::Error::Configuration(_) => "invalid",
            _ => "unusable",
        };
        format!("the PostgreSQL DSN is {kind}; expected postgres://user@host:port/database")
    })?;
    if let Some(source) = password {
        options = options.password(&read_secret(source, env).map_err(|e| e.to_string())?);
    }
    Ok(options.application_name("mcp-exporter"))
}

/// Maps a sqlx error to a failure class and an operator-facing reason.
fn classify(err: &sqlx::Error) -> (DependencyFailure, String) {
    match err {
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.to_string()).unwrap_or_default();
            let message = db.message().to_string();
            match code.as_str() {
                "28P01" | "28000" => (
                    DependencyFailure::AuthFailed,
                    format!("authentication failed: {message} (SQLSTATE {code})"),
                ),
                "3D000" => (
                    DependencyFailure::DatabaseMissing,
                    format!("database missing: {message} (SQLSTATE {code})"),
                ),
                "57P03" | "57P01" => (
                    DependencyFailure::Refused,
                    format!("not accepting connections: {message} (SQLSTATE {code})"),
                ),
                _ => (
                    DependencyFailure::Error,
                    format!("server error: {message} (SQLSTATE {code})"),
                ),
            }
        }
        sqlx::Error::Io(io) => match io.kind() {
            std::io::ErrorKind::ConnectionRefused => (
                DependencyFailure::Refused,
                format!("connection refused: {io}"),
            ),
            std::io::ErrorKind::TimedOut => {
                (DependencyFailure::TimedOut, format!("timed out: {io}"))
            }
            _ => (DependencyFailure::Unreachable, format!("unreachable: {io}")),
        },
        sqlx::Error::Tls(e) => (DependencyFailure::Error, format!("TLS failed: {e}")),
        sqlx::Error::Configuration(_) => (
            DependencyFailure::Misconfigured,
            "the PostgreSQL DSN is invalid".to_string(),
        ),
        other => (DependencyFailure::Error, other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_are_labelled_and_every_one_reported() {
        let rows = vec![
            (Some("active".to_string()), 2),
            (Some("idle in transaction (aborted)".to_string()), 1),
            (Some("idle".to_string()), 5),
            (None, 3),
            (Some("some future state".to_string()), 1),
        ];
        let counts = by_state(&rows);
        assert_eq!(
            counts,
            vec![
                ("active", 2),
                ("idle", 5),
                ("idle_in_transaction", 0),
                ("idle_in_transaction_aborted", 1),
                ("fastpath_function_call", 0),
                ("disabled", 0),
                ("unknown", 4),
            ]
        );
    }
}
