//! Traces of probes (docs/tracing.md) against real components: the spans of a probe of the
//! reference server-everything arrive in Arize Phoenix (a real OTLP backend) with their names,
//! parent links and attributes, a failed probe's span carries its error, and a real Prometheus
//! (exemplar storage on, scraping OpenMetrics) returns an exemplar with a trace id Phoenix has,
//! and a failing dependency check is a trace of its own with its error;
//! with the collector hanging, spans are dropped and counted while probes keep their schedule;
//! a probed HTTP server receives the probe's `traceparent` in the header and in `_meta`.
//!
//! Phoenix takes about 30 s to start, so it is started once, by the one test that needs it.

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::common::daemon::Daemon;
use crate::common::http::http_request;
use crate::common::net::{free_port, port_accepts};
use crate::common::paths::fixture;
use crate::common::processes::{ChildGuard, spawn_guarded};
use crate::common::prometheus::Prometheus;
use crate::common::servers::everything_stdio_entry;
use crate::common::tools::{Tool, located, require_all};
use crate::common::wait::eventually;

const PHOENIX_READY: Duration = Duration::from_secs(180);
const SPANS_WAIT: Duration = Duration::from_secs(90);
const POLL: Duration = Duration::from_millis(500);
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// A Phoenix on loopback, its data in a temporary directory; killed when dropped.
struct Phoenix {
    _guard: ChildGuard,
    _dir: tempfile::TempDir,
    addr: String,
}

impl Phoenix {
    fn start(bin: &Path) -> Phoenix {
        let dir = tempfile::tempdir().expect("temporary directory");
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let mut guard = spawn_guarded(
            "phoenix",
            Command::new(bin)
                .arg("serve")
                .env("PHOENIX_HOST", "127.0.0.1")
                .env("PHOENIX_PORT", port.to_string())
                .env("PHOENIX_GRPC_PORT", free_port().to_string())
                .env("PHOENIX_WORKING_DIR", dir.path())
                .env("PHOENIX_TELEMETRY_ENABLED", "false"),
        );
        eventually(PHOENIX_READY, POLL, || {
            if let Some(status) = guard.try_wait() {
                return Err(format!("phoenix exited ({status}):\n{}", guard.output()));
            }
            match http_request(&addr, "GET", "/v1/projects", &[], b"", HTTP_TIMEOUT) {
                Ok(r) if r.status == 200 => Ok(()),
                Ok(r) => Err(format!("phoenix /v1/projects: {}", r.status)),
                Err(e) => Err(format!("phoenix /v1/projects: {e}")),
            }
        });
        Phoenix {
            _guard: guard,
            _dir: dir,
            addr,
        }
    }

    /// Every span of the default project (the exporter sets no Phoenix project).
    fn spans(&self) -> Result<Vec<Value>, String> {
        let mut spans = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/v1/projects/default/spans?limit=1000&cursor={c}"),
                None => "/v1/projects/default/spans?limit=1000".to_string(),
            };
            let response = http_request(&self.addr, "GET", &path, &[], b"", HTTP_TIMEOUT)?;
            if response.status != 200 {
                return Err(format!(
                    "GET {path}: {} {}",
                    response.status,
                    response.text()
                ));
            }
            let json: Value = serde_json::from_str(&response.text()).map_err(|e| e.to_string())?;
            spans.extend(json["data"].as_array().cloned().unwrap_or_default());
            match json["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_string()),
                None => return Ok(spans),
            }
        }
    }
}

fn trace_id(span: &Value) -> &str {
    span["context"]["trace_id"].as_str().unwrap_or_default()
}

fn span_id(span: &Value) -> &str {
    span["context"]["span_id"].as_str().unwrap_or_default()
}

fn attribute<'a>(span: &'a Value, key: &str) -> &'a Value {
    &span["attributes"][key]
}

/// A complete trace of a readiness probe of `server`: its root span and its children.
fn complete_probe_trace(spans: &[Value], server: &str) -> Option<(Value, Vec<Value>)> {
    let root_name = format!("probe {server}");
    spans
        .iter()
        .filter(|s| s["name"] == root_name.as_str() && s["parent_id"].is_null())
        .find_map(|root| {
            let children: Vec<Value> = spans
                .iter()
                .filter(|s| trace_id(s) == trace_id(root) && !s["parent_id"].is_null())
                .cloned()
                .collect();
            let names: BTreeSet<&str> =
                children.iter().filter_map(|s| s["name"].as_str()).collect();
            names
                .contains("tools/call echo")
                .then(|| (root.clone(), children))
        })
}

/// The trace ids of the OpenMetrics exemplars of `family`'s `_bucket` lines for `server`.
fn exemplar_trace_ids(openmetrics: &str, family: &str, server: &str) -> BTreeSet<String> {
    let bucket = format!("{family}_bucket{{");
    let server = format!("server=\"{server}\"");
    openmetrics
        .lines()
        .filter(|l| l.starts_with(&bucket) && l.contains(&server))
        .filter_map(|l| l.split_once("# {trace_id=\"").map(|(_, rest)| rest))
        .filter_map(|rest| rest.split_once('"').map(|(id, _)| id.to_string()))
        .collect()
}

