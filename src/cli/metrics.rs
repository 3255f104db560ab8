//! `mcp-exporter metrics`: reads a running daemon's `/metrics` and summarizes it per server:
//! up, health, p50/p95/p99 per method (PromQL `histogram_quantile` on the buckets), error rate,
//! tool call times, CPU, memory, file descriptors.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::StreamExt;
use serde::Serialize;

use crate::health::HealthStatus;
use crate::quantile::{Bucket, histogram_quantile};

/// Deadline of the whole scrape.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest `/metrics` body read.
const MAX_BODY: usize = 32 * 1024 * 1024;

/// `--output` of `metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MetricsOutput {
    /// Per-server summary for humans.
    Summary,
    /// The summary as JSON.
    Json,
    /// The raw exposition (only the selected server's series with --server).
    Prometheus,
}

/// Arguments of `metrics`.
#[derive(Debug, Clone, clap::Args)]
pub struct MetricsArgs {
    /// The daemon's metrics URL.
    #[arg(
        long,
        env = "MCP_EXPORTER_URL",
        default_value = "http://127.0.0.1:8931/metrics"
    )]
    pub url: String,
    /// Only this server.
    #[arg(long)]
    pub server: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = MetricsOutput::Summary)]
    pub output: MetricsOutput,
}

/// Latency percentiles of one histogram series (seconds; `None` without observations).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Percentiles {
    /// Observations.
    pub count: f64,
    /// Median.
    pub p50: Option<f64>,
    /// 95th percentile.
    pub p95: Option<f64>,
    /// 99th percentile.
    pub p99: Option<f64>,
}

/// One method's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MethodSummary {
    /// Latency percentiles (seconds).
    #[serde(flatten)]
    pub latency: Percentiles,
    /// Requests by outcome.
    pub requests: BTreeMap<String, f64>,
    /// Share of requests that did not return a result (0..1); `None` without requests.
    pub error_rate: Option<f64>,
}

/// One server's summary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServerSummary {
    /// `mcp_server_up`.
    pub up: Option<f64>,
    /// Health word from `mcp_server_health_status`.
    pub health: Option<String>,
    /// By method.
    pub methods: BTreeMap<String, MethodSummary>,
    /// Tool call latency by tool.
    pub tools: BTreeMap<String, Percentiles>,
    /// `mcp_server_cpu_usage_percent`, when the daemon samples processes.
    pub cpu_percent: Option<f64>,
    /// `mcp_server_memory_usage_bytes`.
    pub memory_bytes: Option<f64>,
    /// `mcp_server_file_descriptors`.
    pub file_descriptors: Option<f64>,
}

/// Why `metrics` failed.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The request failed.
    #[error("cannot read {url}: {detail} (is `mcp-exporter serve` running there? pass --url)")]
    Fetch {
        /// URL.
        url: String,
        /// Cause.
        detail: String,
    },
    /// The body is not the Prometheus text format.
    #[error("{url} did not answer in the Prometheus text format: {0}", url = .1)]
    Parse(String, String),
}

/// Runs `metrics`; returns the exit status.
pub fn run(args: MetricsArgs) -> u8 {
    let runtime = match super::runtime() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: {err}");
            return 1;
        }
    };
    let text = match runtime.block_on(fetch(&args.url)) {
        Ok(t) => t,
        Err(err) => {
            eprintln!("error: {err}");
            return 1;
        }
    };
    if args.output == MetricsOutput::Prometheus {
        print!("{}", filter_exposition(&text, args.server.as_deref()));
        return 0;
    }
    let mut summary = match summarize(&text) {
        Ok(s) => s,
        Err(detail) => {
            eprintln!("error: {}", MetricsError::Parse(detail, args.url));
            return 1;
        }
    };
    if let Some(name) = &args.server {
        summary.retain(|k, _| k == name);
        if summary.is_empty() {
            eprintln!("error: {} has no series of server {name:?}", args.url);
            return 1;
        }
    }
    match args.output {
        MetricsOutput::Json => println!(
            "{}",
            serde_json::to_string_pretty(&summary).unwrap_or_default()
        ),
        _ => print!("{}", summary_text(&summary)),
    }
    0
}

