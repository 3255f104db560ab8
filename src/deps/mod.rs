//! Dependency checks: what an MCP server needs (PostgreSQL, HTTP APIs, TCP services,
//! filesystems), declared once in `[[dependencies]]`, checked on their own schedule by
//! [`DependencyRunner`] however many servers refer to them, and read by the health model.

pub mod config;
mod filesystem;
mod http_check;
pub mod metrics;
mod postgres;
mod runner;
pub mod sink;
mod tcp;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use serde::Serialize;

pub use config::{DependencyConfig, DependencySpec, StatusRange, StatusRangeError};
pub use http_check::HttpClients;
pub use postgres::{CONNECTION_STATES, PostgresStats};
pub use runner::{DependencyRunner, Dependents, next_delay};

use crate::health::HealthStatus;
use crate::tls::TlsObservation;

/// Time a check gets beyond its timeout for cleanup (closing a connection) before it is
/// abandoned and reported timed out.
const CHECK_GRACE: Duration = Duration::from_secs(2);

/// Why a dependency check did not pass, in words an operator acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DependencyFailure {
    /// The secret (DSN, password, header variable) is unavailable or the settings cannot work;
    /// the check could not run.
    Misconfigured,
    /// Nothing listens: connection refused.
    Refused,
    /// No answer within the check's timeout.
    TimedOut,
    /// Name resolution or the network failed otherwise.
    Unreachable,
    /// The service rejected the credentials.
    AuthFailed,
    /// PostgreSQL: the database does not exist.
    DatabaseMissing,
    /// HTTP: the status is outside the expected range.
    BadStatus,
    /// HTTP: the body lacks the expected text.
    BodyMismatch,
    /// HTTP: 429 (or a rate-limit header at zero); checks back off.
    RateLimited,
    /// Filesystem: the path does not exist.
    Missing,
    /// Filesystem: the path cannot be read.
    NotReadable,
    /// Filesystem: a file cannot be created in the path.
    NotWritable,
    /// Filesystem: free space or free inodes under the threshold.
    LowSpace,
    /// Anything else the service answered with (TLS, protocol, server errors).
    Error,
}

impl DependencyFailure {
    /// The snake_case name used in output.
    pub fn as_str(self) -> &'static str {
        match self {
            DependencyFailure::Misconfigured => "misconfigured",
            DependencyFailure::Refused => "refused",
            DependencyFailure::TimedOut => "timed_out",
            DependencyFailure::Unreachable => "unreachable",
            DependencyFailure::AuthFailed => "auth_failed",
            DependencyFailure::DatabaseMissing => "database_missing",
            DependencyFailure::BadStatus => "bad_status",
            DependencyFailure::BodyMismatch => "body_mismatch",
            DependencyFailure::RateLimited => "rate_limited",
            DependencyFailure::Missing => "missing",
            DependencyFailure::NotReadable => "not_readable",
            DependencyFailure::NotWritable => "not_writable",
            DependencyFailure::LowSpace => "low_space",
            DependencyFailure::Error => "error",
        }
    }
}

impl fmt::Display for DependencyFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Rate-limit state an HTTP API reported (`Retry-After`, `X-RateLimit-*`, `RateLimit-*`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RateLimit {
    /// Requests left in the window, when the API says.
    pub remaining: Option<u64>,
    /// How long to wait before the next request, when the API asks for it.
    #[serde(serialize_with = "crate::serde_seconds::option")]
    pub retry_after: Option<Duration>,
}

/// The result of one check of one dependency.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DependencyCheck {
    /// HEALTHY: passed; DEGRADED: usable with a problem (low space, rate limited); UNHEALTHY:
    /// failed; UNKNOWN: the check could not run (e.g. its secret is not set).
    pub status: HealthStatus,
    /// The failure class when not healthy.
    pub failure: Option<DependencyFailure>,
    /// What was observed, for operators ("authentication failed: ...", "timed out after 500 ms").
    pub reason: Option<String>,
    /// When the check started.
    pub started_at: SystemTime,
    /// How long it took.
    #[serde(serialize_with = "crate::serde_seconds::duration")]
    pub duration: Duration,
    /// Kind-specific facts: server version, connect/query time, free bytes, HTTP status...
    pub details: BTreeMap<&'static str, String>,
    /// Rate-limit state (HTTP).
    pub rate_limit: RateLimit,
    /// What the TLS of an `https` answer showed (certificate expiry, version).
    pub tls: Option<TlsObservation>,
    /// PostgreSQL's own figures (connections, long queries, checksum failures), read after a
    /// passing `SELECT 1`.
    pub postgres: Option<PostgresStats>,
}

