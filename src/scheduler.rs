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
use crate::health::{self, Health, HealthStatus};
use crate::mcp::{Limits, WireCounters};
use crate::metrics::Metrics;
use crate::probe::{FailureClass, ProbeFailure, ProbeOutcome, ServerProbe, Stage};
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
    pub interval: Duration,
    /// Current health and its reasons.
    pub health: Health,
    /// The last probe, once one completed.
    pub last_probe: Option<ProbeOutcome>,
    /// The most recent failure, kept after later successes.
    pub last_failure: Option<TimedFailure>,
    /// Failed probes in a row.
    pub consecutive_failures: u64,
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
            history: None,
        }
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
    mut observer: Option<ProbeObserver>,
) {
    let config = Arc::clone(probe.config());
    let spread = config.interval.min(MAX_START_SPREAD);
    let mut next = Instant::now() + random_fraction(spread, 0.0, 1.0);
    let mut last_hash: Option<u64> = None;
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            _ = tokio::time::sleep_until(next) => {}
        }
        let outcome = tokio::select! {
            _ = stop.changed() => break,
            result = tokio::time::timeout(config.timeout + PROBE_GRACE, probe.probe()) => {
                result.unwrap_or_else(|_| abandoned_probe(&config))
            }
        };
        let catalog_changed = detect_drift(&config.name, &mut last_hash, &outcome);
        // History (issue 5): the row is built before publish() takes the outcome.
        let observed = observer.as_ref().map(|_| outcome.clone());
        publish(&config, &metrics, &board, outcome, catalog_changed);
        if let (Some(obs), Some(outcome)) = (observer.as_mut(), observed) {
            record_history(obs, &board, &config.name, &outcome, &mut probe);
        }
        let jittered = random_fraction(
            config.interval,
            1.0 - INTERVAL_JITTER,
            1.0 + INTERVAL_JITTER,
        );
        next = (next + jittered).max(Instant::now());
    }
    probe.shutdown().await;
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
    outcome: ProbeOutcome,
    catalog_changed: bool,
) {
    let health = health::assess(Some(&outcome), config.degraded_latency);
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
                at_unix: outcome
                    .started_at
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map(|d| d.as_secs_f64())
                    .unwrap_or(0.0),
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
