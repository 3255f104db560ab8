//! `kind = "postgres"`: connect with sqlx, run `SELECT 1`, read the server version. Tells apart
//! refused, timed out, authentication failed and database missing.

use std::str::FromStr;
use std::time::{Duration, SystemTime};

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection};

use tokio::time::Instant;

use super::{DependencyCheck, DependencyFailure, ms};
use crate::config::secret::{SecretSource, read_secret};

/// One check: connect (timed), `SELECT 1` (timed), `SHOW server_version`, close.
pub(super) async fn check(
    dsn: &SecretSource,
    password: Option<&SecretSource>,
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
        }
    }
    // Closing politely is best effort and bounded; dropping the connection closes the socket.
    let _ = tokio::time::timeout(Duration::from_secs(1), conn.close()).await;
    result
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
