//! One task per server: interval with jitter, a deadline on every probe, results published to
//! the metrics registry and the status board. A scrape never waits for a probe.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::config::ServerConfig;
use crate::deps::{self, DependencyBoard, ServerDependency};
use crate::health::{self, DependencyHealth, Health, HealthStatus};
use crate::mcp::{Limits, WireCounters};
use crate::metrics::Metrics;
use crate::probe::{FailureClass, ProbeFailure, ProbeOutcome, ServerProbe, Stage};
use crate::process::{ProcessMonitor, ProcessStatus, remediate::Remediator};
use crate::store::observe::ProbeObserver;
use crate::store::writer::StoreHandle;

/// Extra time a probe gets beyond its own timeout before the scheduler abandons it.
const PROBE_GRACE: Duration = Duration::from_secs(2);
/// Upper bound of the random delay before a server's first probe.
const MAX_START_SPREAD: Duration = Duration::from_secs(2);
/// Fraction of the interval by which each wait is randomly shortened or lengthened.
const INTERVAL_JITTER: f64 = 0.05;

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
    pub last_probe: Option<ProbeOutcome>,
    /// The most recent failure, kept after later successes.
    pub last_failure: Option<TimedFailure>,
    /// Failed probes in a row.
    pub consecutive_failures: u64,
    /// The server's dependencies as of its last assessment (`depends_on` order).
    pub dependencies: Vec<ServerDependency>,
    /// The server's process: resources, restarts, crash loop, remediation (issue 3).
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

/// Shared map from server name to its status; written by server tasks, read by HTTP handlers.
pub type StatusBoard = Arc<RwLock<BTreeMap<String, ServerStatus>>>;

struct ServerTask {
    config: Arc<ServerConfig>,
    stop: watch::Sender<bool>,
    handle: JoinHandle<()>,
}

/// Owns the per-server tasks.
pub struct Scheduler {
    metrics: Arc<Metrics>,
    board: StatusBoard,
    limits: Limits,
    tasks: HashMap<String, ServerTask>,
    dependencies: DependencyBoard,
    dependency_changes: Option<watch::Receiver<u64>>,
    /// History store (issue 5); `None` when disabled.
    history: Option<StoreHandle>,
}

impl Scheduler {
    /// A scheduler with no servers yet.
    pub fn new(metrics: Arc<Metrics>, board: StatusBoard, limits: Limits) -> Self {
        Scheduler {
            metrics,
            board,
            limits,
            tasks: HashMap::new(),
            dependencies: DependencyBoard::default(),
            dependency_changes: None,
            history: None,
        }
    }

    /// Reads dependency states from `board` (written by a `DependencyRunner`) when assessing
    /// health, and re-assesses a server (without probing it) whenever `changes` changes.
    pub fn with_dependencies(
        mut self,
        board: DependencyBoard,
        changes: watch::Receiver<u64>,
    ) -> Self {
        self.dependencies = board;
        self.dependency_changes = Some(changes);
        self
    }

    /// Records probe results, transitions and log lines of servers started from now on.
    pub fn set_history(&mut self, history: Option<StoreHandle>) {
        self.history = history;
    }

    /// Makes the running set of servers match `servers`: starts new ones, stops removed ones
    /// (dropping their series), restarts changed ones, leaves unchanged ones running.
    pub async fn apply(&mut self, servers: &[ServerConfig]) {
        let wanted: HashMap<&str, &ServerConfig> =
            servers.iter().map(|s| (s.name.as_str(), s)).collect();
        let stale: Vec<String> = self
            .tasks
            .iter()
            .filter(|(name, task)| match wanted.get(name.as_str()) {
                None => true,
                Some(cfg) => !same_server(&task.config, cfg),
            })
            .map(|(name, _)| name.clone())
            .collect();
        for name in stale {
            if let Some(task) = self.tasks.remove(&name) {
                stop_task(task).await;
            }
            self.metrics.remove_server(&name);
            self.board_write().remove(&name);
            tracing::info!(server = %name, "stopped probing");
        }
        for server in servers {
            if self.tasks.contains_key(&server.name) {
                continue;
            }
            self.start(server.clone());
        }
    }

