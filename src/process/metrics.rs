//! Families of the server's process: resources of the process tree, the resource
//! score, restarts, crash loops and remediation. Gauges of a server whose process is not
//! found are removed (absent, not 0); `mcp_server_process_found` says so.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;

use crate::metric_registry::MetricsRegistry;
use crate::metric_registry::labels::{ServerLabels, impl_server_label_set};
use crate::metric_registry::server_family::ServerFamily;
use crate::process::ProcessStatus;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    server: String,
    outcome: &'static str,
}

impl_server_label_set!(OutcomeLabels);

type FloatGauge = Gauge<f64, AtomicU64>;

/// Handles to the process families.
pub struct ProcessMetrics {
    cpu: ServerFamily<ServerLabels, FloatGauge>,
    memory: ServerFamily<ServerLabels, Gauge>,
    fds: ServerFamily<ServerLabels, Gauge>,
    fd_limit: ServerFamily<ServerLabels, Gauge>,
    connections: ServerFamily<ServerLabels, Gauge>,
    listening: ServerFamily<ServerLabels, Gauge>,
    threads: ServerFamily<ServerLabels, Gauge>,
    processes: ServerFamily<ServerLabels, Gauge>,
    start_time: ServerFamily<ServerLabels, FloatGauge>,
    score: ServerFamily<ServerLabels, FloatGauge>,
    found: ServerFamily<ServerLabels, Gauge>,
    restarts: ServerFamily<ServerLabels, Counter>,
    crash_looping: ServerFamily<ServerLabels, Gauge>,
    remediation: ServerFamily<OutcomeLabels, Counter>,
}

impl ProcessMetrics {
    /// Registers every process family in `registry`.
    pub fn register(registry: &mut MetricsRegistry) -> Self {
        ProcessMetrics {
            cpu: registry.server_family(
                "mcp_server_cpu_usage_percent",
                "CPU use of the server's process tree between the last two samples, percent of one core (100 = one core busy)",
            ),
            memory: registry.server_family(
                "mcp_server_memory_usage_bytes",
                "Resident memory (RSS) summed over the server's process tree",
            ),
            fds: registry.server_family(
                "mcp_server_file_descriptors",
                "Open file descriptors summed over the server's process tree",
            ),
            fd_limit: registry.server_family(
                "mcp_server_file_descriptors_limit",
                "Soft RLIMIT_NOFILE of the server's main process (absent when unlimited)",
            ),
            connections: registry.server_family(
                "mcp_server_connections_active",
                "TCP (v4 and v6) and Unix sockets held by the server's process tree that are not listening, each counted once",
            ),
            listening: registry.server_family(
                "mcp_server_listening_sockets",
                "Listening sockets held by the server's process tree (TCP in LISTEN, bound Unix stream sockets)",
            ),
            threads: registry.server_family(
                "mcp_server_threads",
                "Threads summed over the server's process tree",
            ),
            processes: registry.server_family(
                "mcp_server_processes",
                "Processes in the server's process tree (e.g. npx and node)",
            ),
            start_time: registry.server_family(
                "mcp_server_process_start_time_seconds",
                "Unix time the server's main process started",
            ),
            score: registry.server_family(
                "mcp_resource_usage_score",
                "0..1: max of cpu/cpu_cores, memory/memory_bytes and fds/(fd_fraction x fd limit) against the server's budgets (defaults 1 core, 2 GB, 80%)",
            ),
            found: registry.server_family(
                "mcp_server_process_found",
                "1 when the server's process was found and sampled, 0 when not (the resource gauges are then absent; the reason is on the status page)",
            ),
            restarts: registry.server_family(
                "mcp_server_restarts",
                "Restarts of the server's stdio child by the exporter (spawn attempts after the first)",
            ),
            crash_looping: registry.server_family(
                "mcp_server_crash_looping",
                "1 when the stdio child exited crash_loop_failures times within crash_loop_window and is not running",
            ),
            remediation: registry.server_family(
                "mcp_remediation",
                "Runs of the server's remediation command by outcome (success, failure, timeout, error)",
            ),
        }
    }

