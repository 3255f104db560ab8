//! `/api/dependencies`: every configured dependency, its last check and the servers using it.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::deps::{DependencyBoard, DependencyState, Dependents};
use crate::health::HealthStatus;

/// One dependency as the endpoint shows it.
#[derive(Debug, Serialize)]
pub struct DependencyView {
    /// Name from the configuration.
    pub name: String,
    /// `postgres`, `http`, `tcp` or `filesystem`.
    pub kind: &'static str,
    /// Whether servers using it are UNHEALTHY (true) or DEGRADED (false) when it is down.
    pub critical: bool,
    /// Seconds between checks.
    pub interval_seconds: f64,
    /// Status of the last check; UNKNOWN before the first.
    pub status: HealthStatus,
    /// What the last check observed when not healthy.
    pub reason: Option<String>,
    /// Unix time the last check started.
    pub checked_at_unix: Option<f64>,
    /// Duration of the last check.
    pub duration_seconds: Option<f64>,
    /// Facts of the last check (server version, free space, HTTP status...).
    pub details: BTreeMap<&'static str, String>,
    /// Unix time before which no request is sent, while a rate limit is respected.
    pub backoff_until_unix: Option<f64>,
    /// Servers whose `depends_on` names it.
    pub used_by: Vec<String>,
}

/// Every dependency on the board, by name, with the servers using it.
pub fn views(board: &DependencyBoard, dependents: &Dependents) -> Vec<DependencyView> {
    let board = board.read().unwrap_or_else(|p| p.into_inner());
    let dependents = dependents.read().unwrap_or_else(|p| p.into_inner());
    board
        .values()
        .map(|state| {
            let mut used_by = dependents.get(&state.name).cloned().unwrap_or_default();
            used_by.sort();
            view(state, used_by)
        })
        .collect()
}

fn view(state: &DependencyState, used_by: Vec<String>) -> DependencyView {
    let last = state.last.as_ref();
    DependencyView {
        name: state.name.clone(),
        kind: state.kind,
        critical: state.critical,
        interval_seconds: state.interval.as_secs_f64(),
        status: state.status(),
        reason: state.reason(),
        checked_at_unix: state.checked_at_unix(),
        duration_seconds: last.map(|c| c.duration.as_secs_f64()),
        details: state.details(),
        backoff_until_unix: state.backoff_until_unix,
        used_by,
    }
}