/// GETs `url` with a deadline and a body bound.
pub async fn fetch(url: &str) -> Result<String, MetricsError> {
    let err = |detail: String| MetricsError::Fetch {
        url: url.to_string(),
        detail,
    };
    let client = reqwest::Client::builder()
        .timeout(SCRAPE_TIMEOUT)
        .build()
        .map_err(|e| err(e.to_string()))?;
    let response = client
        .get(url)
        .header("Accept", "text/plain;version=0.0.4")
        .send()
        .await
        .map_err(|e| err(e.to_string()))?;
    if !response.status().is_success() {
        return Err(err(format!("HTTP {}", response.status())));
    }
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| err(e.to_string()))?;
        if body.len() + chunk.len() > MAX_BODY {
            return Err(err(format!("body larger than {MAX_BODY} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    String::from_utf8(body).map_err(|_| err("body is not UTF-8".into()))
}

/// Keeps comments and the samples of `server` (all samples without one).
pub fn filter_exposition(text: &str, server: Option<&str>) -> String {
    let Some(server) = server else {
        return text.to_string();
    };
    let needle = format!("server=\"{server}\"");
    text.lines()
        .filter(|l| l.starts_with('#') || l.contains(&needle))
        .map(|l| format!("{l}\n"))
        .collect()
}

fn percentiles(buckets: &[Bucket]) -> Percentiles {
    let some = |v: f64| (!v.is_nan()).then_some(v);
    Percentiles {
        count: buckets
            .iter()
            .find(|b| b.le.is_infinite())
            .map(|b| b.count)
            .unwrap_or(0.0),
        p50: some(histogram_quantile(0.5, buckets)),
        p95: some(histogram_quantile(0.95, buckets)),
        p99: some(histogram_quantile(0.99, buckets)),
    }
}

/// Summarizes an exposition per server.
pub fn summarize(text: &str) -> Result<BTreeMap<String, ServerSummary>, String> {
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .map_err(|e| e.to_string())?;
    let mut out: BTreeMap<String, ServerSummary> = BTreeMap::new();
    for sample in &scrape.samples {
        let Some(server) = sample.labels.get("server") else {
            continue;
        };
        let s = out
            .entry(server.to_string())
            .or_insert_with(|| ServerSummary {
                up: None,
                health: None,
                methods: BTreeMap::new(),
                tools: BTreeMap::new(),
                cpu_percent: None,
                memory_bytes: None,
                file_descriptors: None,
            });
        let scalar = match &sample.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => Some(*v),
            _ => None,
        };
        let buckets = match &sample.value {
            prometheus_parse::Value::Histogram(hs) => hs
                .iter()
                .map(|h| Bucket {
                    le: h.less_than,
                    count: h.count,
                })
                .collect(),
            _ => Vec::new(),
        };
        let empty_method = || MethodSummary {
            latency: percentiles(&[]),
            requests: BTreeMap::new(),
            error_rate: None,
        };
        match sample.metric.as_str() {
            "mcp_server_up" => s.up = scalar,
            "mcp_server_health_status" => s.health = scalar.map(|v| health_word(v).into()),
            "mcp_server_cpu_usage_percent" => s.cpu_percent = scalar,
            "mcp_server_memory_usage_bytes" => s.memory_bytes = scalar,
            "mcp_server_file_descriptors" => s.file_descriptors = scalar,
            "mcp_request_duration_seconds" => {
                if let Some(method) = sample.labels.get("method") {
                    s.methods
                        .entry(method.into())
                        .or_insert_with(empty_method)
                        .latency = percentiles(&buckets);
                }
            }
            "mcp_tool_execution_duration_seconds" => {
                if let Some(tool) = sample.labels.get("tool") {
                    s.tools.insert(tool.into(), percentiles(&buckets));
                }
            }
            "mcp_requests_total" | "mcp_requests" => {
                if let (Some(method), Some(outcome), Some(v)) = (
                    sample.labels.get("method"),
                    sample.labels.get("outcome"),
                    scalar,
                ) {
                    s.methods
                        .entry(method.into())
                        .or_insert_with(empty_method)
                        .requests
                        .insert(outcome.into(), v);
                }
            }
            _ => {}
        }
    }
    for s in out.values_mut() {
        for m in s.methods.values_mut() {
            let total: f64 = m.requests.values().sum();
            // As the recording rule server:mcp_request_errors:ratio_rate5m: only `error`
            // counts; a legacy server's `unsupported` era probe is not a failure.
            let errors = m.requests.get("error").copied().unwrap_or(0.0);
            m.error_rate = (total > 0.0).then(|| errors / total);
        }
    }
    Ok(out)
}

fn health_word(code: f64) -> &'static str {
    match code as i64 {
        2 => HealthStatus::Healthy.word(),
        1 => HealthStatus::Degraded.word(),
        0 => HealthStatus::Unhealthy.word(),
        _ => HealthStatus::Unknown.word(),
    }
}

fn ms(v: Option<f64>) -> String {
    v.map(|s| format!("{:.1}ms", s * 1000.0))
        .unwrap_or_else(|| "-".into())
}

/// The summary as text.
pub fn summary_text(summary: &BTreeMap<String, ServerSummary>) -> String {
    let mut out = String::new();
    for (name, s) in summary {
        out.push_str(&format!(
            "{name}: up={} health={}",
            s.up.map(|v| v.to_string()).unwrap_or_else(|| "-".into()),
            s.health.as_deref().unwrap_or("-")
        ));
        if let Some(cpu) = s.cpu_percent {
            out.push_str(&format!(" cpu={cpu:.1}%"));
        }
        if let Some(mem) = s.memory_bytes {
            out.push_str(&format!(" memory={:.1}MiB", mem / (1024.0 * 1024.0)));
        }
        if let Some(fds) = s.file_descriptors {
            out.push_str(&format!(" fds={fds}"));
        }
        out.push('\n');
        if !s.methods.is_empty() {
            out.push_str(&format!(
                "  {:<16} {:>8} {:>10} {:>10} {:>10} {:>8}\n",
                "METHOD", "COUNT", "P50", "P95", "P99", "ERRORS"
            ));
        }
        for (method, m) in &s.methods {
            out.push_str(&format!(
                "  {:<16} {:>8} {:>10} {:>10} {:>10} {:>8}\n",
                method,
                m.latency.count,
                ms(m.latency.p50),
                ms(m.latency.p95),
                ms(m.latency.p99),
                m.error_rate
                    .map(|r| format!("{:.1}%", r * 100.0))
                    .unwrap_or_else(|| "-".into())
            ));
        }
        for (tool, p) in &s.tools {
            out.push_str(&format!(
                "  tool {:<11} {:>8} {:>10} {:>10} {:>10}\n",
                tool,
                p.count,
                ms(p.p50),
                ms(p.p95),
                ms(p.p99)
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_reads_histograms_counters_and_gauges() {
        let text = "# TYPE mcp_request_duration_seconds histogram\n\
mcp_request_duration_seconds_bucket{server=\"a\",method=\"ping\",le=\"0.1\"} 3\n\
mcp_request_duration_seconds_bucket{server=\"a\",method=\"ping\",le=\"1.0\"} 4\n\
mcp_request_duration_seconds_bucket{server=\"a\",method=\"ping\",le=\"+Inf\"} 4\n\
mcp_request_duration_seconds_sum{server=\"a\",method=\"ping\"} 0.5\n\
mcp_request_duration_seconds_count{server=\"a\",method=\"ping\"} 4\n\
# TYPE mcp_requests_total counter\n\
mcp_requests_total{server=\"a\",method=\"ping\",outcome=\"ok\"} 3\n\
mcp_requests_total{server=\"a\",method=\"ping\",outcome=\"error\"} 1\n\
# TYPE mcp_server_health_status gauge\n\
mcp_server_health_status{server=\"a\"} 2\n";
        let s = summarize(text).unwrap();
        let a = &s["a"];
        assert_eq!(a.health.as_deref(), Some("HEALTHY"));
        let ping = &a.methods["ping"];
        assert_eq!(ping.latency.count, 4.0);
        assert!((ping.latency.p50.unwrap() - 0.1 * 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(ping.error_rate, Some(0.25));
    }

    #[test]
    fn an_unsupported_era_probe_is_not_an_error() {
        let text = "# TYPE mcp_requests_total counter\n\
mcp_requests_total{server=\"a\",method=\"server/discover\",outcome=\"unsupported\"} 1\n\
mcp_requests_total{server=\"a\",method=\"server/discover\",outcome=\"error\"} 1\n\
mcp_requests_total{server=\"a\",method=\"server/discover\",outcome=\"ok\"} 2\n";
        let s = summarize(text).unwrap();
        assert_eq!(s["a"].methods["server/discover"].error_rate, Some(0.25));
    }
}
