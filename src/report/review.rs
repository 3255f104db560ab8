//! The review part of a report: each bundled alert's threshold against what the period showed,
//! with a suggested value and why. Thresholds are read from the rules bundled into the binary
//! (`crate::bundle::RULES_YML`, alerts/mcp-exporter.rules.yml), never copied here.

use serde::Serialize;

use super::ServerReport;
use crate::probe::metrics::DURATION_BUCKETS;

/// One alert's threshold against the period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ThresholdReview {
    /// The bundled alert.
    pub alert: String,
    /// What the alert compares (e.g. `p95 latency`).
    pub measure: String,
    /// Its threshold, in `unit`; `None` when the bundled rule could not be read.
    pub threshold: Option<f64>,
    /// The unit of `threshold`, `observed` and `suggested`.
    pub unit: String,
    /// The worst value seen in the period; `None` without observations.
    pub observed: Option<f64>,
    /// The server it was seen on.
    pub server: Option<String>,
    /// The threshold this period suggests.
    pub suggested: Option<f64>,
    /// Why.
    pub why: String,
}

/// The number an alert's expression compares against: the right side of its first `>`
/// (products of numbers such as `2 * 1024 * 1024 * 1024` evaluated), up to `unless`/`and`/`or`.
pub fn threshold_of(rules_yml: &str, alert: &str) -> Option<f64> {
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(rules_yml).ok()?;
    let expr = doc["groups"]
        .as_sequence()?
        .iter()
        .filter_map(|g| g["rules"].as_sequence())
        .flatten()
        .find(|r| r["alert"].as_str() == Some(alert))?["expr"]
        .as_str()?
        .to_string();
    let right = expr.split_once(" > ")?.1;
    let right = [" unless ", " and ", " or "]
        .iter()
        .fold(right, |text, word| text.split(word).next().unwrap_or(text));
    right
        .split('*')
        .map(|factor| factor.trim().parse::<f64>().ok())
        .product::<Option<f64>>()
}

/// A worst value and the server it was seen on.
type Worst = Option<(f64, String)>;

fn worst(servers: &[ServerReport], value: impl Fn(&ServerReport) -> Option<f64>) -> Worst {
    servers
        .iter()
        .filter_map(|s| value(s).map(|v| (v, s.server.clone())))
        .max_by(|a, b| a.0.total_cmp(&b.0))
}

/// The suggestion for `threshold` given the worst `observed`: keep it when crossed (the alert
/// was right to fire; look into it before moving it) or when within a tenth of it; otherwise
/// `tighten(observed)`, a value nearer to what the servers really do.
fn suggest(
    threshold: Option<f64>,
    observed: Option<f64>,
    unit: &str,
    tighten: impl Fn(f64) -> f64,
) -> (Option<f64>, String) {
    match (threshold, observed) {
        (None, _) => (
            None,
            "the bundled rule's threshold could not be read".into(),
        ),
        (Some(t), None) => (Some(t), "nothing observed in the period; keep it".into()),
        (Some(t), Some(o)) if o > t => (
            Some(t),
            format!("crossed: {o:.3} {unit} observed; find out why before raising it"),
        ),
        (Some(t), Some(o)) if o * 10.0 >= t => (
            Some(t),
            format!("the worst, {o:.3} {unit}, is within a tenth of it; keep it"),
        ),
        (Some(t), Some(o)) => {
            let suggested = tighten(o).min(t);
            (
                Some(suggested),
                format!(
                    "the worst, {o:.3} {unit}, is under a tenth of it: a regression would go unseen for long; {suggested} {unit} still leaves 3x headroom"
                ),
            )
        }
    }
}

/// The smallest bucket bound of `mcp_request_duration_seconds` at or above `seconds` (a
/// quantile's threshold on a bound compares exactly), or `seconds` past the last.
fn bucket_at_or_above(seconds: f64) -> f64 {
    DURATION_BUCKETS
        .iter()
        .copied()
        .find(|le| *le >= seconds)
        .unwrap_or(seconds)
}

