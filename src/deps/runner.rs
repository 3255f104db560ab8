//! Runs every dependency's checks: one task per dependency (so a shared dependency is checked
//! once per interval however many servers use it), each with its own interval, timeout and
//! minimum interval, backing off while the API asks for it (`Retry-After`, rate limits).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::{DependencyBoard, DependencyCheck, DependencyConfig, DependencyState, check_once};
use crate::health::HealthStatus;
use crate::metrics::Metrics;

/// Upper bound of the random delay before a dependency's first check.
const MAX_START_SPREAD: Duration = Duration::from_millis(500);

/// The wait between the start of a check and the start of the next: the dependency's period
/// (`max(interval, min_interval)`), or longer when the API asked to wait (`Retry-After`, an
/// exhausted rate limit).
pub fn next_delay(period: Duration, check: &DependencyCheck) -> Duration {
    period.max(check.rate_limit.retry_after.unwrap_or(Duration::ZERO))
}

struct Task {
    config: DependencyConfig,
    stop: watch::Sender<bool>,
    handle: JoinHandle<()>,
}

/// Owns the per-dependency tasks.
pub struct DependencyRunner {
    metrics: Arc<Metrics>,
    board: DependencyBoard,
    client: reqwest::Client,
    tasks: HashMap<String, Task>,
    changes: Arc<watch::Sender<u64>>,
    dependents: Dependents,
    history: Option<crate::store::writer::StoreHandle>,
}

/// Dependency name -> the servers whose `depends_on` lists it (for attributing security events
/// and for `/api/dependencies`).
pub type Dependents = Arc<std::sync::RwLock<HashMap<String, Vec<String>>>>;

impl DependencyRunner {
    /// A runner with no dependencies yet, publishing to `metrics` and `board`.
    pub fn new(metrics: Arc<Metrics>, board: DependencyBoard) -> Self {
        DependencyRunner {
            metrics,
            board,
            client: super::http::client(),
            tasks: HashMap::new(),
            changes: Arc::new(watch::channel(0).0),
            dependents: Arc::default(),
            history: None,
        }
    }

    /// Writes every check of dependencies started from now on to the history store.
    pub fn set_history(&mut self, history: Option<crate::store::writer::StoreHandle>) {
        self.history = history;
    }

    /// Records which servers use which dependency, so a dependency's authentication failure
    /// is counted as a security event of every server that relies on it.
    pub fn set_dependents(&self, servers: &[crate::config::ServerConfig]) {
        let mut map: HashMap<String, Vec<String>> = HashMap::new();
        for server in servers {
            for dep in &server.depends_on {
                map.entry(dep.clone())
                    .or_default()
                    .push(server.name.clone());
            }
        }
        *self.dependents.write().unwrap_or_else(|p| p.into_inner()) = map;
    }

    /// A receiver that changes whenever a dependency's status or reason changes, so servers
    /// can be re-assessed at once instead of at their next probe.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Which servers use which dependency (kept current by [`set_dependents`](Self::set_dependents)).
    pub fn dependents(&self) -> Dependents {
        Arc::clone(&self.dependents)
    }

    /// The board this runner writes.
    pub fn board(&self) -> DependencyBoard {
        Arc::clone(&self.board)
    }

    /// Makes the running set match `dependencies` (reload): starts new ones, stops removed or
    /// changed ones (dropping their series), leaves unchanged ones running.
    pub async fn apply(&mut self, dependencies: &[DependencyConfig]) {
        let wanted: HashMap<&str, &DependencyConfig> =
            dependencies.iter().map(|d| (d.name.as_str(), d)).collect();
        let stale: Vec<String> = self
            .tasks
            .iter()
            .filter(|(name, task)| wanted.get(name.as_str()) != Some(&&task.config))
            .map(|(name, _)| name.clone())
            .collect();
        for name in stale {
            if let Some(task) = self.tasks.remove(&name) {
                let kind = task.config.spec.kind();
                stop_task(task).await;
                self.metrics.deps.remove_dependency(&name, kind);
            }
            self.board
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&name);
            tracing::info!(dependency = %name, "stopped checking dependency");
        }
        for dep in dependencies {
            if !self.tasks.contains_key(&dep.name) {
                self.start(dep.clone());
            }
        }
    }

    fn start(&mut self, config: DependencyConfig) {
        self.board
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                config.name.clone(),
                DependencyState {
                    name: config.name.clone(),
                    kind: config.spec.kind(),
                    critical: config.critical,
                    interval: config.period(),
                    last: None,
                    backoff_until_unix: None,
                },
            );
        self.metrics
            .deps
            .add_dependency(&config.name, config.spec.kind());
        let (stop, stop_rx) = watch::channel(false);
        let outputs = Outputs {
            metrics: Arc::clone(&self.metrics),
            board: Arc::clone(&self.board),
            changes: Arc::clone(&self.changes),
            dependents: Arc::clone(&self.dependents),
            history: self.history.clone(),
        };
        let handle = tokio::spawn(run(config.clone(), stop_rx, self.client.clone(), outputs));
        tracing::info!(
            dependency = %config.name,
            kind = config.spec.kind(),
            critical = config.critical,
            interval_ms = config.period().as_millis() as u64,
            "started checking dependency"
        );
        self.tasks.insert(
            config.name.clone(),
            Task {
                config,
                stop,
                handle,
            },
        );
    }

    /// Stops every task.
    pub async fn shutdown(mut self) {
        let tasks: Vec<Task> = self.tasks.drain().map(|(_, t)| t).collect();
        futures_util::future::join_all(tasks.into_iter().map(stop_task)).await;
    }
}

