//! The status board: what `/`, `/api/servers` and `/health` show for each server, kept current
//! by the assessments it is handed.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock, RwLockWriteGuard};
use std::time::Duration;

use serde::Serialize;

use crate::assessment::{Assessment, Cause, Sink};
use crate::deps::ServerDependency;
use crate::health::Health;
use crate::probe::{ProbeFailure, ProbeOutcome};
use crate::process::ProcessStatus;

/// What the status page and the API show for one server.
#[derive(Debug, Clone, Serialize)]
pub struct ServerStatus {
    /// Server name.
    pub name: String,
    /// `stdio`, `http` or `sse`.
    pub transport: &'static str,
    /// `liveness` or `readiness`.
    pub check: &'static str,
    /// Probe interval.
    #[serde(serialize_with = "crate::serde_seconds::duration")]
    pub interval: Duration,
    /// Current health and its reasons.
    pub health: Health,
    /// The last probe, once one completed.
    pub last_probe: Option<Arc<ProbeOutcome>>,
    /// The most recent failure, kept after later successes.
    pub last_failure: Option<TimedFailure>,
    /// Failed probes in a row.
    pub consecutive_failures: u64,
    /// The server's dependencies as of its last assessment (`depends_on` order).
    pub dependencies: Vec<ServerDependency>,
    /// The server's process: resources, restarts, crash loop, remediation.
    pub process: ProcessStatus,
}

/// A failure with the time it was observed.
#[derive(Debug, Clone, Serialize)]
pub struct TimedFailure {
    /// Unix time of the probe that failed.
    pub at_unix: f64,
    /// What failed.
    pub failure: ProbeFailure,
}

/// Server name -> status; written by assessments, read by the HTTP handlers.
#[derive(Debug, Clone, Default)]
pub struct StatusBoard(Arc<RwLock<BTreeMap<String, ServerStatus>>>);

impl StatusBoard {
    /// Every server's status, in name order.
    pub fn snapshot(&self) -> Vec<ServerStatus> {
        let board = self.0.read().unwrap_or_else(|p| p.into_inner());
        board.values().cloned().collect()
    }

    /// One server's status.
    pub fn get(&self, server: &str) -> Option<ServerStatus> {
        let board = self.0.read().unwrap_or_else(|p| p.into_inner());
        board.get(server).cloned()
    }

    fn write(&self) -> RwLockWriteGuard<'_, BTreeMap<String, ServerStatus>> {
        self.0.write().unwrap_or_else(|p| p.into_inner())
    }
}

impl Sink for StatusBoard {
    fn server_removed(&self, server: &str) {
        self.write().remove(server);
    }

    fn assessed(&self, a: &Assessment) {
        let mut board = self.write();
        if a.cause == Cause::Start {
            board.insert(
                a.server.name.clone(),
                ServerStatus {
                    name: a.server.name.clone(),
                    transport: a.server.transport.kind(),
                    check: a.server.check.as_str(),
                    interval: a.server.interval,
                    health: a.health.clone(),
                    last_probe: None,
                    last_failure: None,
                    consecutive_failures: 0,
                    dependencies: a.dependencies.clone(),
                    process: ProcessStatus::default(),
                },
            );
            return;
        }
        let Some(status) = board.get_mut(a.name()) else {
            return;
        };
        if let Some(outcome) = a.new_probe() {
            match &outcome.failure {
                Some(failure) => {
                    status.consecutive_failures += 1;
                    status.last_failure = Some(TimedFailure {
                        at_unix: crate::wall_clock::unix_seconds(outcome.started_at),
                        failure: failure.clone(),
                    });
                }
                None => status.consecutive_failures = 0,
            }
            status.last_probe = a.outcome.clone();
        }
        if let Some(process) = &a.process {
            status.process = process.clone();
        }
        status.health = a.health.clone();
        status.dependencies = a.dependencies.clone();
    }
}