    fn start(&mut self, config: ServerConfig) {
        let config = Arc::new(config);
        let counters = Arc::new(WireCounters::default());
        self.metrics.add_server(&config.name, Arc::clone(&counters));
        self.board_write().insert(
            config.name.clone(),
            ServerStatus {
                name: config.name.clone(),
                transport: config.transport.kind(),
                check: config.check.as_str(),
                interval: config.interval,
                health: health::assess(None, config.degraded_latency),
                last_probe: None,
                last_failure: None,
                consecutive_failures: 0,
                dependencies: deps::server_view(&self.dependencies, &config.depends_on),
                process: ProcessStatus::default(),
            },
        );
        let (stop, stop_rx) = watch::channel(false);
        let probe = ServerProbe::new(Arc::clone(&config), self.limits.clone(), counters);
        let observer = self
            .history
            .clone()
            .map(|h| ProbeObserver::new(h, Arc::clone(&config)));
        let handle = tokio::spawn(run_server(
            probe,
            stop_rx,
            Arc::clone(&self.metrics),
            Arc::clone(&self.board),
            Arc::clone(&self.dependencies),
            self.dependency_changes.clone(),
            observer,
        ));
        tracing::info!(
            server = %config.name,
            transport = config.transport.kind(),
            check = config.check.as_str(),
            interval_ms = config.interval.as_millis() as u64,
            "started probing"
        );
        self.tasks.insert(
            config.name.clone(),
            ServerTask {
                config,
                stop,
                handle,
            },
        );
    }

    /// Stops every task and ends every session (children are killed), in parallel.
    pub async fn shutdown(mut self) {
        let tasks: Vec<ServerTask> = self.tasks.drain().map(|(_, t)| t).collect();
        futures_util::future::join_all(tasks.into_iter().map(stop_task)).await;
    }

    fn board_write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, ServerStatus>> {
        self.board.write().unwrap_or_else(|p| p.into_inner())
    }
}

fn same_server(a: &ServerConfig, b: &ServerConfig) -> bool {
    // Debug output covers every field, so it is a complete structural comparison.
    format!("{a:?}") == format!("{b:?}")
}

async fn stop_task(task: ServerTask) {
    let _ = task.stop.send(true);
    let mut handle = task.handle;
    // The task ends its session within the shutdown grace; do not wait forever if it cannot.
    if tokio::time::timeout(Duration::from_secs(10), &mut handle)
        .await
        .is_err()
    {
        tracing::warn!(server = %task.config.name, "probe task did not stop in time; aborting it");
        handle.abort();
    }
}

async fn run_server(
    mut probe: ServerProbe,
    mut stop: watch::Receiver<bool>,
    metrics: Arc<Metrics>,
    board: StatusBoard,
    dependencies: DependencyBoard,
    mut dependency_changes: Option<watch::Receiver<u64>>,
    mut observer: Option<ProbeObserver>,
) {
    let config = Arc::clone(probe.config());
    let spread = config.interval.min(MAX_START_SPREAD);
    let mut next = Instant::now() + random_fraction(spread, 0.0, 1.0);
    let mut last_hash: Option<u64> = None;
    let mut process = ProcessMonitor::new(&config.process);
    let mut remediator = config
        .process
        .remediation
        .clone()
        .map(|r| Remediator::new(&config.name, r));
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            _ = tokio::time::sleep_until(next) => {}
            _ = dependency_changed(&mut dependency_changes, !config.depends_on.is_empty()) => {
                reassess(&config, &metrics, &board, &dependencies);
                continue;
            }
        }
        let outcome = tokio::select! {
            _ = stop.changed() => break,
            result = tokio::time::timeout(config.timeout + PROBE_GRACE, probe.probe()) => {
                result.unwrap_or_else(|_| abandoned_probe(&config))
            }
        };
        let catalog_changed = detect_drift(&config.name, &mut last_hash, &outcome);
        let up = outcome.up;
        // History (issue 5): the row is built before publish() takes the outcome.
        let observed = observer.as_ref().map(|_| outcome.clone());
        publish(
            &config,
            &metrics,
            &board,
            &dependencies,
            outcome,
            catalog_changed,
        );
        if let (Some(obs), Some(outcome)) = (observer.as_mut(), observed) {
            record_history(obs, &board, &config.name, &outcome, &mut probe);
        }
        observe_process(
            &config,
            &probe,
            &mut process,
            remediator.as_mut(),
            up,
            &metrics,
            &board,
        )
        .await;
        let jittered = random_fraction(
            config.interval,
            1.0 - INTERVAL_JITTER,
            1.0 + INTERVAL_JITTER,
        );
        next = (next + jittered).max(Instant::now());
        // A dead stdio child is restarted when its backoff ends, not only at the next interval.
        if let Some(restart) = probe.next_restart_at() {
            next = next.min(Instant::from_std(restart).max(Instant::now()));
        }
    }
    probe.shutdown().await;
}

