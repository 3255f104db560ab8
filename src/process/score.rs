//! `mcp_resource_usage_score`: how close a server's process tree is to its budgets, 0..1.
//!
//! score = clamp(max(cpu, memory, fds), 0, 1), where
//! - cpu    = (cpu_percent / 100) / budgets.cpu_cores
//! - memory = memory_bytes / budgets.memory_bytes
//! - fds    = file_descriptors / (budgets.fd_fraction × soft fd limit of the main process)
//!
//! The maximum, not the mean, so one exhausted resource is never hidden by idle others. A term
//! whose input is unknown (CPU on the first sample, an unlimited fd limit, fds a sampler cannot
//! count) is left out.

use super::config::Budgets;
use super::usage::Usage;

/// The score of `usage` against `budgets` (see the module documentation).
pub fn score(usage: &Usage, budgets: &Budgets) -> f64 {
    let cpu = usage
        .cpu_percent
        .map(|p| p / 100.0 / budgets.cpu_cores)
        .unwrap_or(0.0);
    let memory = usage.memory_bytes as f64 / budgets.memory_bytes as f64;
    let fds = usage
        .file_descriptors_limit
        .filter(|l| *l > 0)
        .zip(usage.file_descriptors)
        .map(|(limit, fds)| fds as f64 / (budgets.fd_fraction * limit as f64))
        .unwrap_or(0.0);
    let worst = cpu.max(memory).max(fds);
    if worst.is_finite() {
        worst.clamp(0.0, 1.0)
    } else {
        1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(cpu: Option<f64>, mem: u64, fds: u64, limit: Option<u64>) -> Usage {
        Usage {
            processes: 1,
            main_pid: 1,
            cpu_percent: cpu,
            memory_bytes: mem,
            file_descriptors: Some(fds),
            file_descriptors_limit: limit,
            connections: Some(0),
            listening_sockets: Some(0),
            threads: Some(1),
            start_time_seconds: 0.0,
        }
    }

    #[test]
    fn table() {
        let b = Budgets::default();
        let cases = [
            (usage(None, 0, 0, None), 0.0),
            (usage(Some(50.0), 0, 0, None), 0.5),
            (usage(Some(250.0), 0, 0, None), 1.0),
            (usage(Some(10.0), 1_000_000_000, 0, None), 0.5),
            (usage(Some(10.0), 0, 400, Some(1000)), 0.5),
            (usage(Some(10.0), 0, 400, None), 0.1),
            (usage(None, 0, 10, Some(0)), 0.0),
        ];
        for (u, want) in cases {
            let got = score(&u, &b);
            assert!((got - want).abs() < 1e-9, "{u:?}: {got} != {want}");
        }
        let two_cores = Budgets {
            cpu_cores: 2.0,
            ..b
        };
        assert!((score(&usage(Some(100.0), 0, 0, None), &two_cores) - 0.5).abs() < 1e-9);
        // A sampler that cannot count fds: the term is left out even with a known limit.
        let no_fds = Usage {
            file_descriptors: None,
            ..usage(Some(10.0), 0, 0, Some(1000))
        };
        assert!((score(&no_fds, &b) - 0.1).abs() < 1e-9);
    }
}