/// A value rounded up to one significant digit (e.g. 0.37 -> 0.4, 1234 -> 2000).
fn round_up(value: f64) -> f64 {
    if value <= 0.0 {
        return 0.0;
    }
    let magnitude = 10f64.powf(value.log10().floor());
    (value / magnitude).ceil() * magnitude
}

/// Reviews the bundled latency, memory and CPU thresholds against `servers`' period.
pub fn review(servers: &[ServerReport], rules_yml: &str) -> Vec<ThresholdReview> {
    let worst_p95_seconds = worst(servers, |s| {
        s.series
            .current
            .slots
            .iter()
            .filter_map(|x| x.latency.p95_ms)
            .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))))
            .map(|ms| ms / 1e3)
    });
    let worst_memory_mib = worst(servers, |s| {
        s.resources
            .points
            .iter()
            .map(|p| p.memory_bytes as f64 / 1048576.0)
            .reduce(f64::max)
    });
    let worst_cpu = worst(servers, |s| {
        s.resources
            .points
            .iter()
            .filter_map(|p| p.cpu_percent)
            .reduce(f64::max)
    });
    let mut out = Vec::new();
    let mut add = |alert: &str,
                   measure: &str,
                   unit: &str,
                   threshold: Option<f64>,
                   observed: Worst,
                   tighten: &dyn Fn(f64) -> f64| {
        let (suggested, why) = suggest(threshold, observed.as_ref().map(|w| w.0), unit, tighten);
        out.push(ThresholdReview {
            alert: alert.into(),
            measure: measure.into(),
            threshold,
            unit: unit.into(),
            observed: observed.as_ref().map(|w| w.0),
            server: observed.map(|w| w.1),
            suggested,
            why,
        });
    };
    add(
        "MCPSlowResponseTime",
        "p95 latency of a slot of the period",
        "s",
        threshold_of(rules_yml, "MCPSlowResponseTime"),
        worst_p95_seconds,
        &|o| bucket_at_or_above(o * 3.0),
    );
    add(
        "MCPHighMemoryUsage",
        "resident memory of a process tree",
        "MiB",
        threshold_of(rules_yml, "MCPHighMemoryUsage").map(|bytes| bytes / 1048576.0),
        worst_memory_mib,
        &|o| round_up(o * 3.0),
    );
    add(
        "MCPHighCPUUsage",
        "CPU of a process tree",
        "% of a core",
        threshold_of(rules_yml, "MCPHighCPUUsage"),
        worst_cpu,
        &|o| round_up(o * 3.0),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::RULES_YML;

    #[test]
    fn thresholds_are_read_from_the_bundled_rules() {
        assert_eq!(threshold_of(RULES_YML, "MCPSlowResponseTime"), Some(5.0));
        assert_eq!(
            threshold_of(RULES_YML, "MCPHighMemoryUsage"),
            Some(2.0 * 1024.0 * 1024.0 * 1024.0)
        );
        assert_eq!(threshold_of(RULES_YML, "MCPHighCPUUsage"), Some(90.0));
        assert_eq!(threshold_of(RULES_YML, "NoSuchAlert"), None);
    }

    #[test]
    fn a_crossed_threshold_is_kept_and_a_far_one_tightened_to_a_bucket() {
        let tighten = |o: f64| bucket_at_or_above(o * 3.0);
        let (s, why) = suggest(Some(5.0), Some(7.0), "s", tighten);
        assert_eq!(s, Some(5.0));
        assert!(why.starts_with("crossed"), "{why}");
        let (s, why) = suggest(Some(5.0), Some(0.03), "s", tighten);
        assert_eq!(s, Some(0.1), "{why}");
        let (s, _) = suggest(Some(5.0), Some(1.0), "s", tighten);
        assert_eq!(s, Some(5.0));
        assert_eq!(suggest(Some(5.0), None, "s", tighten).0, Some(5.0));
        assert_eq!(round_up(0.37), 0.4);
        assert_eq!(round_up(1234.0), 2000.0);
    }
}
