//! One pass per observation: what a probe (or a dependency change) means for a server,
//! decided once and handed by reference to every sink in turn.
//!
//! ```text
//! probe outcome + dependency view ──▶ ServerMemory::after_probe ──▶ Assessment
//!                  dependency view ──▶ ServerMemory::after_dependencies ──▶ Assessment
//!                                                        │ Sinks::assessed
//!                        status board · metrics · history store · security monitor · log
//! ```
//!
//! [`ServerMemory`] holds the little a server's task must remember between observations (the
//! last probe, the last health, the last catalog hash, how many sessions it opened), so the
//! decisions (health, transition, catalog change, session restart) are made here and nowhere
//! else: no sink reads a decision back from another sink.

pub mod catalog;
mod log_sink;
mod sink;

pub use catalog::{CatalogNews, KnownCatalog, LockStatus};
pub use log_sink::LogSink;
pub use sink::{Sink, Sinks};

use std::sync::Arc;

use crate::deps::ServerDependency;
use crate::health::{self, DependencyHealth, Health, HealthStatus};
use crate::mcp::Notification;
use crate::probe::{ProbeOutcome, ServerConfig};
use crate::process::ProcessStatus;

/// What led to an assessment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// The server started being probed; nothing observed yet (health UNKNOWN).
    Start,
    /// A probe of the server finished.
    Probe,
    /// A dependency's status or reason changed between two probes; the last probe is reused.
    Dependency,
}

/// How a health change reads to an operator (the `kind` of a history transition).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransitionKind {
    /// Became UNHEALTHY.
    Down,
    /// Became DEGRADED.
    Degraded,
    /// Back to HEALTHY after UNHEALTHY or DEGRADED.
    Recovered,
    /// HEALTHY for the first time.
    Up,
    /// Back to UNKNOWN (a dependency could not be checked).
    Unknown,
}

impl TransitionKind {
    /// The transition between two statuses, `None` when they are equal.
    pub fn between(from: HealthStatus, to: HealthStatus) -> Option<TransitionKind> {
        if from == to {
            return None;
        }
        Some(match (from, to) {
            (_, HealthStatus::Unhealthy) => TransitionKind::Down,
            (_, HealthStatus::Degraded) => TransitionKind::Degraded,
            (HealthStatus::Unhealthy | HealthStatus::Degraded, HealthStatus::Healthy) => {
                TransitionKind::Recovered
            }
            (_, HealthStatus::Healthy) => TransitionKind::Up,
            (_, HealthStatus::Unknown) => TransitionKind::Unknown,
        })
    }

    /// The word stored in the history and shown by `mcp-exporter history`.
    pub fn as_str(self) -> &'static str {
        match self {
            TransitionKind::Down => "down",
            TransitionKind::Degraded => "degraded",
            TransitionKind::Recovered => "recovered",
            TransitionKind::Up => "up",
            TransitionKind::Unknown => "unknown",
        }
    }
}

/// A change of health status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// The status before.
    pub from: HealthStatus,
    /// The status now.
    pub to: HealthStatus,
    /// How it reads.
    pub kind: TransitionKind,
}

/// The tool catalog's content hash changed between two probes (schema drift).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatalogChange {
    /// Hash of the previous catalog.
    pub old_hash: u64,
    /// Hash of the new catalog.
    pub new_hash: u64,
    /// Tools in the new catalog.
    pub tools: usize,
}

/// What the server wrote since the last probe: `notifications/*` messages and stderr lines.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServerLogs {
    /// Notifications received.
    pub notifications: Vec<Notification>,
    /// Complete stderr lines of a stdio child.
    pub stderr_lines: Vec<String>,
}

/// Everything decided about one server from one observation.
#[derive(Debug, Clone)]
pub struct Assessment {
    /// The server's configuration entry.
    pub server: Arc<ServerConfig>,
    /// What led to it.
    pub cause: Cause,
    /// The probe it rests on: the new one ([`Cause::Probe`]), the last one
    /// ([`Cause::Dependency`]), none yet ([`Cause::Start`]).
    pub outcome: Option<Arc<ProbeOutcome>>,
    /// The health decided, with its reasons.
    pub health: Health,
    /// The server's dependencies as they stood ([`crate::deps::server_view`] order).
    pub dependencies: Vec<ServerDependency>,
    /// The health change, when the status changed.
    pub transition: Option<Transition>,
    /// This probe opened a new session after an earlier one (server restarted or reconnected).
    pub session_restarted: bool,
    /// The tool catalog changed since the previous probe that listed it.
    pub catalog_change: Option<CatalogChange>,
    /// The catalog's fingerprints, context cost, per-tool changes and lock comparison
    /// (docs/tool-integrity.md).
    pub catalog: CatalogNews,
    /// The server's process, sampled right after the probe (`None` unless [`Cause::Probe`]).
    pub process: Option<ProcessStatus>,
    /// What the server wrote since the previous probe (empty unless [`Cause::Probe`]).
    pub logs: ServerLogs,
}

impl Assessment {
    /// The server's name.
    pub fn name(&self) -> &str {
        &self.server.name
    }

    /// The probe that was just run ([`Cause::Probe`] only).
    pub fn new_probe(&self) -> Option<&ProbeOutcome> {
        match self.cause {
            Cause::Probe => self.outcome.as_deref(),
            Cause::Start | Cause::Dependency => None,
        }
    }
}

