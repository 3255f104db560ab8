//! Outages from health transitions: a period is an outage from the transition that makes a
//! server UNHEALTHY until the one that makes it anything else (or the end of the report's
//! period, when it is still going). Its cause is the health model's reason: a critical
//! dependency (src/health.rs words it "critical dependency NAME is down") or the probe.

use serde::Serialize;

use crate::store::query::Transition;

/// What made the server UNHEALTHY.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Cause {
    /// The probe failed.
    Probe,
    /// A critical dependency was down.
    Dependency,
}

/// One outage.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outage {
    /// Unix time it began (the period's start when it began before).
    pub start: f64,
    /// Unix time it ended; `None` while it goes on.
    pub end: Option<f64>,
    /// Seconds within the period.
    pub duration_seconds: f64,
    /// The reason of the transition that began it.
    pub reason: String,
    /// Probe or dependency.
    pub cause: Cause,
}

/// The cause named by a transition's reason words.
pub fn cause_of(reason: &str) -> Cause {
    if reason
        .split("; ")
        .any(|r| r.starts_with("critical dependency "))
    {
        Cause::Dependency
    } else {
        Cause::Probe
    }
}

const UNHEALTHY: &str = "UNHEALTHY";

/// The outages in `transitions` (oldest first) within `[since, until)`.
pub fn outages(transitions: &[Transition], since: f64, until: f64) -> Vec<Outage> {
    let mut out = Vec::new();
    let mut open: Option<(f64, String)> = None;
    // Already down when the period began: the first transition leaves UNHEALTHY.
    if let Some(first) = transitions.first()
        && first.from == UNHEALTHY
        && first.to != UNHEALTHY
    {
        open = Some((since, "UNHEALTHY since before the period began".to_string()));
    }
    for t in transitions {
        match (&open, t.to == UNHEALTHY) {
            (None, true) => open = Some((t.ts, t.reason.clone())),
            (Some((start, reason)), false) => {
                out.push(Outage {
                    start: *start,
                    end: Some(t.ts),
                    duration_seconds: t.ts - start,
                    cause: cause_of(reason),
                    reason: reason.clone(),
                });
                open = None;
            }
            _ => {}
        }
    }
    if let Some((start, reason)) = open {
        out.push(Outage {
            start,
            end: None,
            duration_seconds: until - start,
            cause: cause_of(&reason),
            reason,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ts: f64, from: &str, to: &str, reason: &str) -> Transition {
        Transition {
            ts,
            kind: String::new(),
            from: from.into(),
            to: to.into(),
            reason: reason.into(),
        }
    }

    #[test]
    fn outages_run_from_unhealthy_to_anything_else_and_name_their_cause() {
        let transitions = [
            t(10.0, "UNKNOWN", "HEALTHY", ""),
            t(20.0, "HEALTHY", "UNHEALTHY", "down at handshake: refused"),
            t(20.5, "UNHEALTHY", "UNHEALTHY", "down at ping: hung"),
            t(30.0, "UNHEALTHY", "HEALTHY", ""),
            t(
                40.0,
                "HEALTHY",
                "UNHEALTHY",
                "critical dependency db is down: refused",
            ),
        ];
        let found = outages(&transitions, 0.0, 100.0);
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!((found[0].start, found[0].end), (20.0, Some(30.0)));
        assert_eq!(found[0].cause, Cause::Probe);
        assert_eq!(found[0].reason, "down at handshake: refused");
        assert_eq!((found[1].start, found[1].end), (40.0, None));
        assert_eq!(found[1].duration_seconds, 60.0);
        assert_eq!(found[1].cause, Cause::Dependency);
    }

    #[test]
    fn an_outage_going_on_when_the_period_began_starts_with_it() {
        let found = outages(&[t(50.0, "UNHEALTHY", "HEALTHY", "")], 0.0, 100.0);
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].start, found[0].end), (0.0, Some(50.0)));
    }
}
