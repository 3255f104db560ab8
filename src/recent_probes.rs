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

/// A kept probe, stored compactly: a fleet keeps tens of thousands of them (10 successes and up
/// to 30 failures per server), and a narrative of one `String` per step costs an allocation and
/// its slack per line.
#[derive(Debug)]
struct KeptProbe {
    at_unix: f64,
    duration_seconds: f64,
    success: bool,
    summary: Box<str>,
    /// The steps, one after another.
    steps: Box<str>,
    /// Where each step ends in `steps`.
    step_ends: Box<[u32]>,
    trace_id: Option<Box<str>>,
}

impl KeptProbe {
    /// Keeps `probe`; `None` when its steps are too long for the offsets (never, in practice).
    fn new(probe: RecentProbe) -> Option<Self> {
        let mut steps = String::with_capacity(probe.steps.iter().map(String::len).sum());
        let mut step_ends = Vec::with_capacity(probe.steps.len());
        for step in &probe.steps {
            steps.push_str(step);
            step_ends.push(u32::try_from(steps.len()).ok()?);
        }
        Some(KeptProbe {
            at_unix: probe.at_unix,
            duration_seconds: probe.duration_seconds,
            success: probe.success,
            summary: probe.summary.into_boxed_str(),
            steps: steps.into_boxed_str(),
            step_ends: step_ends.into_boxed_slice(),
            trace_id: probe.trace_id.map(String::into_boxed_str),
        })
    }

    fn to_probe(&self) -> RecentProbe {
        let mut start = 0;
        let steps = self
            .step_ends
            .iter()
            .map(|end| {
                let end = *end as usize;
                let step = self.steps[start..end].to_string();
                start = end;
                step
            })
            .collect();
        RecentProbe {
            at_unix: self.at_unix,
            duration_seconds: self.duration_seconds,
            success: self.success,
            summary: self.summary.to_string(),
            steps,
            trace_id: self.trace_id.as_deref().map(str::to_string),
        }
    }
}

#[derive(Debug, Default)]
struct Kept {
    successes: VecDeque<KeptProbe>,
    failures: VecDeque<KeptProbe>,
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
            .map(KeptProbe::to_probe)
            .collect();
        all.sort_by(|a, b| b.at_unix.total_cmp(&a.at_unix));
        all
    }
}

/// Appends `probe`, dropping the oldest beyond `limit`; the queue never grows past `limit`, so
/// its buffer stays at that size.
fn push_bounded(queue: &mut VecDeque<KeptProbe>, probe: RecentProbe, limit: usize) {
    let Some(probe) = KeptProbe::new(probe) else {
        return;
    };
    if queue.len() == limit {
        queue.pop_front();
    }
    if queue.capacity() == 0 {
        queue.reserve_exact(limit);
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

    #[test]
    fn a_kept_probe_reads_back_as_it_was_recorded() {
        let recorded = RecentProbe {
            at_unix: 12.5,
            duration_seconds: 0.25,
            success: false,
            summary: "down at connect: refused".into(),
            steps: vec![
                "probe of s (http liveness, deadline 5000.0ms)".into(),
                String::new(),
                "FAILED: refused\nwith a newline (after 1.0ms)".into(),
            ],
            trace_id: Some("4bf92f3577b34da6a3ce929d0e0e4736".into()),
        };
        let back = KeptProbe::new(recorded.clone()).expect("fits").to_probe();
        assert_eq!(
            serde_json::to_value(&back).expect("json"),
            serde_json::to_value(&recorded).expect("json")
        );
    }
}
