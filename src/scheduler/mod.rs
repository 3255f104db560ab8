//! One task per server: interval with jitter, a deadline on every probe, and one assessment
//! per observation handed to the sinks (status board, metrics, history, security monitor,
//! log). A scrape never waits for a probe.

mod server_task;

pub use server_task::{Prober, ServerTask, start_spread};

use std::sync::Arc;

use tokio::sync::watch;

use crate::assessment::{ServerMemory, Sink, Sinks};
use crate::deps::{self, DependencyBoard};
use crate::mcp::{Limits, WireCounters};
use crate::probe::{ServerConfig, ServerProbe};
use crate::reconcile::TaskSet;

/// Owns the per-server tasks.
pub struct Scheduler {
    sinks: Sinks,
    limits: Limits,
    /// Each running server's entry, shared with its task (not a copy of its own: the set's
    /// entries and the shutdown's stop futures stay small at thousands of servers).
    tasks: TaskSet<Arc<ServerConfig>>,
    dependencies: DependencyBoard,
    dependency_changes: Option<watch::Receiver<u64>>,
}

impl Scheduler {
    /// A scheduler with no servers yet, feeding its assessments to `sinks`.
    pub fn new(sinks: Sinks, limits: Limits) -> Self {
        Scheduler {
            sinks,
            limits,
            tasks: TaskSet::new("server"),
            dependencies: DependencyBoard::default(),
            dependency_changes: None,
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

    /// Makes the running set of servers match `servers`: starts new ones, stops removed ones
    /// (their series and status dropped), restarts changed ones, leaves unchanged ones running.
    pub async fn apply(&mut self, servers: &[ServerConfig]) {
        let stopped = self
            .tasks
            .stop_stale(servers.iter().map(|s| (s.name.as_str(), s)))
            .await;
        for (name, _) in stopped {
            self.sinks.server_removed(&name);
            tracing::info!(server = %name, "stopped probing");
        }
        // Only the entries that start are copied; running ones keep the copy they have.
        let starting: Vec<&ServerConfig> = servers
            .iter()
            .filter(|s| !self.tasks.contains(&s.name))
            .collect();
        let spread = start_spread(starting.len());
        for server in starting {
            self.start(Arc::new(server.clone()), spread);
        }
    }

    fn start(&mut self, config: Arc<ServerConfig>, start_spread: std::time::Duration) {
        let counters = Arc::new(WireCounters::default());
        self.sinks.server_added(&config, &counters);
        let mut memory = ServerMemory::default();
        let view = deps::server_view(&self.dependencies, &config.depends_on);
        self.sinks
            .assessed(&memory.at_start(Arc::clone(&config), view));
        let task = ServerTask {
            config: Arc::clone(&config),
            prober: ServerProbe::new(Arc::clone(&config), self.limits.clone(), counters),
            memory,
            sinks: self.sinks.clone(),
            dependencies: Arc::clone(&self.dependencies),
            dependency_changes: self.dependency_changes.clone(),
            start_spread,
        };
        tracing::info!(
            server = %config.name,
            transport = config.transport.kind(),
            check = config.check.as_str(),
            interval_ms = config.interval.as_millis() as u64,
            "started probing"
        );
        self.tasks
            .start(config.name.clone(), Arc::clone(&config), |stop| {
                tokio::spawn(task.run(stop))
            });
    }

    /// Stops every task and ends every session (children are killed), in parallel.
    pub async fn shutdown(self) {
        self.tasks.shutdown().await;
    }
}