    /// Publishes what is known about a server's process.
    pub fn record(&self, server: &str, status: &ProcessStatus) {
        let labels = ServerLabels::new(server);
        if let Some(sup) = &status.supervision {
            let counter = self.restarts.get_or_create(&labels);
            let have = counter.get();
            if sup.restarts > have {
                counter.inc_by(sup.restarts - have);
            }
            self.crash_looping
                .get_or_create(&labels)
                .set(i64::from(sup.crash_looping));
        }
        let Some(found) = status.found else {
            return;
        };
        self.found.get_or_create(&labels).set(i64::from(found));
        let Some(usage) = status.usage.as_ref().filter(|_| found) else {
            self.remove_resources(&labels);
            return;
        };
        match usage.cpu_percent {
            Some(cpu) => {
                self.cpu.get_or_create(&labels).set(cpu);
            }
            None => {
                self.cpu.remove(&labels);
            }
        }
        self.memory
            .get_or_create(&labels)
            .set(clamp(usage.memory_bytes));
        set_or_remove(&self.fds, &labels, usage.file_descriptors);
        match usage.file_descriptors_limit {
            Some(limit) => {
                self.fd_limit.get_or_create(&labels).set(clamp(limit));
            }
            None => {
                self.fd_limit.remove(&labels);
            }
        }
        set_or_remove(&self.connections, &labels, usage.connections);
        set_or_remove(&self.listening, &labels, usage.listening_sockets);
        set_or_remove(&self.threads, &labels, usage.threads);
        self.processes
            .get_or_create(&labels)
            .set(clamp(usage.processes));
        self.start_time
            .get_or_create(&labels)
            .set(usage.start_time_seconds);
        if let Some(score) = status.resource_score {
            self.score.get_or_create(&labels).set(score);
        }
    }

    /// Counts one remediation run.
    pub fn remediation(&self, server: &str, outcome: &'static str) {
        self.remediation
            .get_or_create(&OutcomeLabels {
                server: server.to_string(),
                outcome,
            })
            .inc();
    }

    fn remove_resources(&self, labels: &ServerLabels) {
        for family in [&self.cpu, &self.start_time, &self.score] {
            family.remove(labels);
        }
        for family in [
            &self.memory,
            &self.fds,
            &self.fd_limit,
            &self.connections,
            &self.listening,
            &self.threads,
            &self.processes,
        ] {
            family.remove(labels);
        }
    }
}

/// Sets the gauge of `labels` to `value`, or removes it when the sampler cannot read the figure
/// (absent, never 0).
fn set_or_remove(
    family: &ServerFamily<ServerLabels, Gauge>,
    labels: &ServerLabels,
    value: Option<u64>,
) {
    match value {
        Some(v) => {
            family.get_or_create(labels).set(clamp(v));
        }
        None => {
            family.remove(labels);
        }
    }
}

fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::usage::Usage;

    #[test]
    fn found_fills_gauges_and_not_found_removes_them() {
        let mut registry = MetricsRegistry::default();
        let m = ProcessMetrics::register(&mut registry);
        let mut status = ProcessStatus {
            found: Some(true),
            usage: Some(Usage {
                processes: 2,
                main_pid: 1,
                cpu_percent: Some(12.5),
                memory_bytes: 1000,
                file_descriptors: Some(7),
                file_descriptors_limit: Some(1024),
                connections: Some(3),
                listening_sockets: Some(1),
                threads: Some(4),
                start_time_seconds: 1.5e9,
            }),
            resource_score: Some(0.25),
            ..ProcessStatus::default()
        };
        m.record("s", &status);
        let text = registry.encode();
        for needle in [
            "mcp_server_cpu_usage_percent{server=\"s\"} 12.5",
            "mcp_server_memory_usage_bytes{server=\"s\"} 1000",
            "mcp_server_file_descriptors{server=\"s\"} 7",
            "mcp_server_file_descriptors_limit{server=\"s\"} 1024",
            "mcp_server_connections_active{server=\"s\"} 3",
            "mcp_server_listening_sockets{server=\"s\"} 1",
            "mcp_server_processes{server=\"s\"} 2",
            "mcp_resource_usage_score{server=\"s\"} 0.25",
            "mcp_server_process_found{server=\"s\"} 1",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
        // A sampler that cannot see fds, sockets or threads: those gauges go, the rest stay.
        if let Some(u) = status.usage.as_mut() {
            u.file_descriptors = None;
            u.connections = None;
            u.threads = None;
        }
        m.record("s", &status);
        let text = registry.encode();
        for gone in [
            "mcp_server_file_descriptors{",
            "mcp_server_connections_active{",
            "mcp_server_threads{",
        ] {
            assert!(!text.contains(gone), "{gone} present in\n{text}");
        }
        assert!(text.contains("mcp_server_memory_usage_bytes{server=\"s\"} 1000"));
        assert!(text.contains("mcp_server_file_descriptors_limit{server=\"s\"} 1024"));
        status.found = Some(false);
        status.usage = None;
        m.record("s", &status);
        let text = registry.encode();
        assert!(
            text.contains("mcp_server_process_found{server=\"s\"} 0"),
            "{text}"
        );
        assert!(!text.contains("mcp_server_memory_usage_bytes{"), "{text}");
        m.remediation("s", "success");
        registry.remove_server("s");
        assert!(!registry.encode().contains("server=\"s\""));
    }
}
