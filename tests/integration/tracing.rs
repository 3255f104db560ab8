//! Traces of probes (docs/tracing.md) against real components: the spans of a probe of the
//! reference server-everything arrive in Arize Phoenix (a real OTLP backend) with their names,
//! parent links and attributes, a failed probe's span carries its error, and a real Prometheus
//! (exemplar storage on, scraping OpenMetrics) returns an exemplar with a trace id Phoenix has,
//! and a failing dependency check is a trace of its own with its error;
//! with the collector hanging, spans are dropped and counted while probes keep their schedule;
//! a probed HTTP server receives the probe's `traceparent` in the header and in `_meta`.
//! Over OTLP gRPC too: a reload turns traces on (to Phoenix's gRPC port), the probe's spans
//! arrive with their names and parents, and a reload pointing elsewhere stops them; with the
//! gRPC collector hanging, spans are dropped and probes keep their schedule; a bad `[otlp]`
//! rejects the reload and keeps the running configuration.
//!
//! Phoenix takes about 30 s to start, so each test that needs it starts one and does all its
//! checks against it. Its OTLP gRPC receiver binds every interface unless started through
//! tests/fixtures/phoenix_loopback.py, which keeps it on 127.0.0.1.

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

/// A Phoenix on loopback (HTTP and OTLP gRPC), its data in a temporary directory; killed when
/// dropped.
struct Phoenix {
    _guard: ChildGuard,
    _dir: tempfile::TempDir,
    addr: String,
    /// Its OTLP gRPC receiver, `127.0.0.1:PORT`.
    grpc_addr: String,
}