async fn stop_task(task: Task) {
    let _ = task.stop.send(true);
    let mut handle = task.handle;
    if tokio::time::timeout(Duration::from_secs(5), &mut handle)
        .await
        .is_err()
    {
        handle.abort();
    }
}

/// Where one dependency task publishes its checks.
struct Outputs {
    metrics: Arc<Metrics>,
    board: DependencyBoard,
    changes: Arc<watch::Sender<u64>>,
    dependents: Dependents,
    history: Option<crate::store::writer::StoreHandle>,
}

async fn run(
    config: DependencyConfig,
    mut stop: watch::Receiver<bool>,
    client: reqwest::Client,
    outputs: Outputs,
) {
    let Outputs {
        metrics,
        board,
        changes,
        dependents,
        history,
    } = outputs;
    let spread = config.period().min(MAX_START_SPREAD);
    let mut next = Instant::now() + spread.mul_f64(rand::random_range(0.0..=1.0));
    let kind = config.spec.kind();
    let mut previous = HealthStatus::Unknown;
    let mut previous_reason: Option<String> = None;
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            _ = tokio::time::sleep_until(next) => {}
        }
        let started = Instant::now();
        let check = tokio::select! {
            _ = stop.changed() => break,
            c = check_once(&config, &client) => c,
        };
        let delay = next_delay(config.period(), &check);
        metrics.deps.record_check(&config.name, kind, &check);
        if let Some(store) = &history {
            store.record(crate::store::Record::Dependency(
                crate::store::DependencyRow {
                    ts: crate::store::unix_seconds(check.started_at),
                    server: None,
                    dependency: config.name.clone(),
                    kind: kind.to_string(),
                    up: check.up(),
                    status: check.status.word().to_string(),
                    duration_ms: Some(check.duration.as_secs_f64() * 1000.0),
                    error: check.reason.clone(),
                },
            ));
        }
        if check.failure == Some(super::DependencyFailure::AuthFailed) {
            record_auth_failure(&metrics, &dependents, &config.name, &check);
        }
        let changed = check.status != previous;
        // Servers show a dependency's reason too: a new reason under the same status
        // ("shutting down" -> "connection refused") re-assesses them, or they would show
        // the stale one until their next probe.
        let reason_changed = check.reason != previous_reason;
        previous_reason = check.reason.clone();
        if changed {
            let reason = check.reason.clone().unwrap_or_default();
            if check.up() {
                tracing::info!(dependency = %config.name, kind, from = %previous, to = %check.status, %reason, "dependency status changed");
            } else {
                tracing::warn!(dependency = %config.name, kind, from = %previous, to = %check.status, %reason, "dependency status changed");
            }
            previous = check.status;
        }
        {
            let mut board = board.write().unwrap_or_else(|p| p.into_inner());
            if let Some(state) = board.get_mut(&config.name) {
                state.backoff_until_unix = check
                    .rate_limit
                    .retry_after
                    .map(|wait| crate::store::unix_seconds(SystemTime::now() + wait));
                state.last = Some(check);
            }
        }
        if changed || reason_changed {
            changes.send_modify(|generation| *generation += 1);
        }
        next = (started + delay).max(Instant::now());
    }
}

/// Counts a dependency's authentication failure as a `dependency_auth_failure` security event
/// of each server that depends on it (or of `dependency:<name>` when none does).
fn record_auth_failure(
    metrics: &Metrics,
    dependents: &Dependents,
    dependency: &str,
    check: &DependencyCheck,
) {
    let evidence = format!(
        "dependency {dependency}: {}",
        check.reason.as_deref().unwrap_or("authentication failed")
    );
    let servers = dependents
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .get(dependency)
        .cloned()
        .unwrap_or_else(|| vec![format!("dependency:{dependency}")]);
    for server in servers {
        metrics.security.record(
            &server,
            crate::security::EventKind::DependencyAuthFailure,
            &evidence,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_can_only_lengthen_the_wait() {
        let period = Duration::from_secs(30);
        let mut check = DependencyCheck::healthy(SystemTime::now());
        assert_eq!(next_delay(period, &check), period);
        check.rate_limit.retry_after = Some(Duration::from_secs(5));
        assert_eq!(next_delay(period, &check), period);
        check.rate_limit.retry_after = Some(Duration::from_secs(120));
        assert_eq!(next_delay(period, &check), Duration::from_secs(120));
    }
}
