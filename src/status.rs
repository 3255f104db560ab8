//! The status board: what `/`, `/api/servers` and `/health` show for each server, kept current
//! by the assessments it is handed.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock, RwLockWriteGuard};
use std::time::Duration;

use serde::Serialize;

use crate::assessment::{Assessment, Cause, Sink};
use crate::deps::ServerDependency;
use crate::health::Health;
use crate::probe::catalog::ToolTokens;
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
    /// The last tool catalog listed: its context cost, largest tools, lock comparison
    /// (docs/tool-integrity.md); `None` until a readiness probe listed one.
    pub tools: Option<ToolsStatus>,
}

/// What the status page and the API show of a server's tool catalog.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolsStatus {
    /// Tools listed.
    pub count: usize,
    /// SHA-256 of the catalog text.
    pub sha256: String,
    /// Bytes of the catalog text (`mcp_tools_list_bytes`).
    pub bytes: usize,
    /// o200k_base tokens of the catalog text (`mcp_tools_list_tokens`).
    pub tokens: usize,
    /// The configured `tools_token_budget`.
    pub token_budget: u64,
    /// The largest tools by tokens, largest first.
    pub largest: Vec<ToolTokens>,
    /// Prompts the server lists; `None` when their listing failed.
    pub prompts: Option<usize>,
    /// Resource templates the server lists; `None` when their listing failed.
    pub resource_templates: Option<usize>,
    /// Definitions (tools, prompts, resource templates) not matching the approved lock; `None`
    /// without `tools_lock`.
    pub unapproved: Option<usize>,
    /// What differs from the lock, in words; `None` without a lock or when it matches.
    pub lock_differences: Option<String>,
}

impl ToolsStatus {
    /// The tool status of an assessment, `None` before a catalog is known.
    fn of(a: &Assessment) -> Option<ToolsStatus> {
        let known = a.catalog.known.as_ref()?;
        let lock = a.catalog.lock.as_deref();
        Some(ToolsStatus {
            count: known.definitions.tools.len(),
            prompts: known.definitions.prompts.as_ref().map(|p| p.len()),
            resource_templates: known
                .definitions
                .resource_templates
                .as_ref()
                .map(|t| t.len()),
            sha256: known.definitions.sha256.clone(),
            bytes: known.cost().bytes,
            tokens: known.cost().tokens,
            token_budget: a.server.tools_token_budget,
            largest: known.cost().largest.clone(),
            unapproved: lock.map(|l| l.unapproved()),
            lock_differences: lock.filter(|l| l.mismatched()).map(|l| l.summary()),
        })
    }
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
                    tools: None,
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
        if let Some(tools) = ToolsStatus::of(a) {
            status.tools = Some(tools);
        }
    }
}