impl Phoenix {
    /// Starts the Phoenix whose `phoenix` program is `bin`, through the venv's python and
    /// tests/fixtures/phoenix_loopback.py.
    fn start(bin: &Path) -> Phoenix {
        let dir = tempfile::tempdir().expect("temporary directory");
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let grpc_port = free_port();
        let mut guard = spawn_guarded(
            "phoenix",
            Command::new(bin.with_file_name("python"))
                .arg(fixture("phoenix_loopback.py"))
                .arg("serve")
                .env("PHOENIX_HOST", "127.0.0.1")
                .env("PHOENIX_PORT", port.to_string())
                .env("PHOENIX_GRPC_PORT", grpc_port.to_string())
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
        eventually(PHOENIX_READY, POLL, || {
            port_accepts(grpc_port, Duration::from_secs(1))
                .then_some(())
                .ok_or_else(|| format!("phoenix gRPC port {grpc_port} is not listening"))
        });
        Phoenix {
            _guard: guard,
            _dir: dir,
            addr,
            grpc_addr: format!("127.0.0.1:{grpc_port}"),
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
    collector_hanging("http/protobuf");
}

#[test]
fn with_the_grpc_collector_hanging_spans_are_dropped_and_probes_keep_their_schedule() {
    collector_hanging("grpc");
}

/// Exports over `protocol` to a collector that never answers.
fn collector_hanging(protocol: &str) {
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
        "[otlp]\nendpoint = \"http://127.0.0.1:{port}\"\nprotocol = \"{protocol}\"\n{}",
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

fn post_reload(daemon: &Daemon) -> (u16, String) {
    let response = daemon.request("POST", "/-/reload", &[], b"");
    (response.status, response.text())
}

fn probes_of(daemon: &Daemon, server: &str) -> f64 {
    daemon
        .scrape()
        .sum("mcp_probes_total", &[("server", server)])
}

/// Waits until `server` has been probed `more` more times.
fn wait_for_probes(daemon: &Daemon, server: &str, more: f64) {
    let before = probes_of(daemon, server);
    eventually(SPANS_WAIT, POLL, || {
        let now = probes_of(daemon, server);
        (now >= before + more)
            .then_some(())
            .ok_or_else(|| format!("{now} probes of {server}, waiting for {before} + {more}"))
    });
}

/// Now as Phoenix writes span times (RFC 3339, UTC), to compare as text.
fn rfc3339_now() -> String {
    humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string()
}

#[test]
fn a_reload_turns_grpc_traces_on_and_pointing_them_elsewhere_stops_them() {
    if !require_all(&[Tool::Node, Tool::Phoenix]) {
        return;
    }
    let phoenix = Phoenix::start(&located(Tool::Phoenix));
    let server = everything_stdio_entry(
        "every",
        "1s",
        "check = \"readiness\"\ncall = { tool = \"echo\", arguments = { message = \"traced\" } }",
    );
    let daemon = Daemon::start_with(&server, &["--web.enable-lifecycle"], &[]);
    wait_for_probes(&daemon, "every", 2.0);
    assert_eq!(
        phoenix.spans().expect("spans").len(),
        0,
        "traces are off: nothing is exported"
    );

    // On, over gRPC to Phoenix's OTLP gRPC receiver.
    daemon.rewrite_config(&format!(
        "[otlp]\nprotocol = \"grpc\"\nendpoint = \"http://{}\"\nheaders = {{ x-probe-fleet = \"test\" }}\n{server}",
        phoenix.grpc_addr
    ));
    let (status, body) = post_reload(&daemon);
    assert_eq!(status, 200, "{body}");
    let (root, children) = eventually(SPANS_WAIT, POLL, || {
        let spans = phoenix.spans()?;
        complete_probe_trace(&spans, "every")
            .ok_or_else(|| format!("no complete trace of `every` among {} spans", spans.len()))
    });
    assert_eq!(attribute(&root, "mcp_exporter.server"), "every");
    assert_eq!(attribute(&root, "mcp_exporter.check"), "readiness");
    for child in &children {
        assert_eq!(
            child["parent_id"].as_str(),
            Some(span_id(&root)),
            "every span of the probe is a child of its root: {child}"
        );
    }
    let names: BTreeSet<&str> = children.iter().filter_map(|s| s["name"].as_str()).collect();
    assert!(
        names.contains("tools/list") && names.contains("tools/call echo"),
        "{names:?}"
    );
    assert!(
        daemon.stderr().contains("exporting probe traces"),
        "{}",
        daemon.stderr()
    );
    assert_eq!(
        daemon
            .scrape()
            .value("mcp_exporter_spans_dropped_total", &[]),
        Some(0.0),
        "nothing dropped while Phoenix is up"
    );

    // Elsewhere: nothing listens there; the spans of probes started after the reload are
    // dropped, none reaches Phoenix.
    daemon.rewrite_config(&format!(
        "[otlp]\nprotocol = \"grpc\"\nendpoint = \"http://127.0.0.1:{}\"\n{server}",
        free_port()
    ));
    let (status, body) = post_reload(&daemon);
    assert_eq!(status, 200, "{body}");
    let reloaded_at = rfc3339_now();
    eventually(SPANS_WAIT, POLL, || {
        let dropped = daemon.scrape().sum("mcp_exporter_spans_dropped_total", &[]);
        (dropped > 0.0)
            .then_some(())
            .ok_or_else(|| "no span dropped yet at the new endpoint".to_string())
    });
    wait_for_probes(&daemon, "every", 3.0);
    // Phoenix's ingestion is asynchronous: give what it received time to show.
    std::thread::sleep(Duration::from_secs(3));
    let spans = phoenix.spans().expect("spans");
    let later: Vec<&Value> = spans
        .iter()
        .filter(|s| s["name"] == "probe every" && s["parent_id"].is_null())
        .filter(|s| s["start_time"].as_str().unwrap_or_default() > reloaded_at.as_str())
        .collect();
    assert!(
        later.is_empty(),
        "probes started after {reloaded_at} reached Phoenix: {later:?}"
    );
    assert!(
        spans.iter().any(|s| s["name"] == "probe every"
            && s["start_time"]
                .as_str()
                .is_some_and(|t| t.as_bytes().get(10) == Some(&b'T') && t < reloaded_at.as_str())),
        "the earlier probes' roots are there, their start times comparable with {reloaded_at}"
    );
}

#[test]
fn a_bad_otlp_section_rejects_the_reload_and_keeps_the_running_configuration() {
    if !require_all(&[Tool::Node]) {
        return;
    }
    let server = everything_stdio_entry("every", "1s", "");
    let daemon = Daemon::start_with(&server, &["--web.enable-lifecycle"], &[]);
    wait_for_probes(&daemon, "every", 1.0);
    for (otlp, reason) in [
        (
            "[otlp]\nprotocol = \"grpc\"\nendpoint = \"http://127.0.0.1:4317\"\nheaders = { \"bad name\" = \"x\" }\n",
            "otlp.headers.bad name",
        ),
        (
            "[otlp]\nendpoint = \"http://127.0.0.1:4318\"\nheaders = { authorization = \"Bearer ${MCP_EXPORTER_TEST_UNSET_TOKEN}\" }\n",
            "otlp.headers.authorization",
        ),
        ("[otlp]\nprotocol = \"http/json\"\n", "otlp.protocol"),
    ] {
        daemon.rewrite_config(&format!("{otlp}{server}"));
        let (status, body) = post_reload(&daemon);
        assert_ne!(status, 200, "{otlp}: {body}");
        assert!(body.contains(reason), "{otlp}: the reply says why: {body}");
        let scrape = daemon.scrape();
        assert_eq!(
            scrape.value("mcp_exporter_config_last_reload_successful", &[]),
            Some(0.0),
            "{otlp}"
        );
        // The log is read from the daemon's stderr as it comes: wait for the line.
        eventually(Duration::from_secs(30), POLL, || {
            daemon
                .stderr()
                .contains(reason)
                .then_some(())
                .ok_or_else(|| format!("the log does not say why yet: {}", daemon.stderr()))
        });
    }
    // The running configuration stays: traces off, the server probed.
    assert!(!daemon.stderr().contains("exporting probe traces"));
    wait_for_probes(&daemon, "every", 2.0);
    daemon.rewrite_config(&server);
    let (status, body) = post_reload(&daemon);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        daemon
            .scrape()
            .value("mcp_exporter_config_last_reload_successful", &[]),
        Some(1.0)
    );
}
