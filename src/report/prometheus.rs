//! Reads a period from Prometheus' HTTP API (`[prometheus] url`, src/settings/prometheus.rs):
//! range queries of our own `mcp_server_*` gauges for the resource trends, and of `ALERTS` for
//! the alerts that fired.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::alerts::AlertFiring;
use super::resources::{ResourcePoint, ResourceSource, Resources};
use crate::settings::PrometheusConfig;

/// Why Prometheus could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PrometheusError {
    /// The request failed.
    #[error("query {query:?}: {source}")]
    Request {
        /// The PromQL.
        query: String,
        /// What went wrong.
        source: reqwest::Error,
    },
    /// Prometheus answered with an error.
    #[error("query {query:?}: {message}")]
    Answer {
        /// The PromQL.
        query: String,
        /// Its `error` (or the HTTP status).
        message: String,
    },
}

/// Points of a range query per series: labels, then `(unix seconds, value)`.
pub type Matrix = Vec<(BTreeMap<String, String>, Vec<(f64, f64)>)>;

#[derive(Deserialize)]
struct Answer {
    status: String,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    data: Option<Data>,
}

#[derive(Deserialize)]
struct Data {
    #[serde(default)]
    result: Vec<Series>,
}

#[derive(Deserialize)]
struct Series {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    #[serde(default)]
    values: Vec<(f64, String)>,
}

/// A client of one Prometheus.
#[derive(Debug, Clone)]
pub struct Prometheus {
    config: PrometheusConfig,
    client: reqwest::Client,
}

/// The resolution of a period's range queries: about 240 points, at least one a second.
pub fn step_of(since: f64, until: f64) -> Duration {
    Duration::from_secs_f64(((until - since) / 240.0).ceil().max(1.0))
}