/// Resolves when a dependency's status changed (never when `relevant` is false or there is no
/// dependency runner).
async fn dependency_changed(changes: &mut Option<watch::Receiver<u64>>, relevant: bool) {
    match changes {
        Some(rx) if relevant => {
            if rx.changed().await.is_err() {
                // The runner is gone: no more changes will come.
                *changes = None;
                std::future::pending::<()>().await;
            }
        }
        _ => std::future::pending::<()>().await,
    }
}

/// Re-decides a server's health from its last probe and its dependencies' latest checks,
/// without probing (a dependency changed); nothing happens before the first probe.
fn reassess(
    config: &ServerConfig,
    metrics: &Metrics,
    board: &StatusBoard,
    dependencies: &DependencyBoard,
) {
    let dependency_view = deps::server_view(dependencies, &config.depends_on);
    let mut board = board.write().unwrap_or_else(|p| p.into_inner());
    let Some(status) = board.get_mut(&config.name) else {
        return;
    };
    let Some(last_probe) = &status.last_probe else {
        return;
    };
    let dependency_health: Vec<DependencyHealth<'_>> = dependency_view
        .iter()
        .map(ServerDependency::as_health)
        .collect();
    let health = health::assess_with_dependencies(
        Some(last_probe),
        config.degraded_latency,
        &dependency_health,
    );
    let dependency_series: Vec<(&str, &str, HealthStatus)> = dependency_view
        .iter()
        .map(|d| (d.name.as_str(), d.kind, d.status))
        .collect();
    metrics.record_health(&config.name, &health);
    metrics
        .deps
        .record_server(&config.name, &dependency_series, &health);
    if status.health.status != health.status {
        log_transition(&config.name, status.health.status, &health);
    }
    status.health = health;
    status.dependencies = dependency_view;
}

/// Samples the server's process tree and runs remediation when due; publishes both (issue 3).
async fn observe_process(
    config: &Arc<ServerConfig>,
    probe: &ServerProbe,
    monitor: &mut ProcessMonitor,
    remediator: Option<&mut Remediator>,
    up: bool,
    metrics: &Arc<Metrics>,
    board: &StatusBoard,
) {
    let mut status = monitor.observe(probe.pid()).await;
    status.supervision = probe.supervision();
    if let Some(r) = remediator {
        let (metrics, server) = (Arc::clone(metrics), config.name.clone());
        r.observe(
            up,
            std::time::Instant::now(),
            Arc::new(move |o| metrics.process.remediation(&server, o.as_str())),
        );
        status.last_remediation = r.last_outcome();
    }
    metrics.process.record(&config.name, &status);
    let mut board = board.write().unwrap_or_else(|p| p.into_inner());
    if let Some(entry) = board.get_mut(&config.name) {
        entry.process = status;
    }
}