fn openmetrics(daemon: &Daemon) -> String {
    let response = daemon.request(
        "GET",
        "/metrics",
        &[("Accept", "application/openmetrics-text; version=1.0.0")],
        b"",
    );
    assert_eq!(response.status, 200);
    response.text()
}

#[test]
fn probe_spans_reach_phoenix_and_prometheus_holds_their_trace_ids_as_exemplars() {
    if !require_all(&[Tool::Node, Tool::Phoenix, Tool::Prometheus]) {
        return;
    }
    let phoenix = Phoenix::start(&located(Tool::Phoenix));
    let config = format!(
        r#"
[otlp]
endpoint = "http://{}"
sampling_ratio = 1.0
{}
[[servers]]
name = "broken"
transport = "stdio"
command = "sh"
args = ["-c", "exit 3"]
interval = "1s"
timeout = "5s"

[[dependencies]]
name = "closed-port"
kind = "tcp"
address = "127.0.0.1:{}"
interval = "1s"
timeout = "2s"
"#,
        phoenix.addr,
        everything_stdio_entry(
            "every",
            "1s",
            "check = \"readiness\"\ncall = { tool = \"echo\", arguments = { message = \"traced\" } }"
        ),
        free_port()
    );
    let daemon = Daemon::start(&config);
    let prom_dir = tempfile::tempdir().expect("temporary directory");
    let prometheus = Prometheus::start_with_args(
        &located(Tool::Prometheus),
        prom_dir.path(),
        &format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: mcp\n    static_configs:\n      - targets: ['{}']\n",
            daemon.addr()
        ),
        &["--enable-feature=exemplar-storage"],
    );

    let (root, children) = eventually(SPANS_WAIT, POLL, || {
        let spans = phoenix.spans()?;
        complete_probe_trace(&spans, "every")
            .ok_or_else(|| format!("no complete trace of `every` among {} spans", spans.len()))
    });
    assert_eq!(attribute(&root, "mcp_exporter.server"), "every");
    assert_eq!(attribute(&root, "mcp_exporter.check"), "readiness");
    assert_ne!(root["status_code"], "ERROR", "{root}");
    for child in &children {
        assert_eq!(
            child["parent_id"].as_str(),
            Some(span_id(&root)),
            "every span of the probe is a child of its root: {child}"
        );
    }
    let call = children
        .iter()
        .find(|s| s["name"] == "tools/call echo")
        .expect("the tools/call span");
    assert_eq!(attribute(call, "mcp.method.name"), "tools/call");
    assert_eq!(attribute(call, "gen_ai.tool.name"), "echo");
    assert_eq!(attribute(call, "network.transport"), "pipe");
    assert!(
        attribute(call, "jsonrpc.request.id")
            .as_str()
            .is_some_and(|id| !id.is_empty())
            && attribute(call, "mcp.protocol.version")
                .as_str()
                .is_some_and(|v| v.starts_with("20")),
        "{call}"
    );
    let listed = children
        .iter()
        .find(|s| s["name"] == "tools/list")
        .expect("a tools/list span per page");
    assert_eq!(attribute(listed, "mcp.method.name"), "tools/list");

    // A probe that spawned its session has the spawn and the handshake in its trace.
    let spans = phoenix.spans().expect("spans");
    let spawned = spans
        .iter()
        .find(|s| s["name"] == "spawn")
        .expect("a spawn span");
    let handshake_root = trace_id(spawned);
    assert!(
        spans.iter().any(|s| trace_id(s) == handshake_root
            && matches!(s["name"].as_str(), Some("initialize" | "server/discover"))),
        "the spawning probe's trace has its handshake request"
    );

    // The failing server: its root span and its failed request carry the error.
    let failed = eventually(SPANS_WAIT, POLL, || {
        let spans = phoenix.spans()?;
        spans
            .into_iter()
            .find(|s| s["name"] == "probe broken" && s["status_code"] == "ERROR")
            .ok_or_else(|| "no failed span of `broken` yet".to_string())
    });
    assert!(
        attribute(&failed, "mcp_exporter.failure.class").is_string()
            && attribute(&failed, "mcp_exporter.failure.reason").is_string()
            && attribute(&failed, "error.type") == attribute(&failed, "mcp_exporter.failure.class"),
        "{failed}"
    );
    assert!(
        failed["status_message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{failed}"
    );

    // A dependency check is a trace of its own; the refused one is an error.
    let check = eventually(SPANS_WAIT, POLL, || {
        phoenix
            .spans()?
            .into_iter()
            .find(|s| s["name"] == "check closed-port")
            .ok_or_else(|| "no span of the dependency check yet".to_string())
    });
    assert!(check["parent_id"].is_null(), "{check}");
    assert_eq!(attribute(&check, "mcp_exporter.dependency.kind"), "tcp");
    assert_eq!(check["status_code"], "ERROR", "{check}");
    assert_eq!(attribute(&check, "error.type"), "unhealthy");

    // Prometheus scraped OpenMetrics and kept the probe's trace id as an exemplar; the trace
    // is in Phoenix.
    let traced = eventually(SPANS_WAIT, POLL, || {
        let exemplars =
            prometheus.query_exemplars("mcp_probe_latency_seconds_bucket{server=\"every\"}")?;
        let ids: BTreeSet<String> = exemplars
            .iter()
            .flat_map(|series| series["exemplars"].as_array().cloned().unwrap_or_default())
            .filter_map(|e| e["labels"]["trace_id"].as_str().map(str::to_string))
            .collect();
        let spans = phoenix.spans()?;
        ids.into_iter()
            .find(|id| {
                spans
                    .iter()
                    .any(|s| trace_id(s) == id && s["name"] == "probe every")
            })
            .ok_or_else(|| "no exemplar trace id found in Phoenix yet".to_string())
    });
    assert_eq!(traced.len(), 32, "{traced}");
    let scrape = daemon.scrape();
    assert_eq!(
        scrape.value("mcp_exporter_spans_dropped_total", &[]),
        Some(0.0),
        "nothing dropped while Phoenix is up"
    );
}

