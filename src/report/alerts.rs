//! The alerts that fired in a period: from Prometheus' `ALERTS` series when `[prometheus] url`
//! is configured (src/report/prometheus.rs), else from the health transitions in the store,
//! each period a server spent DEGRADED or UNHEALTHY being one firing of that status.

use serde::Serialize;

use crate::store::query::Transition;

/// Where the firings were read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertSource {
    /// Prometheus' `ALERTS{alertstate="firing"}`.
    Prometheus,
    /// The health transitions of the history store.
    Store,
}

/// One alert firing.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertFiring {
    /// The alert (`alertname`), or `health UNHEALTHY` / `health DEGRADED` from the store.
    pub alert: String,
    /// The `server` label, when the alert has one.
    pub server: Option<String>,
    /// The `severity` label, when the alert has one.
    pub severity: Option<String>,
    /// Unix time it was first seen firing.
    pub start: f64,
    /// Unix time it was last seen firing (Prometheus) or ended (store); `None` while it goes
    /// on (store).
    pub end: Option<f64>,
}

/// The alerts of the period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alerts {
    /// Where they come from.
    pub source: AlertSource,
    /// The firings, oldest first.
    pub fired: Vec<AlertFiring>,
}

/// Each stretch of `server`'s `transitions` (oldest first) in a status other than HEALTHY and
/// UNKNOWN, as a firing named after the status.
pub fn from_transitions(server: &str, transitions: &[Transition]) -> Vec<AlertFiring> {
    let alerting = |status: &str| matches!(status, "UNHEALTHY" | "DEGRADED");
    let mut out = Vec::new();
    let mut open: Option<(String, f64)> = None;
    for t in transitions {
        if open.as_ref().is_some_and(|(status, _)| *status == t.to) {
            continue;
        }
        if let Some((status, start)) = open.take() {
            out.push(firing(server, &status, start, Some(t.ts)));
        }
        if alerting(&t.to) {
            open = Some((t.to.clone(), t.ts));
        }
    }
    if let Some((status, start)) = open {
        out.push(firing(server, &status, start, None));
    }
    out
}

fn firing(server: &str, status: &str, start: f64, end: Option<f64>) -> AlertFiring {
    AlertFiring {
        alert: format!("health {status}"),
        server: Some(server.to_string()),
        severity: Some(
            if status == "UNHEALTHY" {
                "critical"
            } else {
                "warning"
            }
            .to_string(),
        ),
        start,
        end,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ts: f64, to: &str) -> Transition {
        Transition {
            ts,
            kind: String::new(),
            from: String::new(),
            to: to.into(),
            reason: String::new(),
        }
    }

    #[test]
    fn each_unhealthy_or_degraded_stretch_is_one_firing() {
        let f = from_transitions(
            "s",
            &[
                t(1.0, "HEALTHY"),
                t(2.0, "UNHEALTHY"),
                t(3.0, "UNHEALTHY"),
                t(4.0, "DEGRADED"),
                t(5.0, "HEALTHY"),
                t(6.0, "UNHEALTHY"),
            ],
        );
        let spans: Vec<(&str, f64, Option<f64>)> = f
            .iter()
            .map(|a| (a.alert.as_str(), a.start, a.end))
            .collect();
        assert_eq!(
            spans,
            vec![
                ("health UNHEALTHY", 2.0, Some(4.0)),
                ("health DEGRADED", 4.0, Some(5.0)),
                ("health UNHEALTHY", 6.0, None),
            ]
        );
        assert_eq!(f[1].severity.as_deref(), Some("warning"));
    }
}
