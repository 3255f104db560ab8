//! The server's process: discovery (stdio child tree, pid file, systemd unit, command-line
//! regex), sampling from procfs (sysinfo where procfs is not available), the resource score, supervision of stdio children and opt-in
//! remediation of servers we do not spawn.

pub mod backend;
pub mod config;
pub mod discover;
pub mod metrics;
#[cfg(target_os = "linux")]
pub mod procfs_table;
pub mod remediate;
#[cfg(target_os = "linux")]
pub mod sample;
pub mod sample_sysinfo;
pub mod score;
pub mod supervise;
pub mod tree;
pub mod usage;

use std::time::Duration;

use serde::Serialize;

use self::backend::{Backend, ProcessSampler};
use self::config::{Budgets, Locator, ProcessConfig};
use self::supervise::SupervisionStatus;
use self::usage::Usage;

/// Most pids listed on the status page per server.
const MAX_PIDS_SHOWN: usize = 32;
/// Deadline of discovery (the `systemctl` call).
const DISCOVERY_DEADLINE: Duration = Duration::from_secs(5);

/// What is known about a server's process, for the status page, the API and the metrics.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ProcessStatus {
    /// Whether the process was found; `None` when the server has no locator (not sampled).
    pub found: Option<bool>,
    /// Why it was not found.
    pub reason: Option<String>,
    /// Pids of the tree (the first `MAX_PIDS_SHOWN`).
    pub pids: Vec<u32>,
    /// The last sample.
    pub usage: Option<Usage>,
    /// `mcp_resource_usage_score`.
    pub resource_score: Option<f64>,
    /// Restart supervision (stdio servers).
    pub supervision: Option<SupervisionStatus>,
    /// Outcome of the last remediation run.
    pub last_remediation: Option<String>,
    /// The implementation that read the figures (`procfs` or `sysinfo`).
    pub sampler: Option<&'static str>,
}

/// Finds and samples one server's process tree on every probe interval.
pub struct ProcessMonitor {
    locator: Option<Locator>,
    budgets: Budgets,
    backend: Backend,
    sampler: Option<ProcessSampler>,
}

impl ProcessMonitor {
    /// A monitor for the process settings of one server.
    pub fn new(config: &ProcessConfig) -> Self {
        ProcessMonitor {
            locator: config.locator.clone(),
            budgets: config.budgets,
            backend: Backend::selected(),
            sampler: Some(ProcessSampler::new(Backend::selected())),
        }
    }

    /// Discovers and samples the tree; `child` is the stdio child's pid when one runs.
    pub async fn observe(&mut self, child: Option<u32>) -> ProcessStatus {
        let Some(locator) = &self.locator else {
            return ProcessStatus::default();
        };
        let tree = match discover::discover(self.backend, locator, child, DISCOVERY_DEADLINE).await
        {
            Ok(tree) => tree,
            Err(reason) => {
                if let Some(s) = self.sampler.as_mut() {
                    s.reset();
                }
                return ProcessStatus {
                    found: Some(false),
                    reason: Some(reason),
                    sampler: Some(self.backend.name()),
                    ..ProcessStatus::default()
                };
            }
        };
        let backend = self.backend;
        let mut sampler = self
            .sampler
            .take()
            .unwrap_or_else(|| ProcessSampler::new(backend));
        let sample_tree = tree.clone();
        let (sampler, result) = tokio::task::spawn_blocking(move || {
            let result = sampler.sample(&sample_tree);
            (sampler, result)
        })
        .await
        .unwrap_or_else(|e| {
            (
                ProcessSampler::new(backend),
                Err(format!("sampling task failed: {e}")),
            )
        });
        self.sampler = Some(sampler);
        match result {
            Ok(usage) => ProcessStatus {
                found: Some(true),
                reason: None,
                pids: tree.pids.iter().copied().take(MAX_PIDS_SHOWN).collect(),
                resource_score: Some(score::score(&usage, &self.budgets)),
                usage: Some(usage),
                supervision: None,
                last_remediation: None,
                sampler: Some(backend.name()),
            },
            Err(reason) => ProcessStatus {
                found: Some(false),
                reason: Some(reason),
                sampler: Some(backend.name()),
                ..ProcessStatus::default()
            },
        }
    }
}

impl ProcessStatus {
    /// One line for the status page: figures, restarts and crash loop, or why it was not found.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        match (self.found, &self.usage) {
            (Some(true), Some(u)) => {
                parts.push(format!(
                    "pid {} ({} proc): cpu {}, rss {:.1} MiB, fds {}/{}, sockets {}, threads {}, score {:.2}",
                    u.main_pid,
                    u.processes,
                    u.cpu_percent
                        .map(|c| format!("{c:.1}%"))
                        .unwrap_or_else(|| "-".into()),
                    u.memory_bytes as f64 / (1024.0 * 1024.0),
                    opt(u.file_descriptors),
                    u.file_descriptors_limit
                        .map(|l| l.to_string())
                        .unwrap_or_else(|| "unlimited".into()),
                    opt(u.connections),
                    opt(u.threads),
                    self.resource_score.unwrap_or(0.0),
                ));
            }
            (Some(false), _) => parts.push(format!(
                "not found: {}",
                self.reason.as_deref().unwrap_or("unknown reason")
            )),
            _ => parts.push("not sampled (set pid_file, systemd_unit or process_match)".into()),
        }
        if self.sampler == Some("sysinfo") && self.usage.is_some() {
            parts.push("sampled by sysinfo (no sockets)".into());
        }
        if let Some(s) = &self.supervision {
            parts.push(format!("restarts {}", s.restarts));
            if let Some(r) = &s.crash_loop_reason {
                parts.push(r.clone());
            }
        }
        if let Some(r) = &self.last_remediation {
            parts.push(format!("last remediation: {r}"));
        }
        parts.join("; ")
    }
}

/// A figure for the status line, `-` when the sampler cannot read it.
fn opt(v: Option<u64>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
}