/// `"…"` quoted as a PromQL string (backslashes and quotes escaped).
fn quoted(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

impl Prometheus {
    /// A client of the Prometheus of `config`.
    pub fn new(config: &PrometheusConfig) -> Prometheus {
        Prometheus {
            config: config.clone(),
            client: reqwest::Client::new(),
        }
    }

    /// `query` over `[since, until]` at `step`.
    pub async fn range(
        &self,
        query: &str,
        since: f64,
        until: f64,
        step: Duration,
    ) -> Result<Matrix, PrometheusError> {
        let request = |source| PrometheusError::Request {
            query: query.to_string(),
            source,
        };
        let mut url = self.config.url.clone();
        url.set_path(&format!(
            "{}/api/v1/query_range",
            self.config.url.path().trim_end_matches('/')
        ));
        url.query_pairs_mut()
            .append_pair("query", query)
            .append_pair("start", &format!("{since:.3}"))
            .append_pair("end", &format!("{until:.3}"))
            .append_pair("step", &format!("{}", step.as_secs_f64()));
        let body = self
            .client
            .get(url)
            .timeout(self.config.timeout)
            .send()
            .await
            .map_err(request)?
            .bytes()
            .await
            .map_err(request)?;
        let answer: Answer =
            serde_json::from_slice(&body).map_err(|e| PrometheusError::Answer {
                query: query.to_string(),
                message: format!("not a Prometheus API answer: {e}"),
            })?;
        if answer.status != "success" {
            return Err(PrometheusError::Answer {
                query: query.to_string(),
                message: answer.error.unwrap_or(answer.status),
            });
        }
        Ok(answer
            .data
            .map(|d| d.result)
            .unwrap_or_default()
            .into_iter()
            .map(|s| {
                let points = s
                    .values
                    .into_iter()
                    .filter_map(|(ts, v)| v.parse::<f64>().ok().map(|v| (ts, v)))
                    .collect();
                (s.metric, points)
            })
            .collect())
    }

    /// The resource trends of `server` from the gauges this exporter serves at /metrics
    /// (src/process/metrics.rs), one point per `step`.
    pub async fn resources(
        &self,
        server: &str,
        since: f64,
        until: f64,
    ) -> Result<Resources, PrometheusError> {
        let step = step_of(since, until);
        let mut figures: Vec<BTreeMap<i64, f64>> = Vec::new();
        for family in [
            "mcp_server_memory_usage_bytes",
            "mcp_server_cpu_usage_percent",
            "mcp_server_file_descriptors",
            "mcp_server_processes",
        ] {
            let query = format!("max({family}{{server={}}})", quoted(server));
            let matrix = self.range(&query, since, until, step).await?;
            figures.push(
                matrix
                    .into_iter()
                    .flat_map(|(_, points)| points)
                    .map(|(ts, v)| ((ts * 1000.0).round() as i64, v))
                    .collect(),
            );
        }
        let at = |i: usize, key: &i64| figures.get(i).and_then(|f| f.get(key)).copied();
        let points = figures
            .first()
            .into_iter()
            .flat_map(|memory| memory.iter())
            .map(|(key, memory)| ResourcePoint {
                ts: *key as f64 / 1000.0,
                memory_bytes: memory.max(0.0) as u64,
                cpu_percent: at(1, key),
                file_descriptors: at(2, key).map(|v| v.max(0.0) as u64),
                processes: at(3, key).map_or(0, |v| v.max(0.0) as u64),
            })
            .collect();
        Ok(Resources {
            source: ResourceSource::Prometheus,
            points,
        })
    }

    /// The alerts that fired in `[since, until]`: each unbroken run of `ALERTS{alertstate="firing"}`
    /// of one label set is one firing.
    pub async fn alerts(
        &self,
        since: f64,
        until: f64,
    ) -> Result<Vec<AlertFiring>, PrometheusError> {
        let step = step_of(since, until);
        let matrix = self
            .range("ALERTS{alertstate=\"firing\"}", since, until, step)
            .await?;
        Ok(firings(&matrix, step.as_secs_f64()))
    }
}

/// Each series' unbroken runs of points (no gap longer than `step`) as firings, oldest first.
pub fn firings(matrix: &Matrix, step: f64) -> Vec<AlertFiring> {
    let mut out = Vec::new();
    for (labels, points) in matrix {
        let mut run: Option<(f64, f64)> = None;
        let push = |out: &mut Vec<AlertFiring>, (start, end): (f64, f64)| {
            out.push(AlertFiring {
                alert: labels.get("alertname").cloned().unwrap_or_default(),
                server: labels.get("server").cloned(),
                severity: labels.get("severity").cloned(),
                start,
                end: Some(end),
            })
        };
        for &(ts, _) in points {
            run = match run {
                Some((start, end)) if ts - end <= step * 1.5 => Some((start, ts)),
                Some(done) => {
                    push(&mut out, done);
                    Some((ts, ts))
                }
                None => Some((ts, ts)),
            };
        }
        if let Some(done) = run {
            push(&mut out, done);
        }
    }
    out.sort_by(|a, b| a.start.total_cmp(&b.start));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_of_alerts_points_split_at_gaps_into_firings() {
        let labels: BTreeMap<String, String> = [
            ("alertname", "MCPServerDown"),
            ("server", "web"),
            ("severity", "critical"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let points = vec![
            (10.0, 1.0),
            (11.0, 1.0),
            (12.0, 1.0),
            (20.0, 1.0),
            (21.0, 1.0),
        ];
        let f = firings(&vec![(labels, points)], 1.0);
        assert_eq!(f.len(), 2, "{f:?}");
        assert_eq!((f[0].start, f[0].end), (10.0, Some(12.0)));
        assert_eq!((f[1].start, f[1].end), (20.0, Some(21.0)));
        assert_eq!(f[0].alert, "MCPServerDown");
        assert_eq!(f[0].server.as_deref(), Some("web"));
        assert_eq!(f[0].severity.as_deref(), Some("critical"));
    }

    #[test]
    fn steps_give_about_240_points_and_at_least_one_a_second() {
        assert_eq!(step_of(0.0, 86_400.0), Duration::from_secs(360));
        assert_eq!(step_of(0.0, 60.0), Duration::from_secs(1));
        assert_eq!(quoted("a\"b"), "\"a\\\"b\"");
    }
}
