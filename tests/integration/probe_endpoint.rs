//! `/probe?target=URL&module=NAME`: targets probed on request with a configured module, as
//! blackbox_exporter does (src/web/probe_endpoint.rs), against real servers: server-everything
//! over Streamable HTTP and legacy SSE, the Python SDK server (2026-07-28 era), a stopped
//! server and one that never answers; and a real Prometheus scraping through the relabeling of
//! the shipped deploy/prometheus.yml.

use std::time::Duration;

use serde_yaml_ng::Value as Yaml;

use crate::alerts_support::parse_yaml;
use crate::common::daemon::Daemon;
use crate::common::net::free_port;
use crate::common::prometheus::{Prometheus, url_encode};
use crate::common::scrape::Scrape;
use crate::common::servers::{spawn_hang_server, spawn_http_everything, spawn_py_modern};
use crate::common::tools::{Tool, require, require_all};
use crate::common::wait::eventually;

const WAIT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(250);

/// No configured server: everything this daemon probes comes through `/probe`.
const MODULES: &str = r#"
[modules.http_readiness]
transport = "http"
check = "readiness"
expected_tools = ["echo"]
call = { tool = "echo", arguments = { message = "probe" }, expect_text = "Echo: probe" }

[modules.sse_liveness]
transport = "sse"
check = "liveness"

[modules.modern_readiness]
check = "readiness"
"#;

fn probe_path(target: &str, module: &str, extra: &str) -> String {
    format!(
        "/probe?target={}&module={module}{extra}",
        url_encode(target)
    )
}

/// GET `/probe`; asserts 200 and parses the reply.
fn probe(daemon: &Daemon, target: &str, module: &str) -> Scrape {
    let (status, body) = daemon.get(&probe_path(target, module, ""));
    assert_eq!(status, 200, "/probe {target} {module}: {body}");
    Scrape::parse(&body).unwrap_or_else(|e| panic!("/probe reply does not parse: {e}\n{body}"))
}

fn success(scrape: &Scrape, target: &str) -> Option<f64> {
    scrape.value("mcp_probe_success", &[("server", target)])
}

#[test]
fn targets_are_probed_with_their_module_and_failures_are_data() {
    if !require_all(&[Tool::Node, Tool::Python]) {
        return;
    }
    let (_http, http_port) = spawn_http_everything("streamableHttp");
    let (_sse, sse_port) = spawn_http_everything("sse");
    let (_modern, modern_port) = spawn_py_modern("http");
    let daemon = Daemon::start(MODULES);

    let http = format!("http://127.0.0.1:{http_port}/mcp");
    let reply = probe(&daemon, &http, "http_readiness");
    assert_eq!(success(&reply, &http), Some(1.0), "{reply:?}");
    assert_eq!(
        reply.value("mcp_server_health_status", &[("server", http.as_str())]),
        Some(2.0)
    );
    // The probe's own request families, from the same code as a configured server's.
    assert!(
        reply
            .value(
                "mcp_requests_total",
                &[
                    ("server", http.as_str()),
                    ("method", "tools/call"),
                    ("outcome", "ok")
                ]
            )
            .is_some_and(|v| v >= 1.0),
        "{reply:?}"
    );
    // Exporter-wide families are not part of a probe's reply.
    assert!(!reply.has("mcp_exporter_build_info"), "{reply:?}");

    let sse = format!("http://127.0.0.1:{sse_port}/sse");
    assert_eq!(
        success(&probe(&daemon, &sse, "sse_liveness"), &sse),
        Some(1.0)
    );

    let modern = format!("http://127.0.0.1:{modern_port}/mcp");
    let reply = probe(&daemon, &modern, "modern_readiness");
    assert_eq!(success(&reply, &modern), Some(1.0), "{reply:?}");
    assert_eq!(
        reply.value(
            "mcp_server_info",
            &[("server", modern.as_str()), ("era", "modern")]
        ),
        Some(1.0),
        "{reply:?}"
    );

    // Nothing listens there: still 200, the failure is in the metrics.
    let stopped = format!("http://127.0.0.1:{}/mcp", free_port());
    let reply = probe(&daemon, &stopped, "http_readiness");
    assert_eq!(success(&reply, &stopped), Some(0.0), "{reply:?}");
    assert_eq!(
        reply.value(
            "mcp_probe_failures_total",
            &[("server", stopped.as_str()), ("class", "down")]
        ),
        Some(1.0),
        "{reply:?}"
    );
}