/// Sends the probe, the health publish() decided and the new log lines to the history store.
fn record_history(
    observer: &mut ProbeObserver,
    board: &StatusBoard,
    server: &str,
    outcome: &ProbeOutcome,
    probe: &mut ServerProbe,
) {
    let health = board
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .get(server)
        .map(|s| s.health.clone());
    if let Some(health) = health {
        observer.observe(
            outcome,
            &health,
            probe.take_notifications(),
            probe.take_stderr_lines(),
        );
    }
}

fn random_fraction(base: Duration, low: f64, high: f64) -> Duration {
    let factor: f64 = rand::random_range(low..=high);
    base.mul_f64(factor)
}

fn abandoned_probe(config: &ServerConfig) -> ProbeOutcome {
    let mut outcome = ProbeOutcome::started(SystemTime::now() - config.timeout - PROBE_GRACE);
    outcome.duration = config.timeout + PROBE_GRACE;
    outcome.fail(
        Stage::Connect,
        FailureClass::Down,
        format!(
            "probe did not finish within its {} ms deadline",
            (config.timeout + PROBE_GRACE).as_millis()
        ),
    );
    outcome
}

/// Compares the catalog hash with the previous probe's; logs and reports a change.
fn detect_drift(server: &str, last_hash: &mut Option<u64>, outcome: &ProbeOutcome) -> bool {
    let Some(catalog) = &outcome.catalog else {
        return false;
    };
    let previous = last_hash.replace(catalog.content_hash);
    match previous {
        Some(old) if old != catalog.content_hash => {
            tracing::warn!(
                server,
                old_hash = format!("{old:016x}"),
                new_hash = format!("{:016x}", catalog.content_hash),
                tools = catalog.count,
                "tool catalog changed (schema drift)"
            );
            true
        }
        _ => false,
    }
}

fn publish(
    config: &ServerConfig,
    metrics: &Metrics,
    board: &StatusBoard,
    dependencies: &DependencyBoard,
    outcome: ProbeOutcome,
    catalog_changed: bool,
) {
    let dependency_view = deps::server_view(dependencies, &config.depends_on);
    let dependency_health: Vec<DependencyHealth<'_>> = dependency_view
        .iter()
        .map(ServerDependency::as_health)
        .collect();
    let health = health::assess_with_dependencies(
        Some(&outcome),
        config.degraded_latency,
        &dependency_health,
    );
    let dependency_series: Vec<(&str, &str, HealthStatus)> = dependency_view
        .iter()
        .map(|d| (d.name.as_str(), d.kind, d.status))
        .collect();
    metrics
        .deps
        .record_server(&config.name, &dependency_series, &health);
    metrics.record_probe(
        &config.name,
        config.transport.kind(),
        &outcome,
        &health,
        catalog_changed,
    );
    let mut board = board.write().unwrap_or_else(|p| p.into_inner());
    let Some(status) = board.get_mut(&config.name) else {
        return;
    };
    if status.health.status != health.status {
        log_transition(&config.name, status.health.status, &health);
    }
    match &outcome.failure {
        Some(failure) => {
            status.consecutive_failures += 1;
            status.last_failure = Some(TimedFailure {
                at_unix: crate::store::unix_seconds(outcome.started_at),
                failure: failure.clone(),
            });
        }
        None => status.consecutive_failures = 0,
    }
    tracing::debug!(
        server = %config.name,
        success = outcome.success,
        duration_ms = outcome.duration.as_millis() as u64,
        summary = %outcome.summary(),
        "probe finished"
    );
    status.health = health;
    status.last_probe = Some(outcome);
    status.dependencies = dependency_view;
}

fn log_transition(server: &str, from: HealthStatus, to: &Health) {
    let reasons = to.reasons.join("; ");
    match to.status {
        HealthStatus::Unhealthy => {
            tracing::warn!(server, from = %from, to = %to.status, %reasons, "health changed")
        }
        _ => tracing::info!(server, from = %from, to = %to.status, %reasons, "health changed"),
    }
}