impl DependencyCheck {
    /// A passing check started at `started_at`; `duration` is filled by [`DependencyCheck::done`].
    pub fn healthy(started_at: SystemTime) -> Self {
        DependencyCheck {
            status: HealthStatus::Healthy,
            failure: None,
            reason: None,
            started_at,
            duration: Duration::ZERO,
            details: BTreeMap::new(),
            rate_limit: RateLimit::default(),
            tls: None,
            postgres: None,
        }
    }

    /// Marks the check failed (UNHEALTHY, or UNKNOWN for `Misconfigured`), keeping the first
    /// failure if one is already recorded.
    pub fn fail(&mut self, failure: DependencyFailure, reason: impl Into<String>) {
        if self.failure.is_some() && self.status <= HealthStatus::Unhealthy {
            return;
        }
        self.status = if failure == DependencyFailure::Misconfigured {
            HealthStatus::Unknown
        } else {
            HealthStatus::Unhealthy
        };
        self.failure = Some(failure);
        self.reason = Some(reason.into());
    }

    /// Marks the check DEGRADED unless it already failed.
    pub fn degrade(&mut self, failure: DependencyFailure, reason: impl Into<String>) {
        if self.status != HealthStatus::Healthy {
            return;
        }
        self.status = HealthStatus::Degraded;
        self.failure = Some(failure);
        self.reason = Some(reason.into());
    }

    /// Sets the duration from the start time.
    pub fn done(mut self, elapsed: Duration) -> Self {
        self.duration = elapsed;
        self
    }

    /// 1 when the dependency is usable (HEALTHY or DEGRADED), else 0.
    pub fn up(&self) -> bool {
        matches!(self.status, HealthStatus::Healthy | HealthStatus::Degraded)
    }
}

/// What the board holds for one dependency.
#[derive(Debug, Clone, Serialize)]
pub struct DependencyState {
    /// Name.
    pub name: String,
    /// `postgres`, `http`, `tcp` or `filesystem`.
    pub kind: &'static str,
    /// Whether servers depending on it are UNHEALTHY (true) or DEGRADED (false) when it is down.
    pub critical: bool,
    /// Interval between checks.
    #[serde(serialize_with = "crate::serde_seconds::duration")]
    pub interval: Duration,
    /// The last check, once one finished.
    pub last: Option<DependencyCheck>,
    /// Unix time before which no request is sent (rate limits), when backing off.
    pub backoff_until_unix: Option<f64>,
}

impl DependencyState {
    /// The status the health model reads: UNKNOWN before the first check.
    pub fn status(&self) -> HealthStatus {
        self.last
            .as_ref()
            .map_or(HealthStatus::Unknown, |c| c.status)
    }

    /// What the last check observed when not healthy; "not checked yet" before the first.
    pub fn reason(&self) -> Option<String> {
        match &self.last {
            Some(check) => check.reason.clone(),
            None => Some("not checked yet".into()),
        }
    }

    /// Unix time the last check started.
    pub fn checked_at_unix(&self) -> Option<f64> {
        self.last
            .as_ref()
            .map(|c| crate::wall_clock::unix_seconds(c.started_at))
    }

    /// Facts of the last check (server version, free space, HTTP status...).
    pub fn details(&self) -> BTreeMap<&'static str, String> {
        self.last
            .as_ref()
            .map(|c| c.details.clone())
            .unwrap_or_default()
    }
}

/// Shared map from dependency name to its state; written by the runner, read by server tasks
/// and HTTP handlers.
pub type DependencyBoard = Arc<RwLock<BTreeMap<String, DependencyState>>>;