#[test]
fn bad_requests_get_400_naming_what_is_wrong() {
    let daemon = Daemon::start(MODULES);
    let target = "http://127.0.0.1:9/mcp";
    for (path, expect) in [
        (
            probe_path(target, "nope", ""),
            "unknown module \"nope\"; configured modules: http_readiness, modern_readiness, sse_liveness",
        ),
        (
            format!("/probe?target={}", url_encode(target)),
            "missing ?module=NAME",
        ),
        (
            "/probe?module=http_readiness".to_string(),
            "missing ?target=URL",
        ),
        (
            "/probe?module=http_readiness&target=not%20a%20url".to_string(),
            "target \"not a url\" is not a URL",
        ),
        (
            format!(
                "/probe?module=http_readiness&target={}",
                url_encode("ftp://127.0.0.1/x")
            ),
            "has scheme \"ftp\"",
        ),
    ] {
        let (status, body) = daemon.get(&path);
        assert_eq!(status, 400, "{path}: {body}");
        assert!(body.contains(expect), "{path}: {body}");
    }
    let response = daemon.request(
        "GET",
        &probe_path(target, "http_readiness", ""),
        &[("X-Prometheus-Scrape-Timeout-Seconds", "soon")],
        b"",
    );
    assert_eq!(response.status, 400);
    assert!(
        response
            .text()
            .contains("X-Prometheus-Scrape-Timeout-Seconds"),
        "{}",
        response.text()
    );
}

#[test]
fn the_scrape_timeout_header_bounds_the_probe_and_debug_tells_each_step() {
    if !require_all(&[Tool::Node, Tool::Python]) {
        return;
    }
    let (_hang, hang_port) = spawn_hang_server();
    let (_http, http_port) = spawn_http_everything("streamableHttp");
    let daemon = Daemon::start(MODULES);

    // A target that never answers, scraped with a 2.5 s timeout: the deadline is 2 s (the
    // module's 10 s shortened to the scrape's less the 0.5 s margin), and the probe fails.
    let hang = format!("http://127.0.0.1:{hang_port}/mcp");
    let response = daemon.request(
        "GET",
        &probe_path(&hang, "http_readiness", "&debug=true"),
        &[("X-Prometheus-Scrape-Timeout-Seconds", "2.5")],
        b"",
    );
    let text = response.text();
    assert_eq!(response.status, 200, "{text}");
    assert!(text.contains("deadline 2000.0ms"), "{text}");
    assert!(text.contains("FAILED: down"), "{text}");
    assert!(
        text.contains(&format!("mcp_probe_success{{server=\"{hang}\"}} 0")),
        "{text}"
    );

    let http = format!("http://127.0.0.1:{http_port}/mcp");
    let (status, text) = daemon.get(&probe_path(&http, "http_readiness", "&debug=true"));
    assert_eq!(status, 200, "{text}");
    for step in [
        "stage handshake:",
        "stage list_tools:",
        "stage tool_call:",
        "request tools/call (echo): ok",
        "succeeded in",
        "Metrics of this probe:",
    ] {
        assert!(text.contains(step), "debug output lacks {step:?}:\n{text}");
    }
}

/// The `mcp-probe` job of deploy/prometheus.yml, pointed at `targets` through `exporter`.
fn shipped_probe_job(targets: &[String], exporter: &str) -> Yaml {
    let shipped = parse_yaml("deploy/prometheus.yml");
    let mut job = shipped["scrape_configs"]
        .as_sequence()
        .expect("scrape_configs")
        .iter()
        .find(|j| j["job_name"] == "mcp-probe")
        .cloned()
        .expect("deploy/prometheus.yml has an mcp-probe job");
    job["static_configs"] = serde_yaml_ng::from_str(&format!(
        "[{{targets: [{}]}}]",
        targets
            .iter()
            .map(|t| format!("{t:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    ))
    .expect("static_configs");
    let relabels = job["relabel_configs"]
        .as_sequence_mut()
        .expect("relabel_configs");
    let exporter_rule = relabels
        .iter_mut()
        .find(|r| r["target_label"] == "__address__")
        .expect("a relabel rule that sends the scrape to the exporter");
    exporter_rule["replacement"] = Yaml::from(exporter);
    job["scrape_interval"] = Yaml::from("1s");
    job["scrape_timeout"] = Yaml::from("1s");
    job
}

#[test]
fn prometheus_scrapes_targets_through_the_shipped_relabel_config() {
    if !require_all(&[Tool::Node, Tool::Python]) {
        return;
    }
    let Some(prometheus) = require(Tool::Prometheus) else {
        return;
    };
    let (_http, http_port) = spawn_http_everything("streamableHttp");
    let daemon = Daemon::start(MODULES);
    let up = format!("http://127.0.0.1:{http_port}/mcp");
    let down = format!("http://127.0.0.1:{}/mcp", free_port());
    let job = shipped_probe_job(&[up.clone(), down.clone()], daemon.addr());
    let mut config = serde_yaml_ng::Mapping::new();
    config.insert("scrape_configs".into(), Yaml::Sequence(vec![job]));
    let config = serde_yaml_ng::to_string(&config).expect("prometheus.yml text");
    let dir = tempfile::tempdir().expect("tempdir");
    let prometheus = Prometheus::start(&prometheus, dir.path(), &config);
    for (target, want) in [(&up, "1"), (&down, "0")] {
        eventually(WAIT, POLL, || {
            let result = prometheus.query(&format!(
                "mcp_probe_success{{job=\"mcp-probe\",instance=\"{target}\",server=\"{target}\"}}"
            ))?;
            match result.first().and_then(|r| r["value"][1].as_str()) {
                Some(value) if value == want => Ok(()),
                other => Err(format!("{target}: {other:?} in {result:?}")),
            }
        });
    }
}
