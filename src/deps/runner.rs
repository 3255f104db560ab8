//! Runs every dependency's checks: one task per dependency (so a shared dependency is checked
//! once per interval however many servers use it), each with its own interval, timeout and
//! minimum interval, backing off while the API asks for it (`Retry-After`, rate limits).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio::time::Instant;

use super::http_check::HttpClients;
use super::sink::{CheckSink, CheckSinks};
use super::{DependencyBoard, DependencyCheck, DependencyConfig, DependencyState, check_once};
use crate::health::HealthStatus;
use crate::otel::TraceSpan;
use crate::reconcile::TaskSet;
use opentelemetry::KeyValue;

/// Upper bound of the random delay before a dependency's first check.
const MAX_START_SPREAD: Duration = Duration::from_millis(500);

/// The wait between the start of a check and the start of the next: the dependency's period
/// (`max(interval, min_interval)`), or longer when the API asked to wait (`Retry-After`, an
/// exhausted rate limit).
pub fn next_delay(period: Duration, check: &DependencyCheck) -> Duration {
    period.max(check.rate_limit.retry_after.unwrap_or(Duration::ZERO))
}

/// Owns the per-dependency tasks.
pub struct DependencyRunner {
    sinks: CheckSinks,
    board: DependencyBoard,
    clients: Arc<HttpClients>,
    tasks: TaskSet<DependencyConfig>,
    changes: Arc<watch::Sender<u64>>,
    dependents: Dependents,
}

/// Dependency name -> the servers whose `depends_on` lists it (for attributing security events
/// and for `/api/dependencies`).
pub type Dependents = Arc<std::sync::RwLock<HashMap<String, Vec<String>>>>;

impl DependencyRunner {
    /// A runner with no dependencies yet, writing each dependency's latest check to `board`
    /// and handing every check to `sinks` (metrics, history store, security monitor).
    pub fn new(board: DependencyBoard, sinks: CheckSinks) -> Self {
        DependencyRunner {
            sinks,
            board,
            clients: Arc::default(),
            tasks: TaskSet::new("dependency"),
            changes: Arc::new(watch::channel(0).0),
            dependents: Arc::default(),
        }
    }

    /// Records which servers use which dependency, so a dependency's authentication failure
    /// is counted as a security event of every server that relies on it.
    pub fn set_dependents(&self, servers: &[crate::probe::ServerConfig]) {
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
        // A reload reads every `tls.ca_file` again (a renewed CA takes effect).
        self.clients.clear();
        let stopped = self
            .tasks
            .stop_stale(dependencies.iter().map(|d| (d.name.as_str(), d)))
            .await;
        for (name, config) in stopped {
            self.sinks.dependency_removed(&config);
            self.board
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&name);
            tracing::info!(dependency = %name, "stopped checking dependency");
        }
        for dep in dependencies {
            if !self.tasks.contains(&dep.name) {
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
        self.sinks.dependency_added(&config);
        let outputs = Outputs {
            sinks: self.sinks.clone(),
            board: Arc::clone(&self.board),
            changes: Arc::clone(&self.changes),
            dependents: Arc::clone(&self.dependents),
        };
        tracing::info!(
            dependency = %config.name,
            kind = config.spec.kind(),
            critical = config.critical,
            interval_ms = config.period().as_millis() as u64,
            "started checking dependency"
        );
        let clients = Arc::clone(&self.clients);
        self.tasks
            .start(config.name.clone(), config.clone(), move |stop| {
                tokio::spawn(run(config, stop, clients, outputs))
            });
    }

    /// Stops every task.
    pub async fn shutdown(self) {
        self.tasks.shutdown().await;
    }
}

/// Where one dependency task publishes its checks.
struct Outputs {
    sinks: CheckSinks,
    board: DependencyBoard,
    changes: Arc<watch::Sender<u64>>,
    dependents: Dependents,
}

/// Ends the trace of one dependency check (docs/tracing.md): its status word, and on an
/// unhealthy check status Error with the reason.
fn end_check_span(span: TraceSpan, check: &DependencyCheck) {
    span.set(KeyValue::new(
        "mcp_exporter.dependency.status",
        check.status.word(),
    ));
    if check.status == HealthStatus::Unhealthy {
        span.fail(
            "unhealthy",
            check.reason.clone().unwrap_or_else(|| "unhealthy".into()),
        );
    }
    span.end();
}

async fn run(
    config: DependencyConfig,
    mut stop: watch::Receiver<bool>,
    clients: Arc<HttpClients>,
    outputs: Outputs,
) {
    let Outputs {
        sinks,
        board,
        changes,
        dependents,
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
        let trace = TraceSpan::root(
            format!("check {}", config.name),
            vec![
                KeyValue::new("mcp_exporter.dependency", config.name.clone()),
                KeyValue::new("mcp_exporter.dependency.kind", kind),
            ],
        );
        let check = tokio::select! {
            _ = stop.changed() => break,
            c = check_once(&config, &clients) => c,
        };
        if let Some(span) = trace {
            end_check_span(span, &check);
        }
        let delay = next_delay(config.period(), &check);
        let servers = dependents
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&config.name)
            .cloned()
            .unwrap_or_default();
        sinks.checked(&config, &check, &servers);
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
                    .map(|wait| crate::wall_clock::unix_seconds(SystemTime::now() + wait));
                state.last = Some(check);
            }
        }
        if changed || reason_changed {
            changes.send_modify(|generation| *generation += 1);
        }
        next = (started + delay).max(Instant::now());
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
