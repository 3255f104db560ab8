//! The one place that decides a server's health, from observations. Pure and table-tested.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

use crate::probe::ProbeOutcome;

/// The playbook's health scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum HealthStatus {
    /// Status cannot be determined (no complete observation yet).
    Unknown,
    /// Critical issues: the probe failed.
    Unhealthy,
    /// Works, with non-critical issues (slow, warnings).
    Degraded,
    /// All systems operational.
    Healthy,
}

impl HealthStatus {
    /// The numeric code of every `*_status` gauge: 2, 1, 0, -1.
    pub fn code(self) -> i64 {
        match self {
            HealthStatus::Healthy => 2,
            HealthStatus::Degraded => 1,
            HealthStatus::Unhealthy => 0,
            HealthStatus::Unknown => -1,
        }
    }

    /// The word shown to operators.
    pub fn word(self) -> &'static str {
        match self {
            HealthStatus::Healthy => "HEALTHY",
            HealthStatus::Degraded => "DEGRADED",
            HealthStatus::Unhealthy => "UNHEALTHY",
            HealthStatus::Unknown => "UNKNOWN",
        }
    }
}

impl fmt::Display for HealthStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.word())
    }
}

/// A status with the reasons that led to it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Health {
    /// The status.
    pub status: HealthStatus,
    /// Why; empty when healthy.
    pub reasons: Vec<String>,
}

/// Decides health from the last probe of a server (`None` before the first one completed).
///
/// UNKNOWN before any observation; UNHEALTHY when the probe failed; DEGRADED when it
/// succeeded with warnings or its latency exceeds `degraded_latency`; HEALTHY otherwise.
pub fn assess(last_probe: Option<&ProbeOutcome>, degraded_latency: Duration) -> Health {
    let Some(probe) = last_probe else {
        return Health {
            status: HealthStatus::Unknown,
            reasons: vec!["no probe has completed yet".into()],
        };
    };
    if let Some(failure) = &probe.failure {
        return Health {
            status: HealthStatus::Unhealthy,
            reasons: vec![format!(
                "{} at {}: {}",
                failure.class,
                failure.stage.as_str(),
                failure.reason
            )],
        };
    }
    let mut reasons = probe.warnings.clone();
    if let Some(latency) = probe.latency
        && latency > degraded_latency
    {
        reasons.push(format!(
            "slow: {} ms latency is over the {} ms threshold",
            latency.as_millis(),
            degraded_latency.as_millis()
        ));
    }
    let status = if reasons.is_empty() {
        HealthStatus::Healthy
    } else {
        HealthStatus::Degraded
    };
    Health { status, reasons }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::probe::{FailureClass, Stage};

    fn probe(ok: bool, warnings: &[&str], latency_ms: u64) -> ProbeOutcome {
        let mut p = ProbeOutcome::started(SystemTime::now());
        p.up = ok;
        p.success = ok;
        p.latency = Some(Duration::from_millis(latency_ms));
        p.warnings = warnings.iter().map(|w| w.to_string()).collect();
        if !ok {
            p.fail(Stage::Ping, FailureClass::Down, "no answer");
        }
        p
    }

    #[test]
    fn table() {
        let threshold = Duration::from_millis(100);
        let cases: Vec<(Option<ProbeOutcome>, HealthStatus)> = vec![
            (None, HealthStatus::Unknown),
            (Some(probe(true, &[], 10)), HealthStatus::Healthy),
            (Some(probe(true, &[], 100)), HealthStatus::Healthy),
            (Some(probe(true, &[], 101)), HealthStatus::Degraded),
            (
                Some(probe(true, &["ping unsupported"], 10)),
                HealthStatus::Degraded,
            ),
            (Some(probe(false, &[], 10)), HealthStatus::Unhealthy),
            (Some(probe(false, &["x"], 500)), HealthStatus::Unhealthy),
        ];
        for (input, want) in cases {
            let got = assess(input.as_ref(), threshold);
            assert_eq!(got.status, want, "{input:?} -> {got:?}");
            assert_eq!(
                got.reasons.is_empty(),
                want == HealthStatus::Healthy,
                "{got:?}"
            );
        }
    }

    #[test]
    fn codes_follow_the_playbook() {
        assert_eq!(HealthStatus::Healthy.code(), 2);
        assert_eq!(HealthStatus::Degraded.code(), 1);
        assert_eq!(HealthStatus::Unhealthy.code(), 0);
        assert_eq!(HealthStatus::Unknown.code(), -1);
    }

    #[test]
    fn unhealthy_reason_names_class_and_stage() {
        let h = assess(Some(&probe(false, &[], 1)), Duration::from_secs(1));
        assert_eq!(h.reasons, vec!["down at ping: no answer".to_string()]);
    }
}