#[test]
fn with_the_collector_hanging_spans_are_dropped_and_probes_keep_their_schedule() {
    if !require_all(&[Tool::Node]) {
        return;
    }
    // A collector that accepts connections and never answers: every export times out.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    let config = format!(
        "[otlp]\nendpoint = \"http://127.0.0.1:{port}\"\n{}",
        everything_stdio_entry("every", "1s", "")
    );
    let daemon = Daemon::start(&config);
    let probes = |daemon: &Daemon| {
        daemon
            .scrape()
            .sum("mcp_probes_total", &[("server", "every")])
    };
    eventually(Duration::from_secs(60), POLL, || {
        let dropped = daemon.scrape().sum("mcp_exporter_spans_dropped_total", &[]);
        (dropped > 0.0)
            .then_some(())
            .ok_or_else(|| format!("no span dropped yet\n{}", daemon.stderr()))
    });
    // While exports keep timing out, probes go on at their interval.
    let before = probes(&daemon);
    eventually(Duration::from_secs(30), POLL, || {
        let now = probes(&daemon);
        (now >= before + 5.0)
            .then_some(())
            .ok_or_else(|| format!("{now} probes, {before} when the first span was dropped"))
    });
    let later = daemon.scrape().sum("mcp_exporter_spans_dropped_total", &[]);
    assert!(later > 0.0);
    assert_eq!(
        daemon
            .scrape()
            .sum("mcp_probe_success", &[("server", "every")]),
        1.0,
        "the probes themselves succeed"
    );
}

#[test]
fn a_probed_http_server_receives_the_probes_traceparent() {
    if !require_all(&[Tool::Python3]) {
        return;
    }
    let dir = tempfile::tempdir().expect("temporary directory");
    let record = dir.path().join("requests.jsonl");
    let port = free_port();
    let _server = spawn_guarded(
        "traceparent_server",
        Command::new(located(Tool::Python3))
            .arg(fixture("traceparent_server.py"))
            .arg(&record)
            .arg(port.to_string()),
    );
    eventually(Duration::from_secs(30), POLL, || {
        port_accepts(port, Duration::from_secs(1))
            .then_some(())
            .ok_or_else(|| "the recording server is not listening yet".to_string())
    });
    // Nothing listens at the collector's port: traces are on, their export fails.
    let config = format!(
        r#"
[otlp]
endpoint = "http://127.0.0.1:{}"
[[servers]]
name = "recorded"
transport = "http"
url = "http://127.0.0.1:{port}/mcp"
check = "readiness"
interval = "1s"
timeout = "5s"
"#,
        free_port()
    );
    let daemon = Daemon::start(&config);
    let (exemplars, recorded) = eventually(Duration::from_secs(60), POLL, || {
        let exemplars = exemplar_trace_ids(
            &openmetrics(&daemon),
            "mcp_request_duration_seconds",
            "recorded",
        );
        let lines: Vec<Value> = std::fs::read_to_string(&record)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        let listed: BTreeSet<String> = lines
            .iter()
            .filter(|l| l["method"] == "tools/list")
            .filter_map(|l| l["header"].as_str())
            .filter_map(|tp| tp.split('-').nth(1).map(str::to_string))
            .collect();
        if !exemplars.is_empty() && exemplars.is_subset(&listed) {
            Ok((exemplars, lines))
        } else {
            Err(format!(
                "exemplar trace ids {exemplars:?}, traceparents of tools/list {listed:?}"
            ))
        }
    });
    assert!(exemplars.iter().all(|id| id.len() == 32), "{exemplars:?}");
    for line in &recorded {
        let header = line["header"]
            .as_str()
            .expect("every request has a traceparent header");
        assert_eq!(
            line["meta"].as_str(),
            Some(header),
            "_meta carries the same: {line}"
        );
        let parts: Vec<&str> = header.split('-').collect();
        assert_eq!(parts.len(), 4, "{header}");
        assert_eq!(
            (parts[0], parts[3]),
            ("00", "01"),
            "sampled, version 00: {header}"
        );
        assert_eq!((parts[1].len(), parts[2].len()), (32, 16), "{header}");
    }
}