/// A dependency as one server sees it (status page, `/api/servers`, the CLI).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServerDependency {
    /// Name.
    pub name: String,
    /// Kind label.
    pub kind: &'static str,
    /// Whether it being down makes the server UNHEALTHY.
    pub critical: bool,
    /// Status of its last check (UNKNOWN before the first).
    pub status: HealthStatus,
    /// What the last check observed when not healthy.
    pub reason: Option<String>,
    /// Unix time of the last check.
    pub checked_at_unix: Option<f64>,
    /// Facts of the last check (server version, free space, HTTP status...).
    pub details: BTreeMap<&'static str, String>,
}

impl ServerDependency {
    /// The view the health model takes of it.
    pub fn as_health(&self) -> crate::health::DependencyHealth<'_> {
        crate::health::DependencyHealth {
            name: &self.name,
            critical: self.critical,
            status: self.status,
            reason: self.reason.as_deref(),
        }
    }
}

/// The current state of the dependencies named in `names`, in that order.
pub fn server_view(board: &DependencyBoard, names: &[String]) -> Vec<ServerDependency> {
    let board = board.read().unwrap_or_else(|p| p.into_inner());
    names
        .iter()
        .map(|name| match board.get(name) {
            Some(state) => ServerDependency {
                name: name.clone(),
                kind: state.kind,
                critical: state.critical,
                status: state.status(),
                reason: state.reason(),
                checked_at_unix: state.checked_at_unix(),
                details: state.details(),
            },
            None => ServerDependency {
                name: name.clone(),
                kind: "unknown",
                critical: true,
                status: HealthStatus::Unknown,
                reason: Some("not declared in [[dependencies]]".into()),
                checked_at_unix: None,
                details: BTreeMap::new(),
            },
        })
        .collect()
}

/// Runs one check of `config` now, bounded by its timeout (plus `CHECK_GRACE` for cleanup).
pub async fn check_once(config: &DependencyConfig, http: &HttpClients) -> DependencyCheck {
    let started_at = SystemTime::now();
    let start = tokio::time::Instant::now();
    let timeout = config.timeout;
    let work = async {
        match &config.spec {
            DependencySpec::Postgres {
                dsn,
                password,
                long_query_threshold,
            } => {
                postgres::check(
                    dsn,
                    password.as_ref(),
                    *long_query_threshold,
                    timeout,
                    started_at,
                )
                .await
            }
            DependencySpec::Http { .. } => {
                http_check::check(&config.spec, http, timeout, started_at).await
            }
            DependencySpec::Tcp { address } => tcp::check(address, timeout, started_at).await,
            DependencySpec::Filesystem { .. } => {
                filesystem::check(config.spec.clone(), timeout, started_at).await
            }
        }
    };
    let result = match tokio::time::timeout(timeout + CHECK_GRACE, work).await {
        Ok(check) => check,
        Err(_) => {
            let mut c = DependencyCheck::healthy(started_at);
            c.fail(
                DependencyFailure::TimedOut,
                format!("timed out after {} ms", timeout.as_millis()),
            );
            c
        }
    };
    result.done(start.elapsed())
}

/// Checks every dependency once, concurrently (for one-shot commands such as `check`); results
/// in the order of `dependencies`.
pub async fn check_all(dependencies: &[DependencyConfig]) -> Vec<DependencyCheck> {
    let clients = HttpClients::default();
    futures_util::future::join_all(dependencies.iter().map(|d| check_once(d, &clients))).await
}

/// Formats a duration as whole milliseconds, for reasons.
fn ms(d: Duration) -> String {
    format!("{} ms", d.as_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_failure_wins_and_misconfigured_is_unknown() {
        let mut c = DependencyCheck::healthy(SystemTime::now());
        c.degrade(DependencyFailure::LowSpace, "low");
        assert_eq!(c.status, HealthStatus::Degraded);
        assert!(c.up());
        c.fail(DependencyFailure::NotWritable, "ro");
        assert_eq!(c.status, HealthStatus::Unhealthy);
        c.fail(DependencyFailure::Missing, "later");
        assert_eq!(c.failure, Some(DependencyFailure::NotWritable));
        assert!(!c.up());
        let mut u = DependencyCheck::healthy(SystemTime::now());
        u.fail(DependencyFailure::Misconfigured, "PG_DSN unset");
        assert_eq!(u.status, HealthStatus::Unknown);
    }
}
