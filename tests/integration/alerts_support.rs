//! Helpers of the `alerts` and `alerts_e2e` tests: reading the bundled rules and dashboards,
//! collecting their PromQL expressions and the metric names in them, and a webhook receiver
//! standing in for Alertmanager's pager and Slack.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// A parsed YAML document (rules, Alertmanager config, manifests).
pub use serde_yaml_ng::Value as Yaml;

use crate::common::paths::read_repo_file;

/// The bundled rules file, parsed.
pub fn rules() -> Yaml {
    parse_yaml("alerts/mcp-exporter.rules.yml")
}

/// Parses a YAML file of the repository; panics naming it.
pub fn parse_yaml(rel: &str) -> Yaml {
    serde_yaml_ng::from_str(&read_repo_file(rel))
        .unwrap_or_else(|e| panic!("{rel} is not YAML: {e}"))
}

/// Every rule of every group (alerting and recording).
pub fn all_rules(rules: &Yaml) -> Vec<&Yaml> {
    rules["groups"]
        .as_sequence()
        .expect("groups is a list")
        .iter()
        .flat_map(|g| g["rules"].as_sequence().expect("rules is a list").iter())
        .collect()
}

/// The alerting rules.
pub fn alert_rules(rules: &Yaml) -> Vec<&Yaml> {
    all_rules(rules)
        .into_iter()
        .filter(|r| r.get("alert").is_some())
        .collect()
}

/// Names of the recording rules.
pub fn recorded_names(rules: &Yaml) -> BTreeSet<String> {
    all_rules(rules)
        .into_iter()
        .filter_map(|r| r.get("record").and_then(Yaml::as_str).map(str::to_string))
        .collect()
}

/// The dashboards: (file name, parsed JSON).
pub fn dashboards() -> Vec<(String, serde_json::Value)> {
    [
        "mcp-overview",
        "mcp-performance",
        "system-resources",
        "mcp-traffic",
    ]
    .iter()
    .map(|name| {
        let rel = format!("dashboards/{name}.json");
        let json = serde_json::from_str(&read_repo_file(&rel))
            .unwrap_or_else(|e| panic!("{rel} is not JSON: {e}"));
        (rel, json)
    })
    .collect()
}

/// The panels of a dashboard, rows excluded (panels nested in collapsed rows included).
pub fn panels(dashboard: &serde_json::Value) -> Vec<&serde_json::Value> {
    let mut out = Vec::new();
    for p in dashboard["panels"].as_array().expect("panels is a list") {
        if p["type"] == "row" {
            out.extend(p["panels"].as_array().into_iter().flatten());
        } else {
            out.push(p);
        }
    }
    out
}

/// Replaces Grafana's variables by values PromQL accepts, so a dashboard expression can be
/// parsed and evaluated: `$server` by `.*`, the interval variables by `5m`.
pub fn substitute_grafana_variables(expr: &str) -> String {
    expr.replace("$__rate_interval", "5m")
        .replace("$__interval", "5m")
        .replace("$__range", "5m")
        .replace("${server}", ".*")
        .replace("$server", ".*")
}

/// Every PromQL expression of the rules and the dashboards: (where, expression), dashboard
/// expressions with their variables substituted.
pub fn expressions() -> Vec<(String, String)> {
    let rules = rules();
    let mut out = Vec::new();
    for rule in all_rules(&rules) {
        let name = rule
            .get("alert")
            .or_else(|| rule.get("record"))
            .and_then(Yaml::as_str)
            .expect("rule has a name");
        let expr = rule["expr"].as_str().expect("expr is a string");
        out.push((format!("rules: {name}"), expr.to_string()));
    }
    for (file, dash) in dashboards() {
        for panel in panels(&dash) {
            for target in panel["targets"].as_array().into_iter().flatten() {
                let expr = target["expr"].as_str().expect("target has an expr");
                out.push((
                    format!("{file}: panel {:?}", panel["title"]),
                    substitute_grafana_variables(expr),
                ));
            }
        }
        for var in dash["templating"]["list"].as_array().into_iter().flatten() {
            if let Some(q) = var["query"]["query"].as_str() {
                // label_values(METRIC, label) is Grafana's, not PromQL: check METRIC as a selector.
                let metric = q
                    .strip_prefix("label_values(")
                    .and_then(|rest| rest.split(',').next())
                    .unwrap_or(q);
                out.push((
                    format!("{file}: variable {:?}", var["name"]),
                    metric.to_string(),
                ));
            }
        }
    }
    out
}

/// Identifiers in a PromQL expression that name series: metric names (`mcp_...`) and recorded
/// names (containing `:`). String literals, label names, functions and keywords are left out.
pub fn series_names(expr: &str) -> BTreeSet<String> {
    // Drop string literals (label values, regexes) first.
    let mut stripped = String::with_capacity(expr.len());
    let mut in_string: Option<char> = None;
    let mut escaped = false;
    for c in expr.chars() {
        match in_string {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == q {
                    in_string = None;
                }
            }
            None if c == '"' || c == '\'' || c == '`' => in_string = Some(c),
            None => stripped.push(c),
        }
        if in_string.is_some() {
            stripped.push(' ');
        }
    }
    let mut names = BTreeSet::new();
    let mut current = String::new();
    for c in stripped.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
            current.push(c);
        } else {
            let starts_ok = current
                .chars()
                .next()
                .is_some_and(|f| f.is_ascii_alphabetic() || f == '_' || f == ':');
            if starts_ok && (current.starts_with("mcp_") || current.contains(':')) {
                names.insert(current.clone());
            }
            current.clear();
        }
    }
    names
}