/// What one server's task remembers between observations.
#[derive(Debug, Default)]
pub struct ServerMemory {
    last_probe: Option<Arc<ProbeOutcome>>,
    last_status: Option<HealthStatus>,
    catalog_hash: Option<u64>,
    catalog: catalog::CatalogMemory,
    sessions: u64,
    /// A probe presenting a credential got past the handshake: the server accepted it.
    credential_accepted: bool,
    /// The last probe's 401 refused a credential accepted before.
    credential_rejected: bool,
}

impl ServerMemory {
    /// The assessment of a server that has just been configured: UNKNOWN, nothing observed.
    pub fn at_start(
        &mut self,
        server: Arc<ServerConfig>,
        dependencies: Vec<ServerDependency>,
    ) -> Assessment {
        let health = decide(&server, None, &dependencies, None);
        self.last_status = Some(health.status);
        Assessment {
            server,
            cause: Cause::Start,
            outcome: None,
            health,
            dependencies,
            transition: None,
            session_restarted: false,
            catalog_change: None,
            catalog: CatalogNews::default(),
            process: None,
            logs: ServerLogs::default(),
        }
    }

    /// The assessment of a finished probe.
    pub fn after_probe(
        &mut self,
        server: Arc<ServerConfig>,
        outcome: ProbeOutcome,
        dependencies: Vec<ServerDependency>,
        process: Option<ProcessStatus>,
        logs: ServerLogs,
    ) -> Assessment {
        self.credential_rejected = self.judge_credential(&outcome);
        let catalog = self.catalog.observe(&server, &outcome);
        let health = decide_remembering(
            &server,
            Some(&outcome),
            self.credential_rejected,
            &dependencies,
            catalog.lock.as_deref(),
        );
        let transition = self.transition_to(health.status);
        let catalog_change = self.catalog_change(&outcome);
        let session_restarted = outcome.new_session && {
            self.sessions += 1;
            self.sessions > 1
        };
        let outcome = Arc::new(outcome);
        self.last_probe = Some(Arc::clone(&outcome));
        Assessment {
            server,
            cause: Cause::Probe,
            outcome: Some(outcome),
            health,
            dependencies,
            transition,
            session_restarted,
            catalog_change,
            catalog,
            process,
            logs,
        }
    }

    /// The assessment after a dependency changed, from the last probe; `None` before the
    /// first probe (the server is UNKNOWN until then whatever its dependencies say).
    pub fn after_dependencies(
        &mut self,
        server: Arc<ServerConfig>,
        dependencies: Vec<ServerDependency>,
    ) -> Option<Assessment> {
        let outcome = Arc::clone(self.last_probe.as_ref()?);
        let catalog = self.catalog.unchanged();
        let health = decide_remembering(
            &server,
            Some(&outcome),
            self.credential_rejected,
            &dependencies,
            catalog.lock.as_deref(),
        );
        let transition = self.transition_to(health.status);
        Some(Assessment {
            server,
            cause: Cause::Dependency,
            outcome: Some(outcome),
            health,
            dependencies,
            transition,
            session_restarted: false,
            catalog_change: None,
            catalog,
            process: None,
            logs: ServerLogs::default(),
        })
    }

    /// Whether `outcome`'s 401 refused a credential an earlier probe got through with; notes
    /// an accepted credential.
    fn judge_credential(&mut self, outcome: &ProbeOutcome) -> bool {
        let credentials = &outcome.credentials;
        if credentials.refused {
            return self.credential_accepted;
        }
        if credentials.presented && outcome.up {
            self.credential_accepted = true;
        }
        false
    }

    fn transition_to(&mut self, status: HealthStatus) -> Option<Transition> {
        let from = self
            .last_status
            .replace(status)
            .unwrap_or(HealthStatus::Unknown);
        TransitionKind::between(from, status).map(|kind| Transition {
            from,
            to: status,
            kind,
        })
    }

    fn catalog_change(&mut self, outcome: &ProbeOutcome) -> Option<CatalogChange> {
        let catalog = outcome.catalog.as_ref()?;
        let old_hash = self.catalog_hash.replace(catalog.content_hash)?;
        (old_hash != catalog.content_hash).then_some(CatalogChange {
            old_hash,
            new_hash: catalog.content_hash,
            tools: catalog.count,
        })
    }
}

/// The health of `server` from its probe, its dependencies and its catalog's comparison with
/// its approved lock: the one call of the health model, shared by the daemon and
/// `mcp-exporter check`.
pub fn decide(
    server: &ServerConfig,
    outcome: Option<&ProbeOutcome>,
    dependencies: &[ServerDependency],
    lock: Option<&LockStatus>,
) -> Health {
    decide_remembering(server, outcome, false, dependencies, lock)
}

/// [`decide`] with what the server's memory adds: a credential rejected after it had worked.
fn decide_remembering(
    server: &ServerConfig,
    outcome: Option<&ProbeOutcome>,
    credential_rejected: bool,
    dependencies: &[ServerDependency],
    lock: Option<&LockStatus>,
) -> Health {
    let views: Vec<DependencyHealth<'_>> = dependencies
        .iter()
        .map(ServerDependency::as_health)
        .collect();
    let summary = lock.map(LockStatus::summary).unwrap_or_default();
    let unapproved = catalog::weighed(lock, &summary);
    health::assess_observations(
        outcome,
        credential_rejected,
        server.degraded_latency,
        &views,
        unapproved.as_ref(),
    )
}

#[cfg(test)]
mod tests;
