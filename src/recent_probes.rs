//! The recent probes of each server, told step by step, for its page (`/servers/<name>`,
//! src/web/server_page.rs). Failures are kept longer than successes, as blackbox_exporter's
//! recent-probes page does: a failure at 3 a.m. is still there at 9 after hundreds of good
//! probes. A sink of the assessments (src/assessment/), filled from the same outcome every other
//! sink sees.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, RwLock};

use serde::Serialize;

use crate::assessment::{Assessment, Sink};
use crate::probe::narrative;

/// Successful probes kept per server.
pub const SUCCESSES_KEPT: usize = 10;
/// Failed probes kept per server.
pub const FAILURES_KEPT: usize = 30;

/// One probe as its server's page shows it.
#[derive(Debug, Clone, Serialize)]
pub struct RecentProbe {
    /// Unix time the probe started.
    pub at_unix: f64,
    /// How long it took, in seconds.
    pub duration_seconds: f64,
    /// Every stage of the check passed.
    pub success: bool,
    /// `ok`, `ok with warnings: ...` or `class at stage: reason`.
    pub summary: String,
    /// The probe step by step (src/probe/narrative.rs).
    pub steps: Vec<String>,
    /// The probe's OpenTelemetry trace id, when it was traced (docs/tracing.md).
    pub trace_id: Option<String>,
}

#[derive(Debug, Default)]
struct Kept {
    successes: VecDeque<RecentProbe>,
    failures: VecDeque<RecentProbe>,
}

/// Server name -> its recent probes.
#[derive(Debug, Clone, Default)]
pub struct RecentProbes(Arc<RwLock<BTreeMap<String, Kept>>>);

impl RecentProbes {
    /// The kept probes of `server`, newest first.
    pub fn of(&self, server: &str) -> Vec<RecentProbe> {
        let map = self.0.read().unwrap_or_else(|p| p.into_inner());
        let Some(kept) = map.get(server) else {
            return Vec::new();
        };
        let mut all: Vec<RecentProbe> = kept
            .successes
            .iter()
            .chain(kept.failures.iter())
            .cloned()
            .collect();
        all.sort_by(|a, b| b.at_unix.total_cmp(&a.at_unix));
        all
    }
}

fn push_bounded(queue: &mut VecDeque<RecentProbe>, probe: RecentProbe, limit: usize) {
    if queue.len() == limit {
        queue.pop_front();
    }
    queue.push_back(probe);
}

impl Sink for RecentProbes {
    fn server_removed(&self, server: &str) {
        self.0
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(server);
    }

    fn assessed(&self, a: &Assessment) {
        let Some(outcome) = a.new_probe() else {
            return;
        };
        let probe = RecentProbe {
            at_unix: crate::wall_clock::unix_seconds(outcome.started_at),
            duration_seconds: outcome.duration.as_secs_f64(),
            success: outcome.success,
            summary: outcome.summary(),
            steps: narrative::narrate(&a.server, outcome),
            trace_id: outcome.trace_id.clone(),
        };
        let mut map = self.0.write().unwrap_or_else(|p| p.into_inner());
        let kept = map.entry(a.name().to_string()).or_default();
        if probe.success {
            push_bounded(&mut kept.successes, probe, SUCCESSES_KEPT);
        } else {
            push_bounded(&mut kept.failures, probe, FAILURES_KEPT);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(at: f64, success: bool) -> RecentProbe {
        RecentProbe {
            at_unix: at,
            duration_seconds: 0.1,
            success,
            summary: String::new(),
            steps: Vec::new(),
            trace_id: None,
        }
    }

    #[test]
    fn failures_outlive_many_later_successes_and_come_newest_first() {
        let recent = RecentProbes::default();
        {
            let mut map = recent.0.write().expect("lock");
            let kept = map.entry("s".into()).or_default();
            push_bounded(&mut kept.failures, probe(1.0, false), FAILURES_KEPT);
            for i in 0..100 {
                push_bounded(
                    &mut kept.successes,
                    probe(10.0 + i as f64, true),
                    SUCCESSES_KEPT,
                );
            }
        }
        let all = recent.of("s");
        assert_eq!(all.len(), SUCCESSES_KEPT + 1);
        assert_eq!(all[0].at_unix, 109.0, "newest first");
        assert!(
            !all.last().expect("oldest").success,
            "the old failure is kept"
        );
        assert!(recent.of("other").is_empty());
    }
}