/// What the exporter emits: every sample name of a scrape, plus the family names declared by
/// `# TYPE` lines with their sample suffixes.
pub fn emitted_names(exposition: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in exposition.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            if let (Some(name), Some(kind)) = (parts.next(), parts.next()) {
                names.insert(name.to_string());
                let suffixes: &[&str] = match kind {
                    "counter" => &["_total"],
                    "histogram" => &["_bucket", "_sum", "_count"],
                    "summary" => &["_sum", "_count"],
                    "info" => &["_info"],
                    _ => &[],
                };
                for s in suffixes {
                    if !name.ends_with(s) {
                        names.insert(format!("{name}{s}"));
                    }
                }
            }
        } else if !line.starts_with('#') && !line.trim().is_empty() {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            names.insert(line[..end].to_string());
        }
    }
    names
}

/// One notification Alertmanager posted to the webhook: (status of the alert, its labels).
#[derive(Debug, Clone)]
pub struct Delivered {
    /// The request path the notification was posted to (the test names receivers by path).
    pub path: String,
    /// `firing` or `resolved`.
    pub status: String,
    /// The alert's labels.
    pub labels: serde_json::Map<String, serde_json::Value>,
    /// The alert's annotations.
    pub annotations: serde_json::Map<String, serde_json::Value>,
}

/// A small HTTP listener on 127.0.0.1 collecting the alerts of Alertmanager's webhook posts.
pub struct Webhook {
    /// Port it listens on.
    pub port: u16,
    received: Arc<Mutex<Vec<Delivered>>>,
}

/// Largest webhook body accepted.
const MAX_BODY: usize = 4 * 1024 * 1024;

impl Webhook {
    /// Starts the listener on a kernel-chosen port; a thread serves it until the test ends.
    pub fn start() -> Webhook {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the webhook listener");
        let port = listener.local_addr().expect("webhook local_addr").port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&received);
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                if let Err(err) = serve_one(stream, &sink) {
                    eprintln!("webhook: {err}");
                }
            }
        });
        Webhook { port, received }
    }

    /// Every alert delivered so far.
    pub fn received(&self) -> Vec<Delivered> {
        self.received
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The first delivered alert named `alertname` with status `status` and all of `labels`.
    pub fn find(
        &self,
        alertname: &str,
        status: &str,
        labels: &[(&str, &str)],
    ) -> Option<Delivered> {
        self.received().into_iter().find(|d| {
            d.status == status
                && d.labels.get("alertname").and_then(|v| v.as_str()) == Some(alertname)
                && labels
                    .iter()
                    .all(|(k, v)| d.labels.get(*k).and_then(|x| x.as_str()) == Some(*v))
        })
    }

    /// A one-line summary of what arrived, for assertion messages.
    pub fn summary(&self) -> String {
        self.received()
            .iter()
            .map(|d| {
                format!(
                    "{} {} {} server={}",
                    d.path,
                    d.status,
                    d.labels
                        .get("alertname")
                        .and_then(|v| v.as_str())
                        .unwrap_or("?"),
                    d.labels
                        .get("server")
                        .and_then(|v| v.as_str())
                        .unwrap_or("-")
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

fn serve_one(stream: TcpStream, sink: &Mutex<Vec<Delivered>>) -> Result<(), String> {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(stream.try_clone().map_err(|e| e.to_string())?);
    let mut request_line = String::new();
    reader
        .read_line(&mut request_line)
        .map_err(|e| e.to_string())?;
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_string();
    let mut content_length = 0usize;
    let mut header_bytes = request_line.len();
    loop {
        let mut line = String::new();
        let n = reader.read_line(&mut line).map_err(|e| e.to_string())?;
        header_bytes += n;
        if n == 0 || header_bytes > 64 * 1024 {
            return Err("connection closed or headers too long".into());
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            content_length = value.trim().parse().map_err(|_| "bad content-length")?;
        }
    }
    if content_length > MAX_BODY {
        return Err(format!("body of {content_length} bytes is too large"));
    }
    let mut body = vec![0u8; content_length];
    reader.read_exact(&mut body).map_err(|e| e.to_string())?;
    let mut writer = stream;
    writer
        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let payload: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| format!("webhook body is not JSON: {e}"))?;
    let mut delivered = Vec::new();
    for alert in payload["alerts"].as_array().into_iter().flatten() {
        delivered.push(Delivered {
            path: path.clone(),
            status: alert["status"].as_str().unwrap_or_default().to_string(),
            labels: alert["labels"].as_object().cloned().unwrap_or_default(),
            annotations: alert["annotations"]
                .as_object()
                .cloned()
                .unwrap_or_default(),
        });
    }
    sink.lock()
        .unwrap_or_else(|p| p.into_inner())
        .extend(delivered);
    Ok(())
}
