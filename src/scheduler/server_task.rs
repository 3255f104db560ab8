//! The loop of one server: wait for its slot (or a dependency change), probe under the
//! deadline, sample its process, assess once, hand the assessment to every sink.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::assessment::{ServerLogs, ServerMemory, Sink, Sinks};
use crate::deps::{self, DependencyBoard};
use crate::probe::{ProbeOutcome, ServerConfig, ServerProbe, deadline};
use crate::process::supervise::SupervisionStatus;
use crate::process::{ProcessMonitor, ProcessStatus, remediate::Remediator};

/// Upper bound of the random delay before a server's first probe when a few servers start
/// together (see [`start_spread`] for many).
const MAX_START_SPREAD: Duration = Duration::from_secs(2);
/// The share of the start spread each server started together adds.
const START_SPREAD_PER_SERVER: Duration = Duration::from_millis(20);
/// Fraction of the interval by which each wait is randomly shortened or lengthened.
const INTERVAL_JITTER: f64 = 0.05;

/// What the scheduler needs of a server's probe: [`ServerProbe`] in the daemon, a scripted
/// one in the scheduler's tests.
pub trait Prober: Send + 'static {
    /// Runs one probe (the caller applies the deadline).
    fn probe(&mut self) -> impl Future<Output = ProbeOutcome> + Send;
    /// PID of the stdio child, when one is running.
    fn pid(&self) -> Option<u32>;
    /// Restart supervision of a stdio child.
    fn supervision(&self) -> Option<SupervisionStatus>;
    /// When a dead stdio child may be respawned, while its restart backoff runs.
    fn next_restart_at(&self) -> Option<std::time::Instant>;
    /// What the server wrote since the last call (drains).
    fn take_logs(&mut self) -> ServerLogs;
    /// Ends the session (kills a child).
    fn shutdown(&mut self) -> impl Future<Output = ()> + Send;
}

impl Prober for ServerProbe {
    fn probe(&mut self) -> impl Future<Output = ProbeOutcome> + Send {
        ServerProbe::probe(self)
    }

    fn pid(&self) -> Option<u32> {
        ServerProbe::pid(self)
    }

    fn supervision(&self) -> Option<SupervisionStatus> {
        ServerProbe::supervision(self)
    }

    fn next_restart_at(&self) -> Option<std::time::Instant> {
        ServerProbe::next_restart_at(self)
    }

    fn take_logs(&mut self) -> ServerLogs {
        ServerLogs {
            notifications: self.take_notifications(),
            stderr_lines: self.take_stderr_lines(),
        }
    }

    fn shutdown(&mut self) -> impl Future<Output = ()> + Send {
        ServerProbe::shutdown(self)
    }
}

/// The window over which the first probes of `starting` servers started together are spread
/// (each task caps it at its interval): 2 s for up to 100 servers, 20 ms more per server
/// beyond, so that a large fleet's first round (a session and a connection per server) does
/// not run all at once: at 1,000 servers it was the daemon's peak memory.
pub fn start_spread(starting: usize) -> Duration {
    let starting = u32::try_from(starting).unwrap_or(u32::MAX);
    MAX_START_SPREAD.max(START_SPREAD_PER_SERVER.saturating_mul(starting))
}

/// Everything one server's task owns.
pub struct ServerTask<P> {
    /// The server's entry.
    pub config: Arc<ServerConfig>,
    /// Its probe (and session).
    pub prober: P,
    /// What it remembers between observations.
    pub memory: ServerMemory,
    /// Where its assessments go.
    pub sinks: Sinks,
    /// The dependencies' latest checks.
    pub dependencies: DependencyBoard,
    /// Changes whenever a dependency's status or reason changes.
    pub dependency_changes: Option<watch::Receiver<u64>>,
    /// The first probe starts at a random time within this window (capped at the interval),
    /// from [`start_spread`].
    pub start_spread: Duration,
}

impl<P: Prober> ServerTask<P> {
    /// Probes on the server's interval until `stop` turns true, then ends the session.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let config = Arc::clone(&self.config);
        let spread = config.interval.min(self.start_spread);
        let mut next = Instant::now() + random_fraction(spread, 0.0, 1.0);
        let mut process = ProcessMonitor::new(&config.process);
        let mut remediator = config
            .process
            .remediation
            .clone()
            .map(|r| Remediator::new(&config.name, r));
        let watches_dependencies = !config.depends_on.is_empty();
        loop {
            tokio::select! {
                _ = stop.changed() => break,
                _ = tokio::time::sleep_until(next) => {}
                _ = dependency_changed(&mut self.dependency_changes, watches_dependencies) => {
                    let view = deps::server_view(&self.dependencies, &config.depends_on);
                    if let Some(assessment) = self.memory.after_dependencies(Arc::clone(&config), view) {
                        self.sinks.assessed(&assessment);
                    }
                    continue;
                }
            }
            // The probe's future (the whole HTTP or stdio exchange) and the process sampling
            // are boxed: held inline, the largest of them set the size of every server's task
            // for its whole life (about 23 KB each, most of a fleet's memory), while a probe
            // runs a few milliseconds per interval.
            let outcome = tokio::select! {
                _ = stop.changed() => break,
                outcome = deadline::within_deadline(&config, Box::pin(self.prober.probe())) => outcome,
            };
            let status =
                Box::pin(self.sample_process(&mut process, remediator.as_mut(), outcome.up)).await;
            let view = deps::server_view(&self.dependencies, &config.depends_on);
            let logs = self.prober.take_logs();
            let assessment =
                self.memory
                    .after_probe(Arc::clone(&config), outcome, view, Some(status), logs);
            self.sinks.assessed(&assessment);
            let jittered = random_fraction(
                config.interval,
                1.0 - INTERVAL_JITTER,
                1.0 + INTERVAL_JITTER,
            );
            next = (next + jittered).max(Instant::now());
            // A dead stdio child is restarted when its backoff ends, not only at the next interval.
            if let Some(restart) = self.prober.next_restart_at() {
                next = next.min(Instant::from_std(restart).max(Instant::now()));
            }
        }
        Box::pin(self.prober.shutdown()).await;
    }

    /// Samples the server's process tree and runs remediation when due.
    async fn sample_process(
        &self,
        monitor: &mut ProcessMonitor,
        remediator: Option<&mut Remediator>,
        up: bool,
    ) -> ProcessStatus {
        let mut status = monitor.observe(self.prober.pid()).await;
        status.supervision = self.prober.supervision();
        if let Some(r) = remediator {
            let (sinks, server) = (self.sinks.clone(), self.config.name.clone());
            r.observe(
                up,
                std::time::Instant::now(),
                Arc::new(move |outcome| sinks.remediation_finished(&server, outcome)),
            );
            status.last_remediation = r.last_outcome();
        }
        status
    }
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

fn random_fraction(base: Duration, low: f64, high: f64) -> Duration {
    let factor: f64 = rand::random_range(low..=high);
    base.mul_f64(factor)
}

#[cfg(test)]
mod tests;
